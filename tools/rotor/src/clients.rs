//! The SDK clients of the commands that look at real deployments (`status`,
//! `doctor`): AWS's default credential chain and region, or one endpoint (an
//! emulator such as moto) with throwaway credentials.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::BoxError;

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

/// Secrets Manager and Lambda clients for one account and region.
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
    /// Clients for `endpoint`, or for AWS (default credential chain) without one.
    pub async fn new(endpoint: Option<&str>) -> Clients {
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok())
            .filter(|e| !e.is_empty());
        let counter = CallCounter::default();
        match &endpoint {
            Some(url) => {
                use aws_sdk_lambda::config::{Credentials, Region};
                let lambda = aws_sdk_lambda::Config::builder()
                    .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
                    .http_client(rotor_core::store::aws::https_client())
                    .region(Region::new("us-east-1"))
                    .endpoint_url(url)
                    .credentials_provider(Credentials::new(
                        "rotor-local",
                        "rotor-local",
                        None,
                        None,
                        "rotor",
                    ))
                    .interceptor(counter.clone())
                    .build();
                let secrets = rotor_testbed::moto::local_client(url)
                    .config()
                    .to_builder()
                    .interceptor(counter.clone())
                    .build();
                Clients {
                    secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
                    lambda: aws_sdk_lambda::Client::from_conf(lambda),
                    endpoint,
                    counter,
                }
            }
            None => {
                let config = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(rotor_core::store::aws::https_client())
                    .load()
                    .await;
                let secrets = aws_sdk_secretsmanager::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build();
                let lambda = aws_sdk_lambda::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build();
                Clients {
                    secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
                    lambda: aws_sdk_lambda::Client::from_conf(lambda),
                    endpoint: None,
                    counter,
                }
            }
        }
    }
}
