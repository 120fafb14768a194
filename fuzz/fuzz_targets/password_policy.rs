//! Password policies made from any bytes: see `rotor_fuzz_checks::password_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::password_policy(data));
