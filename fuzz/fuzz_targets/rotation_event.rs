//! `RotationEvent::from_json` on any JSON value: never panics, and an accepted
//! event has the fields the parser promises (non-empty, at most 2048 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor_core::event::{RotationEvent, Step};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(event) = RotationEvent::from_json(&value) {
        for field in [&event.secret_id, &event.token] {
            assert!(!field.is_empty() && field.len() <= 2048);
        }
        if let Some(token) = &event.rotation_token {
            assert!(!token.is_empty() && token.len() <= 2048);
        }
        assert_eq!(Step::parse(event.step.as_str()), Some(event.step));
    }
});
