//! The SDK clients of the commands that look at real deployments (`status`,
//! `doctor`): AWS's default credential chain and region, or one endpoint (an
//! emulator such as moto) with throwaway credentials.

use aws_config::BehaviorVersion;

/// Secrets Manager and Lambda clients for one account and region.
pub struct Clients {
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Lambda (function configuration and policy).
    pub lambda: aws_sdk_lambda::Client,
    /// The endpoint, when not AWS's.
    pub endpoint: Option<String>,
}

impl Clients {
    /// Clients for `endpoint`, or for AWS (default credential chain) without one.
    pub async fn new(endpoint: Option<&str>) -> Clients {
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok())
            .filter(|e| !e.is_empty());
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
                    .build();
                Clients {
                    secrets: crate::moto::local_client(url),
                    lambda: aws_sdk_lambda::Client::from_conf(lambda),
                    endpoint,
                }
            }
            None => {
                let config = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(rotor_core::store::aws::https_client())
                    .load()
                    .await;
                Clients {
                    secrets: aws_sdk_secretsmanager::Client::new(&config),
                    lambda: aws_sdk_lambda::Client::new(&config),
                    endpoint: None,
                }
            }
        }
    }
}
