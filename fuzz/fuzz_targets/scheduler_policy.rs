//! The scheduler's rotation policy: see `rotor_fuzz_checks::scheduler_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::scheduler_policy(data));
