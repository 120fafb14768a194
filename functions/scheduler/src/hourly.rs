//! The per-secret hourly limit, as pure functions.
//!
//! The record of start times is the secret's own version history: every rotation
//! that starts creates exactly one version (RotateSecret stages it as
//! AWSPENDING), and `ListSecretVersionIds` with `IncludeDeprecated` lists every
//! version with its `CreatedDate`. Secrets Manager never removes a version less
//! than 24 hours old, so the last hour is always complete. This record is
//! written by the service itself, at the moment a rotation starts, whoever starts
//! it (this scheduler, another run of it, the console, Secrets Manager's own
//! schedule); it cannot be lost between two calls, needs no write permission, and
//! has no size limit. A version written another way (PutSecretValue, or the
//! secret's creation) counts too, which errs on the side of rotating less.

/// The length of the window, in seconds.
pub const WINDOW_SECS: i64 = 3600;

/// The default limit: 50 rotations of one secret per hour, Alibaba Cloud's.
pub const DEFAULT_MAX_PER_HOUR: u32 = 50;

/// How many of the given version creation times (seconds since the Unix epoch)
/// fall in the hour before `now`: after `now - 1 h`, up to and including `now`.
/// A time after `now` (clock skew between the service and this function) counts
/// too, so skew never lets an extra rotation through.
pub fn starts_in_last_hour(created: impl IntoIterator<Item = i64>, now: i64) -> u32 {
    let since = now.saturating_sub(WINDOW_SECS);
    let count = created.into_iter().filter(|&t| t > since).count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Whether one more rotation may start after `recent` starts in the last hour.
pub fn may_start(recent: u32, limit: u32) -> bool {
    recent < limit
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn counts_exactly_the_last_hour() {
        assert_eq!(
            starts_in_last_hour([NOW - 3600], NOW),
            0,
            "one hour ago is out"
        );
        assert_eq!(starts_in_last_hour([NOW - 3599], NOW), 1);
        assert_eq!(starts_in_last_hour([NOW], NOW), 1);
        assert_eq!(starts_in_last_hour([NOW + 30], NOW), 1, "skew counts");
        assert_eq!(starts_in_last_hour([NOW - 400 * 86_400], NOW), 0);
        assert_eq!(starts_in_last_hour([], NOW), 0);
        assert_eq!(starts_in_last_hour([i64::MIN, i64::MAX], i64::MIN), 1);
    }

    #[test]
    fn the_limit_allows_exactly_max_per_hour() {
        let limit = DEFAULT_MAX_PER_HOUR;
        let times = |n: i64| (0..n).map(|i| NOW - i * 60);
        assert!(may_start(starts_in_last_hour(times(49), NOW), limit));
        assert!(!may_start(starts_in_last_hour(times(50), NOW), limit));
        assert!(!may_start(starts_in_last_hour(times(51), NOW), limit));
        assert!(may_start(0, 1));
        assert!(!may_start(1, 1));
        // 50 starts, the oldest exactly an hour ago: it has left the window.
        let mut edge: Vec<i64> = (0..49).map(|i| NOW - i * 60).collect();
        edge.push(NOW - WINDOW_SECS);
        assert!(may_start(starts_in_last_hour(edge, NOW), limit));
    }
}
