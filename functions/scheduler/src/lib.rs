//! `rotation-scheduler`: starts the rotations that are due.
//!
//! An EventBridge Scheduler schedule invokes the function. Each run:
//!
//! 1. lists the secrets that carry the tag `TAG_FILTER` (ListSecrets, with the
//!    service's prefix filter narrowed to exact matches here);
//! 2. decides about each one from the listing ([`plan::evaluate`]): whether the
//!    deployer configured its rotation ([`authority`]: a tag alone never starts
//!    one), its policy (the `POLICY_TAG` tag, else `DEFAULT_POLICY`), whether a
//!    rotation is in progress, whether it is due (last rotation plus the
//!    policy's interval), and whether its rotation window is open ([`window`]:
//!    the `WINDOW_TAG` tag, such as `02:00-04:00` in UTC, and the secret's own
//!    `RotationRules` cron or rate expression and `Duration`; a due secret
//!    outside its window is skipped as `outside_window` and still counts as
//!    overdue; a window that cannot be read skips it as `bad_window`);
//! 3. for each due secret, at most `MAX_CONCURRENCY` at a time: looks again
//!    (DescribeSecret, since ListSecrets is eventually consistent), counts the
//!    rotations started in the last hour (ListSecretVersionIds, see [`hourly`]),
//!    and calls RotateSecret, at most `RATE_PER_SECOND` a second, with a
//!    ClientRequestToken of its own so that a retried call never starts a
//!    second rotation, naming no function unless the deployer allow-listed the
//!    secret ([`Rotation`]);
//! 4. answers with a [`Report`] of what it started, skipped (and why), could
//!    not start, and, for a RotateSecret the deadline cut short, could not
//!    tell, and logs the same as structured events, then prints the run's
//!    metrics (embedded metric format: started, skipped by reason, overdue,
//!    RotateSecret calls and the share of the rate they used; see
//!    [`lambda::run_metrics`]). A dry run prints none.
//!
//! The run stops [`DEADLINE_MARGIN`] before the function's deadline: every
//! call, with its retries, backoff and wait for the rate limit, ends there.
//! Secrets not reached are skipped (`deadline`) for the next run. A RotateSecret
//! that was sent and cut short is looked at once more (DescribeSecret, within
//! [`CHECK_TIMEOUT`]): started if its version is staged, else listed under
//! `unknown` with its version id. Either way the next run finds the rotation in
//! progress if it started, and the same version id is never sent twice in a
//! run.
//!
//! Throttling and server errors are retried with exponential backoff and
//! jitter, a bounded number of times ([`retry`]). An event such as
//! `{"dry_run": true}` reports what would start, and starts nothing.
//!
//! Settings, read once from the environment ([`Config`]):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TAG_FILTER` | required | `key=value` or `key`: the tag that selects secrets |
//! | `POLICY_TAG` | `rotor:rotation-policy` | the tag holding a secret's policy, such as `30d` |
//! | `WINDOW_TAG` | `rotor:window` | the tag holding a secret's rotation window, such as `02:00-04:00` (UTC) |
//! | `DEFAULT_POLICY` | none | the policy of a secret without the tag; none: it is skipped |
//! | `MAX_ROTATIONS_PER_SECRET_PER_HOUR` | 50 | rotations of one secret that may start in an hour |
//! | `MAX_CONCURRENCY` | 4 | secrets worked on at once |
//! | `RATE_PER_SECOND` | 5 | RotateSecret calls a second, retries included |
//! | `ROTATION_FUNCTION_ARNS` | none | comma-separated ARNs of the deployment's rotation functions: a secret whose rotation is enabled with one of them is rotated, naming no function |
//! | `ROTATION_LAMBDA_ARN` | none | given (by RotateSecret) only to secrets in `ROTATION_ALLOWED_SECRETS` that have no rotation function; also one of the deployment's functions |
//! | `ROTATION_ALLOWED_SECRETS` | none | comma-separated full ARNs or exact names of secrets that may be given `ROTATION_LAMBDA_ARN`; needs it set |
//!
//! Without `ROTATION_FUNCTION_ARNS` and `ROTATION_LAMBDA_ARN`, only secrets whose
//! rotation is enabled are rotated, each with its own function. A secret whose
//! rotation names another function, allow-listed or not, is never re-pointed.
//!
//! The function's role needs `secretsmanager:ListSecrets`, and
//! `DescribeSecret`, `ListSecretVersionIds` and `RotateSecret` on the selected
//! secrets. It never reads a secret value and never writes a tag.
//!
//! "Started" means that RotateSecret staged the run's new version as
//! AWSPENDING: its answer said so, or, after an error, a DescribeSecret shows
//! it. In the second case the entry carries a `note` with the error, because
//! the rotation is in progress although its function may not have run.

#![deny(missing_docs)]

pub mod authority;
pub mod config;
pub mod hourly;
pub mod lambda;
pub mod plan;
pub mod policy;
pub mod report;
pub mod retry;
pub mod run;
pub mod window;

pub use authority::{AllowedSecret, Authority, FunctionArn, Rotation};
pub use config::{Config, ConfigError, TagFilter};
pub use lambda::{handle, serve};
pub use plan::{Decision, SecretFacts, Skip, Timestamp, evaluate};
pub use policy::{Policy, PolicyError};
pub use report::{Failed, Report, Skipped, Started, Unknown};
pub use run::{
    ATTEMPT_TIMEOUT, CHECK_TIMEOUT, CallError, CallFailure, DEADLINE_MARGIN, RunError, RunOptions,
    Scheduler,
};
