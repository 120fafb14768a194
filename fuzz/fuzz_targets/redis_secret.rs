//! Redis secrets (self-managed and managed users) from any text: see
//! `rotor_fuzz_checks::redis_secret`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::redis_secret(data));
