//! The rotation-scheduler's `Policy::parse` on any text: never panics, and an
//! accepted policy is between 7 and 365 days.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation_scheduler::policy::{MAX_INTERVAL_SECS, MIN_INTERVAL_SECS, Policy, describe_secs};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Policy::parse(&text) {
        Ok(policy) => {
            let secs = policy.interval_secs();
            assert!((7 * 86_400..=365 * 86_400).contains(&secs), "{secs}");
            assert!((MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&secs));
            assert_eq!(policy.as_str(), text.trim());
            assert_eq!(Policy::parse(policy.as_str()), Ok(policy.clone()));
            let _ = policy.due_at(i64::MAX);
            let _ = policy.due_at(i64::MIN);
            let _ = describe_secs(secs);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
