//! For tests, local runners and emulators (the `testing` feature). A deployed
//! function never compiles this: nothing here belongs in production.
//!
//! * [`MemoryStore`](crate::MemoryStore) and [`RotationService`]: secrets and
//!   rotations staged as RotateSecret stages them, in memory or on moto.
//! * [`store_contract`]: proves that a store (an adapter of
//!   [`SecretStore`](crate::SecretStore)) behaves as Secrets Manager documents.
//! * [`rotator_contract`]: proves that a [`Rotator`](crate::Rotator) converges
//!   under replays and restarts and keeps a working credential stored after
//!   every step.
//! * [`unique`] and [`token`]: secret names and version ids no other test uses.
//!
//! A check that fails says which check and what differed in a [`Failure`],
//! never a secret value, so its message is safe to print.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;

pub use crate::store::RotationService;

pub mod rotator_contract;
pub mod store_contract;

/// One failed check: its name and what differed (never a secret value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The check, as its test is named (`moving_current_leaves_previous_behind`).
    pub check: &'static str,
    /// What the store or rotator did, and what the contract expects.
    pub problem: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.problem)
    }
}

impl std::error::Error for Failure {}

/// The checks of a suite that failed, in the order they ran.
#[derive(Clone, PartialEq, Eq)]
pub struct Failures {
    /// How many checks ran.
    pub ran: usize,
    /// The ones that failed.
    pub failed: Vec<Failure>,
}

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} checks failed", self.failed.len(), self.ran)?;
        for failure in &self.failed {
            write!(f, "\n  {failure}")?;
        }
        Ok(())
    }
}

// `unwrap()` on a suite's result prints Debug: the same readable list.
impl fmt::Debug for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Failures {}

/// A fresh random version id (ClientRequestToken), shaped as a UUID as the
/// service's own are: 36 characters, within the 32 to 64 it accepts.
///
/// ```
/// let (a, b) = (rotor_core::testing::token(), rotor_core::testing::token());
/// assert_eq!(a.len(), 36);
/// assert_ne!(a, b);
/// ```
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    // Tests only: a machine whose random source fails cannot run them anyway.
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source failed");
    crate::rotation::uuid_text(&bytes)
}

/// A secret name no other test uses: `prefix` and 32 random hex digits.
///
/// ```
/// let name = rotor_core::testing::unique("orders");
/// assert!(name.starts_with("orders-") && name.len() == "orders-".len() + 32);
/// ```
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", token().replace('-', ""))
}

/// Runs `check` on a Tokio runtime of its own: what the suites' test macros
/// call, so that a crate using them needs no async test attribute.
pub(crate) fn block_on<F: Future>(check: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime for the check")
        .block_on(check)
}

/// `Result` and `Option` into a check's failure text: `what` says what was
/// being done or expected; an error's own text (a store's or the driver's,
/// which never hold values) follows it.
pub(crate) trait OrFail<T> {
    fn or_fail(self, what: &str) -> Result<T, String>;
}

impl<T, E: fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> OrFail<T> for Option<T> {
    fn or_fail(self, what: &str) -> Result<T, String> {
        self.ok_or_else(|| what.to_owned())
    }
}

/// Fails a check with `problem` unless `condition` holds.
pub(crate) fn ensure(condition: bool, problem: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(problem()) }
}
