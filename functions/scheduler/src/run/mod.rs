//! One run: list the tagged secrets, decide, start the due rotations within the
//! deadline, and report (the SDK-calling half of the function; [`crate::lambda`]
//! is its Lambda edge).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::primitives::DateTime;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use rotor_core::labels::{AWSPENDING, Versions};
use rotor_core::store::StoreError;
use rotor_core::store::aws::classify;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::retry;
use crate::{Config, ConfigError, Decision, Report, Rotation, SecretFacts, Skip, evaluate};
use crate::{Failed, Skipped, Started, Unknown, hourly};

/// How long before the function's deadline the run stops: no secret is started
/// and no call (attempt, backoff or wait for the rate limit) goes on after it.
/// The margin leaves time for one look at a RotateSecret cut short
/// ([`CHECK_TIMEOUT`]) and for the answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// How long the one DescribeSecret after a RotateSecret cut at the deadline may
/// take: it tells whether that rotation started.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one attempt of one call may take before it counts as failed (and
/// is retried).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pages of ListSecrets (100 secrets each) a run reads at most: a guard against
/// a service that keeps answering with a next page.
const MAX_LIST_PAGES: usize = 10_000;
/// Pages of ListSecretVersionIds (100 versions each) read at most per secret.
const MAX_VERSION_PAGES: usize = 50;

/// A call that failed, after [`retry::MAX_ATTEMPTS`] attempts at most.
#[derive(Debug, thiserror::Error)]
#[error("Secrets Manager {operation} failed after {attempts} attempt(s): {source}")]
pub struct CallError {
    /// The API operation.
    pub operation: &'static str,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's failure, or the deadline.
    #[source]
    pub source: CallFailure,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// The service's (or the connection's) answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run stopped waiting: its time ran out.
    #[error(
        "the run stopped waiting for it {} s before the function's deadline (raise the function's timeout if this repeats)",
        DEADLINE_MARGIN.as_secs()
    )]
    Deadline,
}

impl CallFailure {
    /// Whether a later run may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallFailure::Store(e) => e.is_retryable(),
            CallFailure::Deadline => true,
        }
    }
}

/// Why the one quick look after a cut-off RotateSecret could not tell
/// whether the version is staged.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// DescribeSecret failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// DescribeSecret did not answer in time.
    #[error("it did not answer within {} s", CHECK_TIMEOUT.as_secs())]
    TimedOut,
}

/// Why a whole run failed (a secret's failure only fails that secret).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The function's settings are unusable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The event's overrides are unusable.
    #[error(
        "the event's {field} {problem}; the scheduler accepts any JSON event, with optional overrides such as {{\"dry_run\": true}}"
    )]
    InvalidEvent {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The secrets could not be listed.
    #[error("listing the secrets tagged {filter} failed: {source}")]
    List {
        /// The tag filter.
        filter: String,
        /// The failed call.
        #[source]
        source: CallError,
    },
}

impl RunError {
    /// The Lambda error type: `Retryable.<Kind>` or `NotRetryable.<Kind>`, as the
    /// rotation functions report theirs.
    pub fn error_type(&self) -> &'static str {
        match self {
            RunError::Config(_) => "NotRetryable.InvalidSettings",
            RunError::InvalidEvent { .. } => "NotRetryable.InvalidEvent",
            RunError::List { source, .. } if source.source.is_retryable() => {
                "Retryable.SecretsManager"
            }
            RunError::List { .. } => "NotRetryable.SecretsManager",
        }
    }
}

/// One invocation's options: the event's overrides and the deadline.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Report what would start, and start nothing.
    pub dry_run: bool,
    /// When the function must have answered.
    pub deadline: Option<SystemTime>,
}

impl RunOptions {
    /// Reads the overrides of an event: any JSON; in an object, `dry_run` must
    /// be `true` or `false` when present (a misspelt dry run must not rotate).
    /// Other fields are ignored.
    pub fn from_event(event: &Value, deadline: Option<SystemTime>) -> Result<Self, RunError> {
        let dry_run = match event.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(RunError::InvalidEvent {
                    field: "dry_run",
                    problem: format!("is {other}, not true or false"),
                });
            }
        };
        Ok(RunOptions { dry_run, deadline })
    }
}

/// The scheduler: a Secrets Manager client, the settings and the rate limiter,
/// built once per process.
#[derive(Debug)]
pub struct Scheduler {
    client: Client,
    config: Config,
    limiter: retry::RateLimiter,
}

impl Scheduler {
    /// Builds the scheduler on a copy of `client` whose own retries are off
    /// (every attempt is the scheduler's, counted and paced) and whose attempts
    /// time out after [`ATTEMPT_TIMEOUT`].
    pub fn new(client: &Client, config: Config) -> Self {
        let sdk_config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Scheduler {
            client: Client::from_conf(sdk_config),
            limiter: retry::RateLimiter::new(config.rate_per_second),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One run over every selected secret.
    pub async fn run(self: &Arc<Self>, options: RunOptions) -> Result<Report, RunError> {
        let now = epoch_secs(SystemTime::now());
        let run = Arc::new(Run {
            scheduler: self.clone(),
            now,
            dry_run: options.dry_run,
            stop_at: options.deadline.map(|deadline| {
                let left = deadline
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .saturating_sub(DEADLINE_MARGIN);
                Instant::now() + left
            }),
            retries: AtomicU32::new(0),
        });
        let filter = self.config.tag_filter.to_string();
        info!(tag_filter = %filter, dry_run = options.dry_run, "run started");
        let listed = run.list().await.map_err(|source| RunError::List {
            filter: filter.clone(),
            source,
        })?;
        let mut report = Report {
            dry_run: options.dry_run,
            tag_filter: filter,
            ..Report::default()
        };
        let mut due = Vec::new();
        for facts in listed {
            // ListSecrets filters by prefix: keep exact matches only.
            if !self.config.tag_filter.matches(&facts.tags) {
                continue;
            }
            report.selected += 1;
            match evaluate(&facts, &self.config, now) {
                Decision::Due { due_at, .. } => due.push((due_at, facts)),
                Decision::Skip(reason) => {
                    let outcome = Outcome::skipped(&facts, reason);
                    log(&outcome, run.dry_run);
                    record(&mut report, outcome);
                }
            }
        }
        // The most overdue first, should the deadline or the limits cut the run short.
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.arn.cmp(&b.1.arn)));
        let queue = Arc::new(Mutex::new(
            due.into_iter().map(|(_, f)| f).collect::<VecDeque<_>>(),
        ));
        let workers = self.config.max_concurrency.min(lock(&queue).len());
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let (run, queue) = (run.clone(), queue.clone());
            tasks.spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let next = lock(&queue).pop_front();
                    let Some(facts) = next else { break };
                    let outcome = Box::pin(run.process(facts)).await;
                    log(&outcome, run.dry_run);
                    outcomes.push(outcome);
                }
                outcomes
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcomes) => outcomes.into_iter().for_each(|o| record(&mut report, o)),
                Err(e) => error!(error = %e, "a worker stopped unexpectedly"),
            }
        }
        report.retries = run.retries.load(Ordering::Relaxed);
        report.sort();
        info!(
            selected = report.selected,
            started = if report.dry_run {
                0
            } else {
                report.started.len()
            },
            would_start = if report.dry_run {
                report.started.len()
            } else {
                0
            },
            skipped = report.skipped.len(),
            failed = report.failed.len(),
            unknown = report.unknown.len(),
            retries = report.retries,
            dry_run = report.dry_run,
            "run finished"
        );
        Ok(report)
    }
}

/// One run's state, shared by its workers.
struct Run {
    scheduler: Arc<Scheduler>,
    now: i64,
    dry_run: bool,
    /// The deadline less [`DEADLINE_MARGIN`]: nothing goes on after it.
    stop_at: Option<Instant>,
    retries: AtomicU32,
}

/// What happened to one secret.
enum Outcome {
    Started(Started),
    Skipped(Skipped),
    Failed(Failed),
    Unknown(Unknown),
}

impl Outcome {
    fn skipped(facts: &SecretFacts, reason: Skip) -> Outcome {
        Outcome::Skipped(Skipped {
            arn: facts.arn.clone(),
            name: facts.name.clone(),
            reason,
        })
    }

    fn failed(facts: &SecretFacts, error: &CallError) -> Outcome {
        Outcome::Failed(Failed {
            arn: facts.arn.clone(),
            name: facts.name.clone(),
            error: error.to_string(),
            attempts: error.attempts,
        })
    }
}

/// Logs an outcome as a structured event, as soon as it is known (a run cut
/// short by a timeout still leaves a record of what it started).
fn log(outcome: &Outcome, dry_run: bool) {
    match outcome {
        Outcome::Started(s) => match (&s.note, dry_run) {
            (_, true) => info!(secret = %s.arn, name = %s.name, policy = %s.policy,
                due_at = %s.due_at, "would start rotation (dry run)"),
            (None, false) => info!(secret = %s.arn, name = %s.name, version = %s.version,
                policy = %s.policy, due_at = %s.due_at, "started rotation"),
            (Some(note), false) => warn!(secret = %s.arn, name = %s.name,
                version = %s.version, policy = %s.policy, due_at = %s.due_at, note = %note,
                "started rotation: the version is staged, but RotateSecret answered with an error; check that the rotation function exists and Secrets Manager may invoke it"),
        },
        Outcome::Skipped(s) => info!(secret = %s.arn, name = %s.name,
            reason = s.reason.code(), detail = %s.reason, "skipped"),
        Outcome::Failed(f) => error!(secret = %f.arn, name = %f.name, attempts = f.attempts,
            error = %f.error, "could not start rotation"),
        Outcome::Unknown(u) => warn!(secret = %u.arn, name = %u.name, version = %u.version,
            detail = %u.detail, "rotation not known to have started"),
    }
}

/// Adds an outcome to the report.
fn record(report: &mut Report, outcome: Outcome) {
    match outcome {
        Outcome::Started(s) => report.started.push(s),
        Outcome::Skipped(s) => report.skipped.push(s),
        Outcome::Failed(f) => report.failed.push(f),
        Outcome::Unknown(u) => report.unknown.push(u),
    }
}

impl Run {
    /// Calls `attempt` until it succeeds, fails for good, or has been tried
    /// [`retry::MAX_ATTEMPTS`] times; throttling and server errors are retried
    /// after an exponential, jittered wait. Attempts and waits together end at
    /// the run's `stop_at`: a call cut there fails with [`CallFailure::Deadline`].
    async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        secret: &str,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let attempts = AtomicU32::new(0);
        let tries = async {
            loop {
                let made = attempts.fetch_add(1, Ordering::Relaxed) + 1;
                match attempt().await {
                    Ok(value) => return Ok(value),
                    Err(source) if source.is_retryable() && made < retry::MAX_ATTEMPTS => {
                        let wait = retry::backoff(made - 1);
                        self.retries.fetch_add(1, Ordering::Relaxed);
                        warn!(operation, secret, attempt = made, wait_ms = wait.as_millis() as u64,
                            error = %source, "retrying");
                        tokio::time::sleep(wait).await;
                    }
                    Err(source) => {
                        return Err(CallError {
                            operation,
                            attempts: made,
                            source: source.into(),
                        });
                    }
                }
            }
        };
        let Some(stop_at) = self.stop_at else {
            return tries.await;
        };
        match tokio::time::timeout_at(stop_at, tries).await {
            Ok(result) => result,
            Err(_) => Err(CallError {
                operation,
                attempts: attempts.load(Ordering::Relaxed),
                source: CallFailure::Deadline,
            }),
        }
    }

    fn past_stop(&self) -> bool {
        self.stop_at.is_some_and(|stop| Instant::now() >= stop)
    }

    fn client(&self) -> &Client {
        &self.scheduler.client
    }

    fn config(&self) -> &Config {
        &self.scheduler.config
    }

    /// Every secret ListSecrets returns for the tag filter (a superset of the
    /// selected ones: the service matches prefixes).
    async fn list(&self) -> Result<Vec<SecretFacts>, CallError> {
        let filter = &self.config().tag_filter;
        let mut filters = Vec::new();
        // The service accepts ASCII filter values only; past that, the exact
        // match here does all the filtering.
        if filter.key.is_ascii() {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(&filter.key)
                    .build(),
            );
        }
        if let Some(value) = filter
            .value
            .as_deref()
            .filter(|v| !v.is_empty() && v.is_ascii())
        {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(value)
                    .build(),
            );
        }
        let filters = &filters;
        paged(MAX_LIST_PAGES, |next_token| async move {
            let page = self
                .call("ListSecrets", "", || {
                    self.client()
                        .list_secrets()
                        .set_filters(Some(filters.clone()))
                        .max_results(100)
                        .set_next_token(next_token.clone())
                        .send()
                        .map_output(|r| r.map_err(classify))
                })
                .await?;
            let secrets = page.secret_list().iter().map(|entry| SecretFacts {
                arn: entry.arn().unwrap_or_default().to_owned(),
                name: entry.name().unwrap_or_default().to_owned(),
                tags: tag_map(entry.tags()),
                last_rotated: entry.last_rotated_date().map(DateTime::secs),
                created: entry.created_date().map(DateTime::secs),
                versions: versions(entry.secret_versions_to_stages()),
                rotation_enabled: entry.rotation_enabled().unwrap_or(false),
                rotation_function: function(entry.rotation_lambda_arn()),
            });
            Ok((secrets.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    /// DescribeSecret, as facts.
    async fn describe(&self, arn: &str) -> Result<SecretFacts, CallError> {
        let out = self
            .call("DescribeSecret", arn, || {
                self.client()
                    .describe_secret()
                    .secret_id(arn)
                    .send()
                    .map_output(|r| r.map_err(classify))
            })
            .await?;
        Ok(SecretFacts {
            arn: out.arn().unwrap_or(arn).to_owned(),
            name: out.name().unwrap_or_default().to_owned(),
            tags: tag_map(out.tags()),
            last_rotated: out.last_rotated_date().map(DateTime::secs),
            created: out.created_date().map(DateTime::secs),
            versions: versions(out.version_ids_to_stages()),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            rotation_function: function(out.rotation_lambda_arn()),
        })
    }

    /// After a RotateSecret cut at the deadline: one DescribeSecret, within
    /// [`CHECK_TIMEOUT`], to see whether the version is staged. `Err` says
    /// why it could not tell.
    async fn staged(&self, arn: &str, token: &str) -> Result<bool, CheckError> {
        let look = self.client().describe_secret().secret_id(arn).send();
        match tokio::time::timeout(CHECK_TIMEOUT, look).await {
            Ok(Ok(out)) => Ok(versions(out.version_ids_to_stages()).has_label(token, AWSPENDING)),
            Ok(Err(e)) => Err(classify(e).into()),
            Err(_) => Err(CheckError::TimedOut),
        }
    }

    /// The creation time of every version, deprecated ones included. A version
    /// without a date counts as created now, so it counts toward the limit.
    async fn version_dates(&self, arn: &str) -> Result<Vec<i64>, CallError> {
        paged(MAX_VERSION_PAGES, |next_token| async move {
            let page = self
                .call("ListSecretVersionIds", arn, || {
                    self.client()
                        .list_secret_version_ids()
                        .secret_id(arn)
                        .include_deprecated(true)
                        .max_results(100)
                        .set_next_token(next_token.clone())
                        .send()
                        .map_output(|r| r.map_err(classify))
                })
                .await?;
            let dates = page
                .versions()
                .iter()
                .map(|v| v.created_date().map_or(self.now, DateTime::secs));
            Ok((dates.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    /// RotateSecret for `token`, paced by the rate limit (every attempt),
    /// naming a function only when `rotation` says so. `sent` is set once an
    /// attempt has gone out.
    async fn rotate(
        &self,
        arn: &str,
        token: &str,
        rotation: &Rotation,
        sent: &AtomicBool,
    ) -> Result<(), CallError> {
        let function = rotation.function();
        self.call("RotateSecret", arn, || async move {
            self.scheduler.limiter.acquire().await;
            sent.store(true, Ordering::Relaxed);
            self.client()
                .rotate_secret()
                .secret_id(arn)
                // The same token on every attempt: a retry after a lost
                // answer cannot start a second rotation.
                .client_request_token(token)
                .set_rotation_lambda_arn(function.map(str::to_owned))
                .rotate_immediately(true)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
        .await
    }

    /// Looks again at a due secret and starts its rotation if it still is due
    /// and under the hourly limit.
    async fn process(&self, listed: SecretFacts) -> Outcome {
        let not_reached = |facts: &SecretFacts| {
            let reason = Skip::Deadline {
                secret: facts.label().to_owned(),
            };
            Outcome::skipped(facts, reason)
        };
        if self.past_stop() {
            return not_reached(&listed);
        }
        let facts = match self.describe(&listed.arn).await {
            Ok(facts) => facts,
            Err(e) if matches!(e.source, CallFailure::Deadline) => return not_reached(&listed),
            Err(e) => return Outcome::failed(&listed, &e),
        };
        // Decided again from DescribeSecret: ListSecrets may be stale, and the
        // rotation settings decide which call, if any, is made.
        let (policy, due_at, rotation) = match evaluate(&facts, self.config(), self.now) {
            Decision::Due {
                policy,
                due_at,
                rotation,
            } => (policy, due_at, rotation),
            Decision::Skip(reason) => return Outcome::skipped(&facts, reason),
        };
        let dates = match self.version_dates(&facts.arn).await {
            Ok(dates) => dates,
            Err(e) if matches!(e.source, CallFailure::Deadline) => return not_reached(&facts),
            Err(e) => return Outcome::failed(&facts, &e),
        };
        let recent = hourly::starts_in_last_hour(dates, self.now);
        let limit = self.config().max_per_hour;
        if !hourly::may_start(recent, limit) {
            let reason = Skip::HourlyLimit {
                secret: facts.label().to_owned(),
                recent,
                limit,
            };
            return Outcome::skipped(&facts, reason);
        }
        let mut started = Started {
            arn: facts.arn.clone(),
            name: facts.name.clone(),
            version: String::new(),
            policy: policy.to_string(),
            due_at,
            note: None,
        };
        if self.dry_run {
            return Outcome::Started(started);
        }
        let token = retry::new_version_id();
        started.version = token.clone();
        let sent = AtomicBool::new(false);
        match self.rotate(&facts.arn, &token, &rotation, &sent).await {
            Ok(()) => Outcome::Started(started),
            Err(error) if matches!(error.source, CallFailure::Deadline) => {
                if !sent.load(Ordering::Relaxed) {
                    return not_reached(&facts);
                }
                let margin = DEADLINE_MARGIN.as_secs();
                let looked = match self.staged(&facts.arn, &token).await {
                    Ok(true) => {
                        started.note = Some(format!(
                            "RotateSecret had not answered when the run stopped waiting, {margin} s before the function's deadline; DescribeSecret shows version {token} staged as AWSPENDING, so the rotation started"
                        ));
                        return Outcome::Started(started);
                    }
                    Ok(false) => "DescribeSecret did not show it staged yet".to_owned(),
                    Err(why) => format!("DescribeSecret could not tell ({why})"),
                };
                Outcome::Unknown(Unknown {
                    arn: started.arn,
                    name: started.name,
                    version: token.clone(),
                    policy: started.policy,
                    due_at,
                    detail: format!(
                        "RotateSecret for version {token} of secret {} was sent, but had not answered when the run stopped waiting, {margin} s before the function's deadline, and {looked}: whether the rotation started is not known. If it did, the next run finds version {token} AWSPENDING and leaves it to finish; if not, the next run starts the rotation",
                        facts.label()
                    ),
                })
            }
            Err(error) => {
                // Did the call stage the version before it failed? (An emulator
                // that cannot invoke the function does so; so may a lost answer.)
                // Past the deadline margin, one quick look instead of a call
                // with retries, which would be cut at once.
                let staged = match self.describe(&facts.arn).await {
                    Ok(after) => after.versions.has_label(&token, AWSPENDING),
                    Err(e) if matches!(e.source, CallFailure::Deadline) => {
                        matches!(self.staged(&facts.arn, &token).await, Ok(true))
                    }
                    Err(_) => false,
                };
                if staged {
                    started.note = Some(error.to_string());
                    Outcome::Started(started)
                } else {
                    Outcome::failed(&facts, &error)
                }
            }
        }
    }
}

/// Reads pages until one names no next page, `max_pages` at most (a guard
/// against a service that keeps answering with one). `fetch` gets the token to
/// continue from and returns the page's items and the next token.
async fn paged<T, F, Fut>(max_pages: usize, mut fetch: F) -> Result<Vec<T>, CallError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), CallError>>,
{
    let mut items = Vec::new();
    let mut next_token = None;
    for _ in 0..max_pages {
        let (page, next) = fetch(next_token.take()).await?;
        items.extend(page);
        next_token = next.filter(|t: &String| !t.is_empty());
        if next_token.is_none() {
            break;
        }
    }
    Ok(items)
}

/// A future's output mapped, without pulling in a futures crate.
trait MapOutput: Future + Sized {
    fn map_output<T>(self, f: impl FnOnce(Self::Output) -> T) -> impl Future<Output = T> {
        async move { f(self.await) }
    }
}

impl<F: Future> MapOutput for F {}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tag_map(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// A RotationLambdaARN, `None` when absent or empty.
fn function(arn: Option<&str>) -> Option<String> {
    arn.map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
}

fn versions(map: Option<&std::collections::HashMap<String, Vec<String>>>) -> Versions {
    Versions::new(
        map.into_iter()
            .flatten()
            .map(|(id, labels)| (id.clone(), labels.clone())),
    )
}

fn epoch_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_carry_optional_overrides() {
        for event in [
            json!({}),
            json!(null),
            json!("tick"),
            json!([1]),
            json!({"dry_run": null}),
        ] {
            assert!(
                !RunOptions::from_event(&event, None).unwrap().dry_run,
                "{event}"
            );
        }
        assert!(
            RunOptions::from_event(&json!({"dry_run": true}), None)
                .unwrap()
                .dry_run
        );
        let error = RunOptions::from_event(&json!({"dry_run": "yes"}), None).unwrap_err();
        assert_eq!(error.error_type(), "NotRetryable.InvalidEvent");
        assert!(error.to_string().contains("dry_run is \"yes\""), "{error}");
    }

    #[test]
    fn run_errors_say_whether_a_retry_helps() {
        let throttled = RunError::List {
            filter: "a=b".into(),
            source: CallError {
                operation: "ListSecrets",
                attempts: 6,
                source: StoreError::Throttled("Rate exceeded".into()).into(),
            },
        };
        assert_eq!(throttled.error_type(), "Retryable.SecretsManager");
        let message = throttled.to_string();
        assert!(
            message.contains("a=b") && message.contains("6 attempt"),
            "{message}"
        );
        let denied = RunError::List {
            filter: "a=b".into(),
            source: CallError {
                operation: "ListSecrets",
                attempts: 1,
                source: StoreError::AccessDenied("no".into()).into(),
            },
        };
        assert_eq!(denied.error_type(), "NotRetryable.SecretsManager");
        let cut = RunError::List {
            filter: "a=b".into(),
            source: CallError {
                operation: "ListSecrets",
                attempts: 2,
                source: CallFailure::Deadline,
            },
        };
        assert_eq!(cut.error_type(), "Retryable.SecretsManager");
        assert!(
            cut.to_string().contains("before the function's deadline"),
            "{cut}"
        );
    }

    #[test]
    fn epoch_seconds_never_panic() {
        assert_eq!(epoch_secs(UNIX_EPOCH), 0);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
