//! The secret writer as an attacker against generic-rotation: webhook URLs that name this machine (issue 21, item 8).
