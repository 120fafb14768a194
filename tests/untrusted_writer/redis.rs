//! The secret writer as an attacker against redis-rotation: an admin that serves a writer acts only on that writer's user, at the admin's own server (issue 21, items 1 and 4).
