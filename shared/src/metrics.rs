//! Metrics in CloudWatch's embedded metric format (EMF), from every function.
//!
//! A function reports what it did as JSON documents that CloudWatch Logs turns
//! into metrics: no SDK client, no `PutMetricData` permission, nothing on the
//! path of a step but a line written to stdout. Each document is printed as a
//! line of its own, never inside a tracing event, so CloudWatch extracts it in
//! both of Lambda's log formats (`AWS_LAMBDA_LOG_FORMAT=text` or `json`: a
//! custom runtime's stdout lines reach the log group as they are written).
//!
//! This module owns the format once ([`Document`]), the names every function
//! uses ([`names`], [`dimensions`]) and the rotation functions' step metrics
//! ([`Metrics::step`]); the Lambda edge ([`crate::lambda`]) emits them after
//! each step, and rotation-scheduler builds its run figures with the same
//! [`Document`].
//!
//! What a document may carry: the function's name, the step, the outcome
//! class, the error's kind, numbers, and the secret's *name* only where the
//! deployer opts in ([`SECRET_DIMENSION_VAR`]). Never a secret value, a
//! version id or anything else of high cardinality as a dimension: each
//! distinct set of dimension values is a metric CloudWatch bills.
//!
//! Nothing here runs at cold start but reading two variables
//! ([`Metrics::from_env`]).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::event::Step;
use crate::rotation::{Outcome, StepReport};

/// The CloudWatch namespace of every rotor metric.
pub const NAMESPACE: &str = "rotor";

/// The deployer's variable that adds the secret's name as a dimension
/// (`true`); unset, empty or `false`: no secret name in any metric.
pub const SECRET_DIMENSION_VAR: &str = "ROTOR_METRICS_SECRET_DIMENSION";

/// Lambda's variable naming the function, the value of the `Function` dimension.
pub const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// The `Function` dimension when Lambda's variable is unset (a run outside
/// Lambda and outside rotor's local runner, which both set it).
const UNNAMED_FUNCTION: &str = "unnamed";

/// The names of rotor's metrics, in namespace [`NAMESPACE`].
pub mod names {
    /// A rotation step's duration, from the event's arrival to the answer
    /// (milliseconds). Dimensions: `Function`; `Function, Step`.
    pub const STEP_DURATION: &str = "StepDuration";
    /// One per step invocation (count). Dimensions: `Function, Outcome`;
    /// `Function, Step, Outcome`; for a failure also `Function, Outcome, ErrorType`.
    pub const STEPS: &str = "Steps";
    /// One per rotation a finishSecret completed: it moved AWSCURRENT to the
    /// pending version (count). A replayed finishSecret does not count again.
    /// Dimension: `Function`.
    pub const ROTATIONS_COMPLETED: &str = "RotationsCompleted";
    /// From the pending version's creation (createSecret) to the end of the
    /// finishSecret that completed the rotation (milliseconds). Dimension: `Function`.
    pub const ROTATION_DURATION: &str = "RotationDuration";
    /// How old the credential a rotation replaced was: from the creation of the
    /// version that was AWSCURRENT until the rotation completed (seconds).
    /// Dimension: `Function`.
    pub const REPLACED_CREDENTIAL_AGE: &str = "ReplacedCredentialAge";
    /// After-rotation actions ([`crate::after`]): one per action a
    /// finishSecret ran or refused (count). Dimensions: `Function, Outcome`;
    /// `Function, Action, Outcome` (`Outcome`: `Success`, `Failed`, `Refused`).
    pub const ACTIONS: &str = "Actions";

    /// rotation-scheduler: one per run (count). Dimensions: `Function`;
    /// `Function, Outcome`; for a failed run also `Function, Outcome, ErrorType`.
    pub const RUNS: &str = "Runs";
    /// rotation-scheduler: a run's duration (milliseconds).
    pub const RUN_DURATION: &str = "RunDuration";
    /// rotation-scheduler: secrets the tag filter selected (count).
    pub const SECRETS_SELECTED: &str = "SecretsSelected";
    /// rotation-scheduler: rotations started (count).
    pub const ROTATIONS_STARTED: &str = "RotationsStarted";
    /// rotation-scheduler: due rotations that could not be started (count).
    pub const ROTATIONS_NOT_STARTED: &str = "RotationsNotStarted";
    /// rotation-scheduler: rotations sent but cut short by the deadline,
    /// started or not (count).
    pub const ROTATIONS_UNKNOWN: &str = "RotationsUnknown";
    /// rotation-scheduler: secrets left alone (count). Dimensions: `Function`
    /// for all; `Function, Reason` per reason.
    pub const SKIPPED: &str = "Skipped";
    /// rotation-scheduler: selected secrets whose due date passed more than a
    /// day ago (count): see the scheduler's `plan::is_overdue`. A secret kept
    /// waiting by its rotation window (skipped as `outside_window`) or whose
    /// window cannot be read (`bad_window`) counts too.
    pub const OVERDUE: &str = "Overdue";
    /// rotation-scheduler: calls retried after throttling or a server error (count).
    pub const RETRIES: &str = "Retries";
    /// rotation-scheduler: RotateSecret attempts, retries included (count).
    pub const ROTATE_SECRET_CALLS: &str = "RotateSecretCalls";
    /// rotation-scheduler: RotateSecret attempts as a share of what
    /// `RATE_PER_SECOND` allows over the run's duration (percent).
    pub const RATE_USED: &str = "RateUsed";
    /// rotation-scheduler: time RotateSecret attempts waited for the rate
    /// limit, summed over the run (milliseconds).
    pub const RATE_LIMIT_WAIT: &str = "RateLimitWait";
}

/// The names of rotor's dimensions. Each has few values.
pub mod dimensions {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub const FUNCTION: &str = "Function";
    /// The step: `createSecret`, `setSecret`, `testSecret`, `finishSecret`.
    pub const STEP: &str = "Step";
    /// `Success`, `Retryable` or `NotRetryable` ([`super::OutcomeClass`]).
    pub const OUTCOME: &str = "Outcome";
    /// A failure's kind, the Lambda error type without its class:
    /// `SecretsManager`, `DatabaseAuth`, `InvalidSecretValue`, ...
    pub const ERROR_TYPE: &str = "ErrorType";
    /// The secret's name, only with [`super::SECRET_DIMENSION_VAR`]`=true`.
    pub const SECRET: &str = "Secret";
    /// rotation-scheduler: why secrets were skipped (`not_due`, `in_progress`,
    /// `outside_window`, `bad_window`, ...: the scheduler's `Skip::code`).
    pub const REASON: &str = "Reason";
    /// After-rotation actions: the action (`ecs`, `sns`, `webhook`, `unknown`).
    pub const ACTION: &str = "Action";
}

use dimensions::{ERROR_TYPE, FUNCTION, OUTCOME, SECRET, STEP};

/// A metric's unit, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
    /// A duration in seconds.
    Seconds,
    /// A share, 0 to 100.
    Percent,
}

impl Unit {
    /// CloudWatch's name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Percent => "Percent",
        }
    }
}

/// How an invocation ended, as the `Outcome` dimension says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeClass {
    /// It did its work (or found it done).
    Success,
    /// It failed, and running it again may help (`Retryable.*`).
    Retryable,
    /// It failed, and only a fix helps (`NotRetryable.*`).
    NotRetryable,
}

impl OutcomeClass {
    /// The failure class of an error that may or may not be retried.
    pub fn failure(retryable: bool) -> Self {
        if retryable {
            OutcomeClass::Retryable
        } else {
            OutcomeClass::NotRetryable
        }
    }

    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Success => "Success",
            OutcomeClass::Retryable => "Retryable",
            OutcomeClass::NotRetryable => "NotRetryable",
        }
    }
}

/// One metric of a [`Document`], with the dimension sets it is published under.
#[derive(Clone, Debug)]
struct Metric {
    name: &'static str,
    unit: Unit,
    value: f64,
    sets: Vec<Vec<&'static str>>,
}

/// One EMF document: dimension values, metrics (each published under its own
/// dimension sets) and the time. [`Document::to_json`] groups metrics that
/// share their sets into one directive, and leaves out a set that names a
/// dimension the document has no value for, and a value that is not finite:
/// CloudWatch would reject the whole document for either.
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// use rotor_core::metrics::{Document, Unit};
///
/// let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
/// let doc = Document::new(at)
///     .dimension("Function", "rotor-generic-rotation")
///     .metric("Steps", Unit::Count, 1.0, &[&["Function"]]);
/// let json = doc.to_json();
/// assert_eq!(json["_aws"]["Timestamp"], 1_750_000_000_000u64);
/// assert_eq!(json["_aws"]["CloudWatchMetrics"][0]["Namespace"], "rotor");
/// assert_eq!(json["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Function");
/// assert_eq!(json["Steps"], 1.0);
/// assert!(!doc.to_line().contains('\n'));
/// ```
#[derive(Clone, Debug)]
pub struct Document {
    timestamp: SystemTime,
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<Metric>,
    properties: Vec<(&'static str, Value)>,
}

impl Document {
    /// An empty document stamped `timestamp`.
    pub fn new(timestamp: SystemTime) -> Self {
        Document {
            timestamp,
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// Sets a dimension's value (replacing an earlier one of that name).
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.retain(|(n, _)| *n != name);
        self.dimensions.push((name, value.into()));
        self
    }

    /// Adds a metric, published under each of `sets` (lists of dimension names).
    pub fn metric(
        mut self,
        name: &'static str,
        unit: Unit,
        value: f64,
        sets: &[&[&'static str]],
    ) -> Self {
        self.metrics.retain(|m| m.name != name);
        self.metrics.push(Metric {
            name,
            unit,
            value,
            sets: sets.iter().map(|set| set.to_vec()).collect(),
        });
        self
    }

    /// Adds a field that is neither a dimension nor a metric, for log queries.
    pub fn property(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.properties.retain(|(n, _)| *n != name);
        self.properties.push((name, value.into()));
        self
    }

    /// Whether the document has a metric to publish.
    pub fn is_empty(&self) -> bool {
        !self.metrics.iter().any(|m| m.value.is_finite())
    }

    /// The document as CloudWatch reads it.
    pub fn to_json(&self) -> Value {
        let has = |name: &str| self.dimensions.iter().any(|(n, _)| *n == name);
        // Directives: metrics that share their (valid) dimension sets.
        let mut directives: Vec<(Vec<Vec<&'static str>>, Vec<&Metric>)> = Vec::new();
        for metric in self.metrics.iter().filter(|m| m.value.is_finite()) {
            let sets: Vec<Vec<&'static str>> = metric
                .sets
                .iter()
                .filter(|set| set.iter().all(|d| has(d)))
                .cloned()
                .collect();
            match directives.iter_mut().find(|(s, _)| *s == sets) {
                Some((_, metrics)) => metrics.push(metric),
                None => directives.push((sets, vec![metric])),
            }
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(sets, metrics)| {
                let metrics: Vec<Value> = metrics
                    .iter()
                    .map(|m| serde_json::json!({"Name": m.name, "Unit": m.unit.as_str()}))
                    .collect();
                serde_json::json!({
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": metrics,
                })
            })
            .collect();
        let millis = self
            .timestamp
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let millis = u64::try_from(millis).unwrap_or(u64::MAX);
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            serde_json::json!({"Timestamp": millis, "CloudWatchMetrics": directives}),
        );
        for (name, value) in &self.properties {
            root.insert((*name).into(), value.clone());
        }
        for (name, value) in &self.dimensions {
            root.insert((*name).into(), Value::String(value.clone()));
        }
        for metric in self.metrics.iter().filter(|m| m.value.is_finite()) {
            root.insert(metric.name.into(), Value::from(metric.value));
        }
        Value::Object(root)
    }

    /// The document as one line of JSON, without its newline.
    pub fn to_line(&self) -> String {
        // A JSON object's text never holds a raw newline: strings escape it.
        self.to_json().to_string()
    }
}

/// Prints each document that has a metric as a line of its own on stdout,
/// whole (one locked write per line), so that no log line splits it. A
/// failed write (a closed stdout) is ignored: metrics never fail a step.
pub fn emit(documents: &[Document]) {
    let mut out = std::io::stdout().lock();
    for document in documents.iter().filter(|d| !d.is_empty()) {
        let mut line = document.to_line();
        line.push('\n');
        let _ = out.write_all(line.as_bytes());
    }
    let _ = out.flush();
}

/// The name of the function emitting metrics: `AWS_LAMBDA_FUNCTION_NAME`.
pub fn function_name_from_env() -> String {
    match std::env::var(FUNCTION_NAME_VAR) {
        Ok(name) if !name.trim().is_empty() => name,
        _ => UNNAMED_FUNCTION.to_owned(),
    }
}

/// A rotation that a finishSecret completed: it moved AWSCURRENT to the
/// pending version. The times are what the store said, where it said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// When the pending version (the new credential) was created.
    pub pending_created: Option<SystemTime>,
    /// When the version that was AWSCURRENT (the credential replaced) was created.
    pub replaced_created: Option<SystemTime>,
    /// When AWSCURRENT moved.
    pub completed_at: SystemTime,
}

tokio::task_local! {
    static RECORDER: Recorder;
}

/// Carries what a step completed from the driver to the Lambda edge, whether
/// the step then succeeds or fails: a finishSecret that moved AWSCURRENT and
/// then failed in `after_finish` still completed the rotation (its replay
/// finds the version current and does not count it again). It also carries
/// the outcomes of the after-rotation actions the step ran ([`crate::after`]).
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    completion: Option<Completion>,
    actions: Vec<ActionRun>,
}

/// One after-rotation action a step ran or refused: its kind (`ecs`, `sns`,
/// `webhook`, `unknown`) and outcome, the `Action` and `Outcome` dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionRun {
    /// The action's kind.
    pub action: &'static str,
    /// Its outcome ([`crate::after::ActionOutcome::metric_name`]).
    pub outcome: &'static str,
}

impl Recorder {
    /// Runs `step` with this recorder as the one [`record_completion`] writes to.
    pub async fn track<F: Future>(&self, step: F) -> F::Output {
        RECORDER.scope(self.clone(), step).await
    }

    /// The rotation the step completed, if it completed one.
    pub fn completion(&self) -> Option<Completion> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .completion
    }

    /// The after-rotation actions the step ran, in order.
    pub fn actions(&self) -> Vec<ActionRun> {
        let recorded = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.actions.clone()
    }
}

/// Records that the running step completed a rotation. Outside a tracked step
/// (the CLI, tests calling the driver) it does nothing.
pub fn record_completion(completion: Completion) {
    let _ = RECORDER.try_with(|recorder| {
        recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .completion = Some(completion);
    });
}

/// Records an after-rotation action the running step ran or refused; outside
/// a tracked step it does nothing.
pub fn record_action(run: ActionRun) {
    let _ = RECORDER.try_with(|recorder| {
        let mut recorded = recorder.0.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.actions.push(run);
    });
}

/// What one step invocation did, for its metrics.
#[derive(Clone, Copy, Debug)]
pub struct StepRecord<'a> {
    /// The step, when the event could be parsed.
    pub step: Option<Step>,
    /// The event's SecretId, when the event could be parsed.
    pub secret_id: Option<&'a str>,
    /// From the event's arrival to the answer.
    pub duration: Duration,
    /// The step's report, or its error.
    pub result: Result<&'a StepReport, &'a Error>,
    /// The rotation it completed, if any.
    pub completion: Option<Completion>,
}

/// A rotation function's metric settings, read once at start.
#[derive(Clone, Debug)]
pub struct Metrics {
    function: String,
    /// Whether to add the secret's name, or why the variable is unusable.
    secret_dimension: Result<bool, String>,
}

impl Metrics {
    /// Settings for the function `function`.
    pub fn new(function: impl Into<String>, secret_dimension: bool) -> Self {
        Metrics {
            function: function.into(),
            secret_dimension: Ok(secret_dimension),
        }
    }

    /// Reads `AWS_LAMBDA_FUNCTION_NAME` and [`SECRET_DIMENSION_VAR`]. An
    /// unusable value of the latter is kept, and [`Metrics::problem`] says
    /// what is wrong with it.
    pub fn from_env() -> Self {
        let secret_dimension = match std::env::var(SECRET_DIMENSION_VAR) {
            Err(_) => Ok(false),
            Ok(text) => parse_flag(&text).ok_or_else(|| {
                format!(
                    "{SECRET_DIMENSION_VAR}={text:?} is neither true nor false; set it to true to add the secret's name to the metrics, or false (or leave it unset) for none"
                )
            }),
        };
        Metrics {
            function: function_name_from_env(),
            secret_dimension,
        }
    }

    /// The `Function` dimension's value.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// What is wrong with [`SECRET_DIMENSION_VAR`], if anything: every step
    /// then fails with [`Error::InvalidSettings`] naming it.
    pub fn problem(&self) -> Option<&str> {
        self.secret_dimension.as_ref().err().map(String::as_str)
    }

    fn secret_dimension(&self) -> bool {
        matches!(self.secret_dimension, Ok(true))
    }

    /// The document of one step invocation, stamped `at`.
    pub fn step(&self, record: &StepRecord<'_>, at: SystemTime) -> Document {
        let (class, kind) = match record.result {
            Ok(_) => (OutcomeClass::Success, None),
            Err(error) => (
                OutcomeClass::failure(error.is_retryable()),
                Some(error.kind()),
            ),
        };
        let secret = record
            .secret_id
            .filter(|_| self.secret_dimension())
            .map(secret_name)
            .filter(|name| !name.is_empty());
        let mut doc = Document::new(at)
            .dimension(FUNCTION, self.function.clone())
            .dimension(OUTCOME, class.as_str());
        if let Some(step) = record.step {
            doc = doc.dimension(STEP, step.as_str());
        }
        if let Some(kind) = &kind {
            doc = doc.dimension(ERROR_TYPE, kind.to_string());
        }
        if let Some(name) = secret {
            doc = doc.dimension(SECRET, name);
        }
        if let Ok(report) = record.result {
            doc = doc.property("Result", outcome_name(report.outcome));
        }
        let millis = record.duration.as_secs_f64() * 1000.0;
        doc = doc
            .metric(
                names::STEP_DURATION,
                Unit::Milliseconds,
                millis,
                &[&[FUNCTION], &[FUNCTION, STEP], &[FUNCTION, SECRET]],
            )
            .metric(
                names::STEPS,
                Unit::Count,
                1.0,
                &[
                    &[FUNCTION, OUTCOME],
                    &[FUNCTION, STEP, OUTCOME],
                    &[FUNCTION, OUTCOME, ERROR_TYPE],
                    &[FUNCTION, SECRET, OUTCOME],
                ],
            );
        if let Some(completion) = record.completion {
            doc = with_completion(doc, &completion);
        }
        doc
    }
}

/// Adds a completed rotation's metrics to a step's document.
fn with_completion(doc: Document, completion: &Completion) -> Document {
    let sets: &[&[&'static str]] = &[&[FUNCTION], &[FUNCTION, SECRET]];
    let since = |created: Option<SystemTime>| {
        created.and_then(|c| completion.completed_at.duration_since(c).ok())
    };
    let mut doc = doc.metric(names::ROTATIONS_COMPLETED, Unit::Count, 1.0, sets);
    if let Some(took) = since(completion.pending_created) {
        let millis = took.as_secs_f64() * 1000.0;
        doc = doc.metric(names::ROTATION_DURATION, Unit::Milliseconds, millis, sets);
    }
    if let Some(age) = since(completion.replaced_created) {
        let seconds = age.as_secs_f64();
        doc = doc.metric(names::REPLACED_CREDENTIAL_AGE, Unit::Seconds, seconds, sets);
    }
    doc
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "done",
        Outcome::PendingKept => "pending_kept",
        Outcome::AlreadyCurrent => "already_current",
    }
}

/// `true` or `false` (any case, surrounding spaces ignored); empty is `false`.
fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" | "" => Some(false),
        _ => None,
    }
}

/// A secret's name from the event's SecretId: a full ARN loses its prefix and
/// Secrets Manager's `-XXXXXX` suffix; anything else is taken as a name.
///
/// ```
/// use rotor_core::metrics::secret_name;
///
/// let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/db-app-AbC123";
/// assert_eq!(secret_name(arn), "team-a/db-app");
/// assert_eq!(secret_name("team-a/db-app"), "team-a/db-app");
/// ```
pub fn secret_name(secret_id: &str) -> &str {
    let Some((_, name)) = secret_id
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":secret:"))
    else {
        return secret_id;
    };
    if crate::linked::has_random_suffix(name) {
        &name[..name.len() - 7]
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn report(outcome: Outcome) -> StepReport {
        StepReport {
            step: "finishSecret",
            secret: "arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf".into(),
            version_id: "v2".into(),
            outcome,
        }
    }

    /// The dimension sets of the directive that publishes `metric`.
    fn sets_of(doc: &Value, metric: &str) -> Vec<Vec<String>> {
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        let directive = directives
            .iter()
            .find(|d| {
                d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["Name"] == metric)
            })
            .unwrap_or_else(|| panic!("no {metric} in {doc}"));
        serde_json::from_value(directive["Dimensions"].clone()).unwrap()
    }

    fn set(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_successful_step_counts_by_function_step_and_outcome() {
        let metrics = Metrics::new("rotor-generic-rotation", false);
        let report = report(Outcome::Done);
        let record = StepRecord {
            step: Some(Step::SetSecret),
            secret_id: Some("arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf"),
            duration: Duration::from_millis(1500),
            result: Ok(&report),
            completion: None,
        };
        let doc = metrics.step(&record, at()).to_json();
        assert_eq!(doc["Function"], "rotor-generic-rotation");
        assert_eq!(doc["Step"], "setSecret");
        assert_eq!(doc["Outcome"], "Success");
        assert_eq!(doc["Result"], "done");
        assert_eq!(doc["StepDuration"], 1500.0);
        assert_eq!(doc["Steps"], 1.0);
        assert!(doc.get("ErrorType").is_none() && doc.get("Secret").is_none());
        assert_eq!(
            sets_of(&doc, "StepDuration"),
            vec![set(&["Function"]), set(&["Function", "Step"])]
        );
        assert_eq!(
            sets_of(&doc, "Steps"),
            vec![
                set(&["Function", "Outcome"]),
                set(&["Function", "Step", "Outcome"])
            ]
        );
        assert!(doc.get("RotationsCompleted").is_none());
        assert!(!doc.to_string().contains("app"), "no secret name: {doc}");
    }

    #[test]
    fn a_failure_counts_by_class_and_kind() {
        let metrics = Metrics::new("f", false);
        let throttled = Error::Store {
            secret: "s".into(),
            operation: "GetSecretValue",
            source: StoreError::Throttled("slow down".into()),
        };
        let disabled = Error::RotationDisabled { secret: "s".into() };
        for (error, class, kind) in [
            (&throttled, "Retryable", "SecretsManager"),
            (&disabled, "NotRetryable", "RotationDisabled"),
        ] {
            let record = StepRecord {
                step: Some(Step::CreateSecret),
                secret_id: Some("s"),
                duration: Duration::from_millis(3),
                result: Err(error),
                completion: None,
            };
            let doc = metrics.step(&record, at()).to_json();
            assert_eq!(doc["Outcome"], class);
            assert_eq!(doc["ErrorType"], kind);
            assert!(doc.get("Result").is_none());
            assert!(sets_of(&doc, "Steps").contains(&set(&["Function", "Outcome", "ErrorType"])));
        }
    }

    #[test]
    fn an_invalid_event_has_no_step_dimension() {
        let error = Error::InvalidEvent {
            reason: "no Step".into(),
        };
        let record = StepRecord {
            step: None,
            secret_id: None,
            duration: Duration::ZERO,
            result: Err(&error),
            completion: None,
        };
        let doc = Metrics::new("f", true).step(&record, at()).to_json();
        assert!(doc.get("Step").is_none() && doc.get("Secret").is_none());
        assert_eq!(sets_of(&doc, "StepDuration"), vec![set(&["Function"])]);
        assert_eq!(
            sets_of(&doc, "Steps"),
            vec![
                set(&["Function", "Outcome"]),
                set(&["Function", "Outcome", "ErrorType"])
            ]
        );
    }

    #[test]
    fn the_secret_name_only_when_the_deployer_opts_in() {
        let report = report(Outcome::Done);
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:team-a/app-AbCdEf";
        let record = StepRecord {
            step: Some(Step::FinishSecret),
            secret_id: Some(arn),
            duration: Duration::from_millis(10),
            result: Ok(&report),
            completion: None,
        };
        let without = Metrics::new("f", false).step(&record, at()).to_json();
        assert!(without.get("Secret").is_none());
        let with = Metrics::new("f", true).step(&record, at()).to_json();
        assert_eq!(with["Secret"], "team-a/app");
        assert!(sets_of(&with, "Steps").contains(&set(&["Function", "Secret", "Outcome"])));
        assert!(sets_of(&with, "StepDuration").contains(&set(&["Function", "Secret"])));
    }

    #[test]
    fn a_completed_rotation_reports_its_time_and_the_replaced_credentials_age() {
        let report = report(Outcome::Done);
        let completion = Completion {
            pending_created: Some(at() - Duration::from_millis(2500)),
            replaced_created: Some(at() - Duration::from_secs(30 * 86_400)),
            completed_at: at(),
        };
        let record = StepRecord {
            step: Some(Step::FinishSecret),
            secret_id: Some("s"),
            duration: Duration::from_millis(10),
            result: Ok(&report),
            completion: Some(completion),
        };
        let doc = Metrics::new("f", false).step(&record, at()).to_json();
        assert_eq!(doc["RotationsCompleted"], 1.0);
        assert_eq!(doc["RotationDuration"], 2500.0);
        assert_eq!(doc["ReplacedCredentialAge"], 30.0 * 86_400.0);
        assert_eq!(
            sets_of(&doc, "RotationsCompleted"),
            vec![set(&["Function"])]
        );
        // Unknown times leave their metric out, not a zero.
        let unknown = Completion {
            pending_created: None,
            replaced_created: Some(at() + Duration::from_secs(5)),
            completed_at: at(),
        };
        let record = StepRecord {
            completion: Some(unknown),
            ..record
        };
        let doc = Metrics::new("f", false).step(&record, at()).to_json();
        assert_eq!(doc["RotationsCompleted"], 1.0);
        assert!(doc.get("RotationDuration").is_none());
        assert!(doc.get("ReplacedCredentialAge").is_none());
    }

    #[test]
    fn invalid_sets_and_values_are_left_out() {
        let doc = Document::new(at())
            .dimension("Function", "f")
            .metric("A", Unit::Count, f64::NAN, &[&["Function"]])
            .metric(
                "B",
                Unit::Count,
                2.0,
                &[&["Function"], &["Function", "Nope"]],
            );
        let json = doc.to_json();
        assert!(json.get("A").is_none());
        assert_eq!(sets_of(&json, "B"), vec![set(&["Function"])]);
        assert!(Document::new(at()).is_empty());
    }

    #[test]
    fn the_flag_is_true_false_or_refused() {
        assert_eq!(parse_flag(" TRUE "), Some(true));
        assert_eq!(parse_flag("false"), Some(false));
        assert_eq!(parse_flag(""), Some(false));
        assert_eq!(parse_flag("yes"), None);
    }

    #[test]
    fn secret_names_from_arns() {
        assert_eq!(
            secret_name("arn:aws:secretsmanager:eu-west-1:1:secret:db/app-Zz9Yy8"),
            "db/app"
        );
        assert_eq!(
            secret_name("arn:aws:secretsmanager:eu-west-1:1:secret:db/app"),
            "db/app"
        );
        assert_eq!(secret_name("plain"), "plain");
        assert_eq!(secret_name("arn:aws:other"), "arn:aws:other");
    }

    #[tokio::test]
    async fn completions_reach_the_edge_only_inside_a_tracked_step() {
        let completion = Completion {
            pending_created: None,
            replaced_created: None,
            completed_at: at(),
        };
        record_completion(completion);
        let recorder = Recorder::default();
        assert_eq!(recorder.completion(), None);
        recorder
            .track(async { record_completion(completion) })
            .await;
        assert_eq!(recorder.completion(), Some(completion));
    }
}
