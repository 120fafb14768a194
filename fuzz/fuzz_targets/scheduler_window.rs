//! The scheduler's rotation windows: see `rotor_fuzz_checks::scheduler_window`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::scheduler_window(data));
