//! Request ids, trace headers and deadlines in the shapes Lambda uses.

use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Random-ish without another crate: every `RandomState` gets fresh keys.
fn random(salt: u64) -> u64 {
    RandomState::new().hash_one(salt)
}

/// UUID-shaped like Lambda's own ids; the counter in the first group keeps them unique
/// within one host, the random rest across hosts.
pub(super) fn new_request_id(seq: u64) -> String {
    let (a, b) = (random(seq), random(!seq));
    let variant = 0x8000 | (a & 0x3fff);
    format!(
        "{:08x}-{:04x}-4{:03x}-{variant:04x}-{:012x}",
        seq & 0xffff_ffff,
        a >> 48,
        (a >> 36) & 0xfff,
        b >> 16
    )
}

/// An X-Ray trace header in the documented shape, unsampled.
pub(super) fn trace_id() -> String {
    let seconds = epoch_ms(SystemTime::now()) / 1000;
    let (a, b) = (random(seconds), random(!seconds));
    format!(
        "Root=1-{seconds:08x}-{:08x}{:016x};Parent={b:016x};Sampled=0",
        a >> 32,
        a ^ b
    )
}
