//! generic-rotation's settings and tags: see `rotor_fuzz_checks::generic_settings`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::generic_settings(data));
