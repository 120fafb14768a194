//! Backing off on throttling and server errors, and pacing RotateSecret calls.
//!
//! The SDK's own retries are turned off for the scheduler's client (see
//! [`crate::Scheduler::new`]), so that every attempt is one of ours: bounded by
//! [`MAX_ATTEMPTS`], spaced by exponential backoff with jitter, counted in the
//! report, and paced by the rate limit when it is a RotateSecret.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How many times one call is attempted before its failure is reported.
pub const MAX_ATTEMPTS: u32 = 6;
/// The backoff ceiling before the first retry; it doubles for each retry after.
pub const BASE_DELAY: Duration = Duration::from_millis(100);
/// The largest backoff ceiling.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// The backoff ceiling before retry number `retry` (0 for the first retry):
/// `BASE_DELAY * 2^retry`, at most `MAX_DELAY`. Never overflows.
pub fn backoff_ceiling(retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    BASE_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// "Equal jitter": half the ceiling, plus a random share of the other half, so
/// that every retry waits, and callers throttled together do not retry together.
/// `unit` is a random number in `[0, 1)`; anything else is clamped.
pub fn jittered(ceiling: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = ceiling / 2;
    half + half.mul_f64(unit)
}

/// The wait before retry number `retry`.
pub fn backoff(retry: u32) -> Duration {
    jittered(backoff_ceiling(retry), random_unit())
}

/// A random u64 that needs to be unpredictable only enough to spread retries and
/// to make version ids unique: the process's randomly keyed SipHash (std's
/// `RandomState`, seeded by the operating system) over a counter and the clock.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

/// A random number in `[0, 1)`.
pub fn random_unit() -> f64 {
    // The top 53 bits fill an f64's mantissa exactly.
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A fresh ClientRequestToken (the new version's id), shaped as a version-4
/// UUID as Secrets Manager recommends: 36 characters, within its 32 to 64.
pub fn new_version_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Paces calls across every task that shares it: at least `1 / rate` seconds
/// apart, and never more than `rate` (at least one) in any second. Each caller
/// checks the clock again when it wakes, so a stalled process does not release
/// a burst of calls that were due while it stalled.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    per_second: usize,
    recent: Mutex<VecDeque<Instant>>,
}

const SECOND: Duration = Duration::from_secs(1);

impl RateLimiter {
    /// A limiter for `per_second` calls a second (a positive, finite number).
    pub fn new(per_second: f64) -> Self {
        let valid = per_second.is_finite() && per_second > 0.0;
        let interval = if valid {
            Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(SECOND)
        } else {
            SECOND
        };
        let per_second = if valid && per_second >= 1.0 {
            // Truncation intended: 2.5 a second allows 2 in any one second.
            (per_second.min(1e6)) as usize
        } else {
            1
        };
        RateLimiter {
            interval,
            per_second,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// The spacing between calls.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until this caller may make its call; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let arrived = Instant::now();
        loop {
            let wait = {
                let mut recent = self.recent.lock().await;
                let now = Instant::now();
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= SECOND)
                {
                    recent.pop_front();
                }
                let spaced = recent.back().map_or(now, |last| *last + self.interval);
                let windowed = match recent.len().checked_sub(self.per_second) {
                    Some(index) => recent.get(index).map_or(now, |t| *t + SECOND),
                    None => now,
                };
                let slot = spaced.max(windowed);
                if slot <= now {
                    recent.push_back(now);
                    return now.duration_since(arrived);
                }
                slot - now
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff_ceiling(0), Duration::from_millis(100));
        assert_eq!(backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(5), Duration::from_millis(3200));
        assert_eq!(backoff_ceiling(6), MAX_DELAY);
        assert_eq!(backoff_ceiling(31), MAX_DELAY);
        assert_eq!(backoff_ceiling(32), MAX_DELAY, "no overflow");
        assert_eq!(backoff_ceiling(u32::MAX), MAX_DELAY);
        let total: Duration = (0..MAX_ATTEMPTS - 1).map(backoff_ceiling).sum();
        assert!(total <= Duration::from_secs(4), "{total:?}");
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_ceiling() {
        let ceiling = Duration::from_millis(800);
        assert_eq!(jittered(ceiling, 0.0), Duration::from_millis(400));
        assert_eq!(jittered(ceiling, 1.0), ceiling);
        assert_eq!(jittered(ceiling, -3.0), Duration::from_millis(400));
        assert_eq!(jittered(ceiling, f64::NAN), Duration::from_millis(400));
        for retry in 0..10 {
            let wait = backoff(retry);
            let ceiling = backoff_ceiling(retry);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "{wait:?}");
        }
    }

    #[test]
    fn random_numbers_differ_and_stay_in_range() {
        let units: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(units.iter().any(|u| *u < 0.5) && units.iter().any(|u| *u >= 0.5));
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_version_id()).collect();
        assert_eq!(ids.len(), 1000);
        let id = new_version_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
    }

    #[tokio::test]
    async fn the_rate_limiter_spaces_calls() {
        let limiter = RateLimiter::new(50.0);
        assert_eq!(limiter.interval(), Duration::from_millis(20));
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // The first call at once, then one every 20 ms.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_eq!(RateLimiter::new(0.0).interval(), Duration::from_secs(1));
        assert_eq!(
            RateLimiter::new(f64::NAN).interval(),
            Duration::from_secs(1)
        );
        assert_eq!(RateLimiter::new(0.5).interval(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn no_second_holds_more_than_the_rate_even_after_a_stall() {
        let limiter = std::sync::Arc::new(RateLimiter::new(100.0));
        let times = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..4 {
            let (limiter, times) = (limiter.clone(), times.clone());
            tasks.spawn(async move {
                for call in 0..40 {
                    if task == 0 && call == 10 {
                        // A stalled worker thread: nothing runs for 300 ms.
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    limiter.acquire().await;
                    times.lock().await.push(Instant::now());
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let times = times.lock().await.clone();
        assert_eq!(times.len(), 160);
        let busiest = times
            .iter()
            .map(|t| {
                times
                    .iter()
                    .filter(|u| **u >= *t && **u < *t + SECOND)
                    .count()
            })
            .max();
        assert!(busiest <= Some(100), "{busiest:?} calls in one second");
    }
}
