//! OAuth client secrets from any text: see `rotor_fuzz_checks::oauth_client`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::oauth_client(data));
