//! The secret writer as an attacker against rds-rotation: a master that serves a writer acts only on that writer's user, at the master's own server (issue 21, items 2 and 3).
