//! ldap-rotation's secrets from any text: see `rotor_fuzz_checks::ldap_secret`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::ldap_secret(data));
