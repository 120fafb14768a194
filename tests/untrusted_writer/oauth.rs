//! The secret writer as an attacker against oauth-rotation: clean-up that reaches other secrets' credentials (issue 21, item 5).
