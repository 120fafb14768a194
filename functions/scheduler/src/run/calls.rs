//! The run's Secrets Manager calls: each retried, paced and cut at the
//! deadline ([`Run::call`]), pages read to the end, answers turned into facts.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::DateTime;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType, Tag};
use rotor_core::labels::{AWSPENDING, Versions};
use rotor_core::store::StoreError;
use rotor_core::store::aws::classify;
use tokio::time::Instant;
use tracing::warn;

use super::{
    CHECK_TIMEOUT, CallError, CallFailure, CheckError, MAX_LIST_PAGES, MAX_VERSION_PAGES, Run,
};
use crate::{Config, Rotation, SecretFacts, retry};

impl Run {
    /// Calls `attempt` until it succeeds, fails for good, or has been tried
    /// [`retry::MAX_ATTEMPTS`] times; throttling and server errors are retried
    /// after an exponential, jittered wait. Attempts and waits together end at
    /// the run's `stop_at`: a call cut there fails with [`CallFailure::Deadline`].
    pub(super) async fn call<T, F, Fut>(
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

    pub(super) fn past_stop(&self) -> bool {
        self.stop_at.is_some_and(|stop| Instant::now() >= stop)
    }

    pub(super) fn client(&self) -> &Client {
        &self.scheduler.client
    }

    pub(super) fn config(&self) -> &Config {
        &self.scheduler.config
    }

    /// Every secret ListSecrets returns for the tag filter (a superset of the
    /// selected ones: the service matches prefixes).
    pub(super) async fn list(&self) -> Result<Vec<SecretFacts>, CallError> {
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
                schedule_expression: rule(entry.rotation_rules(), |r| r.schedule_expression()),
                window_duration: rule(entry.rotation_rules(), |r| r.duration()),
            });
            Ok((secrets.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    /// DescribeSecret, as facts.
    pub(super) async fn describe(&self, arn: &str) -> Result<SecretFacts, CallError> {
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
            schedule_expression: rule(out.rotation_rules(), |r| r.schedule_expression()),
            window_duration: rule(out.rotation_rules(), |r| r.duration()),
        })
    }

    /// After a RotateSecret cut at the deadline: one DescribeSecret, within
    /// [`CHECK_TIMEOUT`], to see whether the version is staged. `Err` says
    /// why it could not tell.
    pub(super) async fn staged(&self, arn: &str, token: &str) -> Result<bool, CheckError> {
        let look = self.client().describe_secret().secret_id(arn).send();
        match tokio::time::timeout(CHECK_TIMEOUT, look).await {
            Ok(Ok(out)) => Ok(versions(out.version_ids_to_stages()).has_label(token, AWSPENDING)),
            Ok(Err(e)) => Err(classify(e).into()),
            Err(_) => Err(CheckError::TimedOut),
        }
    }

    /// The creation time of every version, deprecated ones included. A version
    /// without a date counts as created now, so it counts toward the limit.
    pub(super) async fn version_dates(&self, arn: &str) -> Result<Vec<i64>, CallError> {
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
    pub(super) async fn rotate(
        &self,
        arn: &str,
        token: &str,
        rotation: &Rotation,
        sent: &AtomicBool,
    ) -> Result<(), CallError> {
        let function = rotation.function();
        self.call("RotateSecret", arn, || async move {
            let waited = self.scheduler.limiter.acquire().await;
            self.rotate_calls.fetch_add(1, Ordering::Relaxed);
            *super::lock(&self.rate_limit_wait) += waited;
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
}

/// Reads pages until one names no next page, `max_pages` at most (a guard
/// against a service that keeps answering with one). `fetch` gets the token to
/// continue from and returns the page's items and the next token.
pub(super) async fn paged<T, F, Fut>(max_pages: usize, mut fetch: F) -> Result<Vec<T>, CallError>
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
pub(super) trait MapOutput: Future + Sized {
    fn map_output<T>(self, f: impl FnOnce(Self::Output) -> T) -> impl Future<Output = T> {
        async move { f(self.await) }
    }
}

impl<F: Future> MapOutput for F {}

pub(super) fn tag_map(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// A field of RotationRules, `None` when absent or empty.
pub(super) fn rule(
    rules: Option<&RotationRulesType>,
    field: impl Fn(&RotationRulesType) -> Option<&str>,
) -> Option<String> {
    rules
        .and_then(field)
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
}

/// A RotationLambdaARN, `None` when absent or empty.
pub(super) fn function(arn: Option<&str>) -> Option<String> {
    arn.map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
}

pub(super) fn versions(map: Option<&std::collections::HashMap<String, Vec<String>>>) -> Versions {
    Versions::new(
        map.into_iter()
            .flatten()
            .map(|(id, labels)| (id.clone(), labels.clone())),
    )
}
