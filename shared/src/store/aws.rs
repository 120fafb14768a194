//! The secret store on the AWS SDK: Secrets Manager itself, or any endpoint that
//! speaks its API (moto in the tests, a VPC endpoint in production).
//!
//! The service's side of a rotation on this store (creating a secret, staging
//! a rotation on an emulator) is in `service`, compiled only with the
//! `testing` feature.

#[cfg(feature = "testing")]
mod service;
#[cfg(feature = "testing")]
pub use service::STAGING_ONLY_FUNCTION;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::{ExposeSecret, SecretString};

use super::{NewVersion, SecretDescription, SecretStore, StoreError, StoredValue, VersionSelector};
use crate::labels::{LabelMove, Versions};

/// Secrets Manager through the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsStore {
    client: Client,
}

/// The endpoint variable of AWS's official rotation functions; the SDK's own
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` (and `AWS_ENDPOINT_URL`) take precedence.
pub const LEGACY_ENDPOINT_VAR: &str = "SECRETS_MANAGER_ENDPOINT";

/// How long connecting to Secrets Manager may take (the SDK's default).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// How long one attempt of a call may take before the SDK retries it: calls
/// answer in milliseconds, so an attempt this slow is a hung connection. The
/// SDK's standard retries (3 attempts, jittered backoff) bound the rest.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

impl AwsStore {
    /// Wraps a client built elsewhere (the tests point one at moto).
    pub fn new(client: Client) -> Self {
        AwsStore { client }
    }

    /// Builds the client once per process from the environment: region,
    /// credentials and endpoint as the SDK resolves them, plus
    /// `SECRETS_MANAGER_ENDPOINT` for users of AWS's official functions.
    pub async fn from_env() -> Self {
        let mut loader = sdk_loader();
        let sdk_endpoint_set = ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        if let Ok(endpoint) = std::env::var(LEGACY_ENDPOINT_VAR)
            && !sdk_endpoint_set
            && !endpoint.is_empty()
        {
            loader = loader.endpoint_url(endpoint);
        }
        AwsStore::new(Client::new(&loader.load().await))
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Where every AWS client rotor builds starts from: region, credentials and
/// endpoints (`AWS_ENDPOINT_URL_<SERVICE>`) as the SDK resolves them from the
/// environment, on [`https_client`], with rotor's connect and per-attempt
/// timeouts.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
}

/// The HTTPS client for every AWS SDK config and client rotor builds; the SDK
/// is compiled without one of its own (see the workspace's Cargo.toml), so a
/// config without this one fails every call with "no HTTP client".
///
/// rustls on ring, trusting the system's roots (and `SSL_CERT_FILE`), with the
/// proxy settings (`HTTPS_PROXY`, `NO_PROXY`) that the SDK's own default client
/// reads. Built once per process; its clones share the connection pools.
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, Connector, proxy::ProxyConfig};

    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // What the SDK's `default-https-client` builds, on ring: the public
            // `Builder::build_https` would drop the proxy settings.
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut connector = Connector::builder()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .proxy_config(ProxyConfig::from_env());
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.build()
            })
        })
        .clone()
}

/// Sorts an SDK failure into what the caller can do about it.
pub fn classify<E>(error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let describe = |code: &str, message: Option<&str>| match message {
        Some(message) => format!("{code}: {message}"),
        None => code.to_owned(),
    };
    match &error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            let code = err.code().unwrap_or("UnknownError");
            let text = describe(code, err.message());
            let status = context.raw().status().as_u16();
            match code {
                "ResourceNotFoundException" => StoreError::NotFound(text),
                "AccessDeniedException"
                | "AccessDenied"
                | "DecryptionFailure"
                | "UnrecognizedClientException"
                | "InvalidSignatureException" => StoreError::AccessDenied(text),
                "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                    StoreError::Throttled(text)
                }
                "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => {
                    StoreError::Unavailable(text)
                }
                _ if status == 429 => StoreError::Throttled(text),
                _ if status >= 500 => StoreError::Unavailable(text),
                _ => StoreError::Rejected(text),
            }
        }
        SdkError::TimeoutError(_) => StoreError::Unavailable("the request timed out".into()),
        SdkError::DispatchFailure(failure) => {
            let chain = source_chain(
                failure
                    .as_connector_error()
                    .map(|e| e as &(dyn std::error::Error + 'static)),
            );
            // The SDK reports missing credentials as a failure to send,
            // with the credential provider's typed error in its sources.
            if caused_by::<aws_credential_types::provider::error::CredentialsError>(&error) {
                StoreError::NoCredentials(chain)
            } else {
                StoreError::Unavailable(format!("could not reach the endpoint: {chain}"))
            }
        }
        SdkError::ResponseError(_) => {
            StoreError::Unavailable("the response could not be read".into())
        }
        _ => StoreError::Unavailable(source_chain(Some(&error))),
    }
}

/// Whether an error of type `T` lies in `error`'s source chain.
fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}

fn source_chain(error: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut parts = Vec::new();
    let mut next = error;
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    if parts.is_empty() {
        "unknown error".into()
    } else {
        parts.join(": ")
    }
}

/// Tells a tracked step that it now waits for Secrets Manager.
fn waiting(operation: &'static str, secret_id: &str) {
    crate::progress::waiting_for(|| format!("Secrets Manager ({operation} on {secret_id})"));
}

impl SecretStore for AwsStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, StoreError> {
        waiting("DescribeSecret", secret_id);
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(classify)?;
        Ok(SecretDescription {
            arn: out.arn().unwrap_or(secret_id).to_owned(),
            name: out.name().unwrap_or_default().to_owned(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: Versions::new(
                out.version_ids_to_stages()
                    .into_iter()
                    .flatten()
                    .map(|(id, labels)| (id.clone(), labels.clone())),
            ),
            tags: out
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect(),
        })
    }

    async fn get_value(
        &self,
        secret_id: &str,
        selector: VersionSelector<'_>,
    ) -> Result<Option<StoredValue>, StoreError> {
        // By id, the label is checked here rather than sent: AWS and moto answer a
        // mismatched id and label with an error, where "no such value" is meant.
        waiting("GetSecretValue", secret_id);
        let request = self.client.get_secret_value().secret_id(secret_id);
        let (request, wanted_label) = match selector {
            VersionSelector::Label(label) => (request.version_stage(label), None),
            VersionSelector::Id(id, label) => (request.version_id(id), label),
        };
        let out = match request.send().await.map_err(classify) {
            Ok(out) => out,
            // A version staged by RotateSecret has no value yet: the service
            // answers ResourceNotFoundException, which here means "none yet".
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(other) => return Err(other),
        };
        if let Some(label) = wanted_label
            && !out.version_stages().iter().any(|l| l == label)
        {
            return Ok(None);
        }
        let version_id = out.version_id().unwrap_or_default().to_owned();
        let created = out
            .created_date()
            .and_then(|d| SystemTime::try_from(*d).ok());
        match out.secret_string {
            Some(text) => Ok(Some(StoredValue {
                version_id,
                value: SecretString::from(text),
                created,
            })),
            None if out.secret_binary.is_some() => Err(StoreError::Unsupported(format!(
                "version {version_id} holds SecretBinary; rotor rotates SecretString values"
            ))),
            None => Ok(None),
        }
    }

    async fn put_value(&self, secret_id: &str, new: NewVersion<'_>) -> Result<(), StoreError> {
        waiting("PutSecretValue", secret_id);
        let mut request = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(new.version_id)
            .secret_string(new.value.expose_secret())
            .set_rotation_token(new.rotation_token.map(str::to_owned));
        for label in new.labels {
            request = request.version_stages(*label);
        }
        request.send().await.map_err(classify)?;
        Ok(())
    }

    async fn move_label(&self, secret_id: &str, change: &LabelMove) -> Result<(), StoreError> {
        waiting("UpdateSecretVersionStage", secret_id);
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(&change.label)
            .set_move_to_version_id(change.to.clone())
            .set_remove_from_version_id(change.from.clone())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn set_tag(&self, secret_id: &str, key: &str, value: &str) -> Result<(), StoreError> {
        waiting("TagResource", secret_id);
        let tag = aws_sdk_secretsmanager::types::Tag::builder()
            .key(key)
            .value(value)
            .build();
        self.client
            .tag_resource()
            .secret_id(secret_id)
            .tags(tag)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        waiting("ListSecretVersionIds", secret_id);
        let mut pages = self
            .client
            .list_secret_version_ids()
            .secret_id(secret_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            if let Some(found) = page
                .versions()
                .iter()
                .find(|v| v.version_id() == Some(version_id))
            {
                return Ok(found
                    .created_date()
                    .and_then(|d| SystemTime::try_from(*d).ok()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::{ProvideCredentials, future};

    /// A credential provider that finds none, as in a process with no role
    /// and no variables.
    #[derive(Debug)]
    struct NoneFound;

    impl ProvideCredentials for NoneFound {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
                "no provider in the chain found any",
            )))
        }
    }

    #[tokio::test]
    async fn missing_credentials_are_told_by_type() {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(https_client())
            .credentials_provider(NoneFound)
            .build();
        let store = AwsStore::new(aws_sdk_secretsmanager::Client::from_conf(config));
        let error = store.describe("s").await.unwrap_err();
        assert!(matches!(error, StoreError::NoCredentials(_)), "{error:?}");
    }
}
