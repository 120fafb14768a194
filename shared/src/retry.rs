//! Retrying a call with backoff, never past the step's deadline.
//!
//! Some waits are part of a rotation: a new password takes a moment to reach
//! every database node, a provider to accept a new client secret everywhere,
//! Secrets Manager to accept a write again. Each such loop is a [`Backoff`]:
//! a first delay that doubles up to a cap, a number of attempts or an
//! instant to give up at, and by default the tracked step's deadline
//! ([`crate::progress::deadline`]), so that a retry never sleeps into the
//! time the step needs to report what went wrong.

use std::time::{Duration, Instant};

/// Now, on tokio's clock (which tests may pause and advance).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How long before the step's deadline a backoff stops retrying.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// A retry schedule.
///
/// ```
/// use std::time::Duration;
/// use rotor_core::retry::Backoff;
///
/// # tokio_test_block_on(async {
/// let mut calls = 0;
/// let result: Result<&str, _> = Backoff::new(Duration::from_millis(1), Duration::from_millis(4))
///     .attempts(5)
///     .run(
///         |_attempt| {
///             calls += 1;
///             let answer = if calls < 3 { Err("busy") } else { Ok("done") };
///             async move { answer }
///         },
///         |error| *error == "busy",
///         |_attempt, _error, _delay| {},
///     )
///     .await;
/// assert_eq!(result.unwrap(), "done");
/// assert_eq!(calls, 3);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    attempts: Option<u32>,
    until: Option<Instant>,
    margin: Duration,
}

/// A call that still failed when the schedule ran out, or failed in a way a
/// retry cannot cure.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The last error.
    pub error: E,
    /// How many attempts were made.
    pub attempts: u32,
}

impl Backoff {
    /// Waits `first` after the first failure, doubling each time up to `cap`;
    /// retries until the step's deadline unless [`Backoff::attempts`] or
    /// [`Backoff::until`] bound it sooner.
    pub const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            attempts: None,
            until: None,
            margin: DEADLINE_MARGIN,
        }
    }

    /// Stops retrying `margin` before the step's deadline (500 ms unless
    /// set): the time the step needs after the last attempt to report.
    pub const fn margin(mut self, margin: Duration) -> Backoff {
        self.margin = margin;
        self
    }

    /// Makes at most `attempts` attempts (at least one).
    pub const fn attempts(mut self, attempts: u32) -> Backoff {
        self.attempts = Some(if attempts == 0 { 1 } else { attempts });
        self
    }

    /// Starts no attempt's wait that would end after `instant`.
    pub const fn until(mut self, instant: Instant) -> Backoff {
        self.until = Some(instant);
        self
    }

    /// The instant after which no retry starts: the earlier of
    /// [`Backoff::until`] and the step's deadline less a margin.
    fn give_up_at(&self) -> Option<Instant> {
        let deadline = crate::progress::deadline().map(|d| {
            let now = now();
            let left = d.saturating_duration_since(now);
            now + left.saturating_sub(self.margin).max(left / 2)
        });
        match (self.until, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs `attempt` (given the attempt's number, from 1) until it succeeds,
    /// fails in a way `retryable` refuses, or the schedule runs out.
    /// `on_retry` hears of each failure that will be retried, with the wait
    /// before the next attempt (for a log line; never a secret).
    pub async fn run<T, E, F, Fut>(
        &self,
        mut attempt: F,
        retryable: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(u32, &E, Duration),
    ) -> Result<T, GaveUp<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let give_up = self.give_up_at();
        let mut delay = self.first;
        let mut made = 0;
        loop {
            made += 1;
            let error = match attempt(made).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let out_of_attempts = self.attempts.is_some_and(|n| made >= n);
            let out_of_time = give_up.is_some_and(|at| now() + delay >= at);
            if !retryable(&error) || out_of_attempts || out_of_time {
                return Err(GaveUp {
                    error,
                    attempts: made,
                });
            }
            on_retry(made, &error, delay);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn retries_with_doubling_delays_up_to_the_cap() {
        let waits = std::cell::RefCell::new(Vec::new());
        let result: Result<(), _> =
            Backoff::new(Duration::from_millis(100), Duration::from_millis(300))
                .attempts(5)
                .run(
                    |_| async { Err::<(), _>("busy") },
                    |_| true,
                    |_, _, wait| waits.borrow_mut().push(wait.as_millis()),
                )
                .await;
        let gave_up = result.unwrap_err();
        assert_eq!(gave_up.attempts, 5);
        assert_eq!(*waits.borrow(), [100, 200, 300, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_a_retry_cannot_cure_is_returned_at_once() {
        let calls = Cell::new(0);
        let result: Result<(), _> = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
            .run(
                |_| {
                    calls.set(calls.get() + 1);
                    async { Err("refused") }
                },
                |e| *e != "refused",
                |_, _, _| {},
            )
            .await;
        assert_eq!(result.unwrap_err().attempts, 1);
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_runs_past_the_step_deadline() {
        let started = now();
        let progress = crate::progress::Progress::with_deadline(started + Duration::from_secs(3));
        let result: Result<(), _> = progress
            .track(
                Backoff::new(Duration::from_millis(400), Duration::from_secs(10)).run(
                    |_| async { Err("busy") },
                    |_| true,
                    |_, _, _| {},
                ),
            )
            .await;
        let gave_up = result.unwrap_err();
        // Waits of 400, 800 ms fit before 2.5 s; the next (1.6 s) would not.
        assert_eq!(gave_up.attempts, 3);
        assert!(now() < started + Duration::from_millis(2500));
    }
}
