//! Runs a secret's after-rotation actions at finishSecret, once AWSCURRENT
//! is the new version: each allowed entry in the tag's order, retried a
//! bounded number of times, its outcome recorded on the secret before the
//! next starts. Nothing here fails the step.

use std::time::Duration;

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::plan::{Action, AllowList, Planned};
use super::{AFTER_TAG, ActionOutcome, RESULT_TAG, Record, vars};
use crate::labels::AWSCURRENT;
use crate::metrics::{ActionRun, record_action};
use crate::retry::Backoff;
use crate::rotation::StepContext;
use crate::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::store::{SecretStore, VersionSelector};

/// How many times an action is tried before it counts as failed.
const ATTEMPTS: u32 = 3;

/// The ECS and SNS clients the actions use, built at the first action that
/// needs one (never at cold start).
#[derive(Clone, Debug)]
pub struct Clients {
    ecs: aws_sdk_ecs::Client,
    sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Clients built elsewhere (the tests point them at moto).
    pub fn new(ecs: aws_sdk_ecs::Client, sns: aws_sdk_sns::Client) -> Self {
        Clients { ecs, sns }
    }

    /// Clients from the environment, as the secret store's: region,
    /// credentials and endpoints (`AWS_ENDPOINT_URL_ECS`, `AWS_ENDPOINT_URL_SNS`)
    /// as the SDK resolves them. The SDK's own retries are off: each action
    /// has its bounded [`Backoff`].
    pub async fn from_env() -> Self {
        let config = crate::store::aws::sdk_loader()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        Clients::new(
            aws_sdk_ecs::Client::new(&config),
            aws_sdk_sns::Client::new(&config),
        )
    }
}

/// The actions the deployer allows, and how to run them; read once per process.
#[derive(Debug)]
pub struct Actions {
    allow: AllowList,
    key_secret: Option<String>,
    notice_topic: Option<String>,
    clients: OnceCell<Clients>,
    first_delay: Duration,
}

/// Why an action failed (no value in it), and whether a retry may help.
struct Failure {
    problem: String,
    retryable: bool,
}

impl Actions {
    /// Reads the `ROTOR_AFTER_*` variables from `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let one = |var| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Actions {
            allow: AllowList::from_lookup(&lookup),
            key_secret: one(vars::WEBHOOK_KEY_SECRET),
            notice_topic: one(vars::NOTICE_TOPIC),
            clients: OnceCell::new(),
            first_delay: Duration::from_millis(200),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Uses these clients rather than building them from the environment.
    pub fn with_clients(self, clients: Clients) -> Self {
        Actions {
            clients: OnceCell::new_with(Some(clients)),
            ..self
        }
    }

    async fn clients(&self) -> &Clients {
        self.clients.get_or_init(Clients::from_env).await
    }

    /// Runs the actions the secret's `rotor:after` tag lists that have no
    /// outcome recorded for this version yet. Call it once AWSCURRENT is
    /// the event's version.
    pub(crate) async fn run<S: SecretStore>(&self, ctx: &StepContext<'_, S>) {
        let Some(after) = ctx.secret.tags.get(AFTER_TAG) else {
            return;
        };
        let (arn, version) = (ctx.secret_arn(), ctx.event.version_id.as_str());
        let mut record = ctx
            .secret
            .tags
            .get(RESULT_TAG)
            .and_then(|tag| Record::parse(tag))
            .filter(|r| r.version_id == version)
            .unwrap_or_else(|| Record {
                version_id: version.to_owned(),
                outcomes: Vec::new(),
            });
        let mut problems = Vec::new();
        for (index, planned) in self.allow.plan(after).iter().enumerate() {
            if let Some(outcome) = record.outcome(version, index) {
                info!(secret = %arn, version = %version, entry = index + 1, outcome = outcome.as_str(),
                    "after-rotation action already ran for this version; not running it again");
                continue;
            }
            let (kind, outcome) = match planned {
                Planned::Refused(reason) => {
                    warn!(secret = %arn, version = %version, reason = %reason,
                        "after-rotation action refused; it does nothing");
                    problems.push(format!("refused {reason}"));
                    (kind_of(after, index), ActionOutcome::Refused)
                }
                Planned::Allowed(action) => match self.attempt(ctx, action).await {
                    Ok(()) => {
                        info!(secret = %arn, version = %version, target = %action.target(),
                            "after-rotation action done");
                        (action.kind(), ActionOutcome::Done)
                    }
                    Err(problem) => {
                        warn!(secret = %arn, version = %version, target = %action.target(),
                            problem = %problem, "after-rotation action failed; the rotation stands");
                        problems.push(format!("{} failed: {problem}", action.target()));
                        (action.kind(), ActionOutcome::Failed)
                    }
                },
            };
            record_action(ActionRun {
                action: kind,
                outcome: outcome.metric_name(),
            });
            // Record the outcome before the next action starts: a replay
            // (or a crash and retry) runs none of the recorded ones again.
            record.outcomes.push(outcome);
            if let Err(e) = ctx.store().set_tag(arn, RESULT_TAG, &record.to_tag()).await {
                warn!(secret = %arn, version = %version, error = %e,
                    "could not record the after-rotation action's outcome in the {RESULT_TAG} tag; \
                     a replayed finishSecret would run it again: grant the function's role \
                     secretsmanager:TagResource on the secret for that tag key");
            }
        }
        if !problems.is_empty() {
            self.notice(ctx, &problems).await;
        }
    }

    /// Tries an action up to [`ATTEMPTS`] times while its failure is one a
    /// retry may cure, and never past the step's deadline.
    async fn attempt<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        action: &Action,
    ) -> Result<(), String> {
        crate::progress::waiting_for(|| action.target());
        Backoff::new(self.first_delay, Duration::from_secs(2))
            .attempts(ATTEMPTS)
            .run(
                |_| self.once(ctx, action),
                |failure: &Failure| failure.retryable,
                |attempt, failure, delay| {
                    warn!(secret = %ctx.secret_arn(), target = %action.target(), attempt,
                        problem = %failure.problem, delay_ms = delay.as_millis() as u64,
                        "after-rotation action failed; retrying");
                },
            )
            .await
            .map_err(|gave_up| {
                format!(
                    "{} (after {} attempts)",
                    gave_up.error.problem, gave_up.attempts
                )
            })
    }

    async fn once<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        action: &Action,
    ) -> Result<(), Failure> {
        match action {
            Action::Ecs(service) => {
                let ecs = &self.clients().await.ecs;
                ecs.update_service()
                    .cluster(&service.cluster_arn)
                    .service(&service.arn)
                    .force_new_deployment(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_failure("ecs:UpdateService", e))
            }
            Action::Sns(topic) => self.publish(topic, &message(ctx)).await,
            Action::Webhook(url) => self.post(ctx, url).await,
        }
    }

    async fn publish(&self, topic: &str, message: &str) -> Result<(), Failure> {
        let sns = &self.clients().await.sns;
        sns.publish()
            .topic_arn(topic)
            .subject("rotor: secret rotated")
            .message(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_failure("sns:Publish", e))
    }

    /// A signed POST of `{"action":"finished", secret, version}`: no value.
    async fn post<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        url: &reqwest::Url,
    ) -> Result<(), Failure> {
        let key = self.key(ctx).await?;
        let body = message(ctx);
        let timestamp = crate::signature::now();
        let signature = sign(key.expose_secret().as_bytes(), timestamp, body.as_bytes());
        let client = crate::http::client().map_err(|e| Failure {
            problem: e.to_string(),
            retryable: false,
        })?;
        let response = client
            .post(url.clone())
            .header("Content-Type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure {
                problem: crate::http::describe(&e),
                retryable: true,
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(Failure {
                problem: format!(
                    "the receiver refused rotor's signature (HTTP {status}); it must hold the \
                     value of the key secret ({})",
                    vars::WEBHOOK_KEY_SECRET
                ),
                retryable: false,
            }),
            408 | 429 | 500..=599 => Err(Failure {
                problem: format!("the receiver answered HTTP {status}"),
                retryable: true,
            }),
            _ => Err(Failure {
                problem: format!("the receiver answered HTTP {status}; see its logs"),
                retryable: false,
            }),
        }
    }

    /// The webhook's signing key: the AWSCURRENT value of the secret the
    /// deployer named (never one a tag names).
    async fn key<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<SecretString, Failure> {
        let Some(secret) = &self.key_secret else {
            return Err(Failure {
                problem: format!(
                    "no signing key: the deployer must name a key secret in {} \
                     (the stack's afterWebhookKeySecret parameter)",
                    vars::WEBHOOK_KEY_SECRET
                ),
                retryable: false,
            });
        };
        match ctx
            .store()
            .get_value(secret, VersionSelector::Label(AWSCURRENT))
            .await
        {
            Ok(Some(stored)) => Ok(stored.value),
            Ok(None) => Err(Failure {
                problem: format!(
                    "the signing key secret {secret} ({}) has no AWSCURRENT value, or the \
                     function may not read it",
                    vars::WEBHOOK_KEY_SECRET
                ),
                retryable: false,
            }),
            Err(e) => Err(Failure {
                retryable: e.is_retryable(),
                problem: format!("reading the signing key secret {secret}: {e}"),
            }),
        }
    }

    /// Tells the notice topic, when the deployer named one, which actions
    /// failed or were refused. Best effort: a failure is only logged.
    async fn notice<S: SecretStore>(&self, ctx: &StepContext<'_, S>, problems: &[String]) {
        let Some(topic) = &self.notice_topic else {
            return;
        };
        let text = serde_json::json!({
            "action": "after-rotation-problems",
            "secretArn": ctx.secret_arn(),
            "secretName": ctx.secret.name,
            "versionId": ctx.event.version_id,
            "problems": problems,
        })
        .to_string();
        if let Err(failure) = self.publish(topic, &text).await {
            warn!(secret = %ctx.secret_arn(), topic = %topic, problem = %failure.problem,
                "could not tell the notice topic about the after-rotation actions' problems");
        }
    }
}

/// What an SNS topic and a webhook receive: the secret and the version, never a value.
fn message<S: SecretStore>(ctx: &StepContext<'_, S>) -> String {
    serde_json::json!({
        "action": "finished",
        "secretArn": ctx.secret_arn(),
        "secretName": ctx.secret.name,
        "versionId": ctx.event.version_id,
    })
    .to_string()
}

/// The kind of a refused entry, for the metrics: one of the three, or `unknown`.
fn kind_of(after: &str, index: usize) -> &'static str {
    let entry = super::entries(after)
        .get(index)
        .copied()
        .unwrap_or_default();
    match entry.split_once(':').map(|(kind, _)| kind) {
        Some("ecs") => "ecs",
        Some("sns") => "sns",
        Some("webhook") => "webhook",
        _ => "unknown",
    }
}

/// An SDK failure: retryable when the service throttled or failed, or the
/// call never got an answer.
fn sdk_failure<E, R>(call: &str, error: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code == "ServerException"
                || code == "InternalError"
                || code == "ServiceUnavailable"
        }
        _ => false,
    };
    let code = error.code().unwrap_or("no answer").to_owned();
    let detail = match error.message() {
        Some(message) => message.to_owned(),
        None => DisplayErrorContext(&error).to_string(),
    };
    let fix = if code.contains("AccessDenied") || code.contains("AuthorizationError") {
        "; the deployer must list the target in the stack's after-rotation parameters, \
         which grant the role this call on it"
    } else {
        ""
    };
    Failure {
        problem: format!("{call} failed: {code}: {detail}{fix}"),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{RotationEvent, Step};
    use crate::metrics::Recorder;
    use crate::rotation::{Driver, Outcome, Rotator};
    use crate::store::RotationService;
    use crate::{Error, MemoryStore};

    struct Generated;

    impl Rotator for Generated {
        type Secret = crate::value::Opaque;
        async fn create_value<S: SecretStore>(
            &self,
            ctx: &StepContext<'_, S>,
        ) -> Result<SecretString, Error> {
            ctx.generate_password(&Default::default())
        }
        async fn set_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
            Ok(())
        }
        async fn test_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
            Ok(())
        }
    }

    /// Clients whose endpoint refuses every connection.
    fn unreachable() -> Clients {
        use aws_credential_types::Credentials;
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(crate::store::aws::https_client())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "test", "test", None, None, "test",
                )),
            )
            .build();
        Clients::new(
            aws_sdk_ecs::Client::new(&config),
            aws_sdk_sns::Client::new(&config),
        )
    }

    #[tokio::test]
    async fn a_failed_action_leaves_the_rotation_done_and_runs_once_per_version() {
        let store = MemoryStore::new();
        let after = "ecs:prod/web ecs:prod/api";
        let arn = store
            .create_secret(
                "app/db",
                &SecretString::from("first"),
                &[(AFTER_TAG, after)],
            )
            .await
            .unwrap();
        store.begin_rotation(&arn, "v2").await.unwrap();
        let mut actions = Actions::from_lookup(|var| {
            (var == vars::ECS_SERVICES)
                .then(|| "arn:aws:ecs:us-east-1:123456789012:service/prod/web".to_owned())
        })
        .with_clients(unreachable());
        actions.first_delay = Duration::from_millis(1);
        let driver = Driver::new(&store, Generated).with_actions(actions);
        let event = |step| RotationEvent {
            secret_id: arn.clone(),
            version_id: "v2".into(),
            step,
            rotation_token: None,
        };
        for step in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
            driver.run(&event(step)).await.unwrap();
        }
        let recorder = Recorder::default();
        let finished = recorder.track(driver.run(&event(Step::FinishSecret))).await;
        assert_eq!(finished.unwrap().outcome, Outcome::Done);
        let secret = store.describe(&arn).await.unwrap();
        assert_eq!(secret.versions.current(), Some("v2"));
        assert_eq!(secret.tags[RESULT_TAG], "v2 failed refused");
        let runs: Vec<_> = recorder.actions().iter().map(|r| r.outcome).collect();
        assert_eq!(runs, ["Failed", "Refused"]);

        let replay = Recorder::default();
        let again = replay.track(driver.run(&event(Step::FinishSecret))).await;
        assert_eq!(again.unwrap().outcome, Outcome::AlreadyCurrent);
        assert!(replay.actions().is_empty(), "{:?}", replay.actions());
        let secret = store.describe(&arn).await.unwrap();
        assert_eq!(secret.tags[RESULT_TAG], "v2 failed refused");
    }

    #[test]
    fn refused_entries_are_counted_by_their_kind() {
        let after = "ecs:a/b sns:arn webhook:x restart";
        assert_eq!(kind_of(after, 0), "ecs");
        assert_eq!(kind_of(after, 1), "sns");
        assert_eq!(kind_of(after, 2), "webhook");
        assert_eq!(kind_of(after, 3), "unknown");
        assert_eq!(kind_of(after, 9), "unknown");
    }
}
