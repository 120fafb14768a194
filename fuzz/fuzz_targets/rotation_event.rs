//! Rotation events from any JSON value: see `rotor_fuzz_checks::rotation_event`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::rotation_event(data));
