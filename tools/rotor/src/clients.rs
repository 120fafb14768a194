//! The SDK clients of every command: AWS's default credential chain and
//! region, or one endpoint (an emulator such as moto) with throwaway
//! credentials; always with connect, attempt and operation timeouts, so that
//! an endpoint that accepts and never answers ends a command with an error
//! rather than hangs it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::BoxError;

use crate::endpoint::{BadEndpoint, Call, EMULATOR_REGION, Service, timeouts};

/// Counts the requests both clients send (every attempt, retries included),
/// by operation: what a command costs in API calls.
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// Requests by operation so far.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "rotor-call-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        // Secrets Manager names the operation in a header; Lambda's REST
        // paths end in what is asked for (…/configuration, …/policy).
        let operation = match request.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            None => {
                let path = request.uri().split('?').next().unwrap_or_default();
                format!(
                    "lambda {} {}",
                    request.method(),
                    path.rsplit('/').next().unwrap_or_default()
                )
            }
        };
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

/// Secrets Manager and Lambda clients for one account and region, with the
/// connect, attempt and operation timeouts of [`crate::endpoint::timeouts`].
pub struct Clients {
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Lambda (function configuration and policy).
    pub lambda: aws_sdk_lambda::Client,
    /// The endpoint, when not AWS's.
    pub endpoint: Option<String>,
    /// The requests both clients sent.
    pub counter: CallCounter,
}

impl Clients {
    /// Clients for `endpoint` (else `AWS_ENDPOINT_URL_SECRETS_MANAGER`), or
    /// for AWS (default credential chain) without one; an endpoint that is no
    /// http(s) URL is refused here, before any call.
    pub async fn new(endpoint: Option<&str>) -> Result<Clients, BadEndpoint> {
        let endpoint = crate::endpoint::secrets_manager(endpoint)?;
        let counter = CallCounter::default();
        let config = match &endpoint {
            Some(url) => emulator_config(url),
            None => aws_config().await,
        };
        let secrets = aws_sdk_secretsmanager::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build();
        let lambda = aws_sdk_lambda::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build();
        Ok(Clients {
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
            lambda: aws_sdk_lambda::Client::from_conf(lambda),
            endpoint,
            counter,
        })
    }

    /// How a call to Secrets Manager is described when it fails.
    pub fn secrets_call<'a>(
        &'a self,
        operation: &'static str,
        subject: Option<&'a str>,
    ) -> Call<'a> {
        Call {
            service: Service::SecretsManager,
            endpoint: self.endpoint.as_deref(),
            operation,
            subject,
        }
    }
}

/// The SDK configuration for an emulator at `endpoint` (moto, LocalStack,
/// `sam local start-lambda`): throwaway credentials, [`EMULATOR_REGION`],
/// rustls on ring, and the CLI's timeouts.
pub fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .region(Region::new(EMULATOR_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "rotor-local",
            "rotor-local",
            None,
            None,
            "rotor",
        )))
        .timeout_config(timeouts())
        .build()
}

/// The SDK configuration for AWS: the default credential chain and region,
/// and the CLI's timeouts.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .timeout_config(timeouts())
        .load()
        .await
}
