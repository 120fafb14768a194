//! What a step is waiting for, so that a step cut short by the function's
//! deadline can say where it was.
//!
//! The Lambda edge runs each step inside [`Progress::track`]; the code that is
//! about to wait on something outside the process (a Secrets Manager call, a
//! database, an identity provider) names it with [`waiting_for`]. Outside a
//! tracked step (unit tests, the CLI) `waiting_for` does nothing. The text names
//! hosts, operations and user names, never a secret value.
//!
//! A tracked step may also carry its deadline: the instant by which it must
//! have returned. Code that retries something it must not give up on lightly
//! (storing a value the target has already issued) retries until then.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

tokio::task_local! {
    static CURRENT: Progress;
}

/// The last thing a step said it was waiting for, and the step's deadline.
#[derive(Clone, Debug, Default)]
pub struct Progress(Arc<Mutex<Option<String>>>, Option<Instant>);

impl Progress {
    /// A tracker for a step that must return by `deadline`.
    pub fn with_deadline(deadline: Instant) -> Self {
        Progress(Arc::default(), Some(deadline))
    }

    /// Runs `step` with this tracker as the one [`waiting_for`] writes to.
    pub async fn track<F: Future>(&self, step: F) -> F::Output {
        CURRENT.scope(self.clone(), step).await
    }

    /// What the step last said it was waiting for, if anything.
    pub fn last(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Records what the step is about to wait for, such as `"PostgreSQL at
/// db.example.com:5432 (connecting as app)"`. The closure runs only inside a
/// tracked step.
pub fn waiting_for(what: impl FnOnce() -> String) {
    let _ = CURRENT.try_with(|progress| {
        *progress.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(what());
    });
}

/// The instant by which the tracked step must have returned, if it has a
/// deadline (`None` outside a tracked step, or for a step without one).
pub fn deadline() -> Option<Instant> {
    CURRENT.try_with(|progress| progress.1).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_only_inside_a_tracked_step() {
        waiting_for(|| unreachable!("nothing is tracked here"));
        let progress = Progress::default();
        progress
            .track(async {
                waiting_for(|| "first".into());
                waiting_for(|| "PostgreSQL at db:5432".into());
            })
            .await;
        assert_eq!(progress.last().as_deref(), Some("PostgreSQL at db:5432"));
        assert_eq!(deadline(), None);
        let at = Instant::now() + std::time::Duration::from_secs(5);
        let with_deadline = Progress::with_deadline(at);
        assert_eq!(with_deadline.track(async { deadline() }).await, Some(at));
        assert_eq!(progress.track(async { deadline() }).await, None);
    }
}
