//! iam-rotation's secret from any text: see `rotor_fuzz_checks::iam_secret`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rotor_fuzz_checks::iam_secret(data));
