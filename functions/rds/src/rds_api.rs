//! The RDS API, for what a secret's value cannot be trusted to say: where a
//! master secret that Amazon RDS keeps logs in, which hosts are readers of a
//! database, and which are RDS Proxy endpoints.
//!
//! A master secret whose password RDS manages ("ManageMasterUserPassword")
//! holds only `username` and `password`, and RDS tags it with the database it
//! belongs to: `aws:rds:primaryDBInstanceArn` or `aws:rds:primaryDBClusterArn`
//! (AWS's own functions compare the key without regard to case, and so does
//! this module). Engine, host and port come from the RDS API for that instance
//! or cluster, never from the value of any secret: the host the master password
//! is sent to is the database's writer as RDS reports it.

use std::collections::BTreeMap;

use aws_sdk_rds::types::{DbCluster, DbInstance};
use rotor_core::admin::same_host;
use rotor_core::linked::LinkedSecret;
use rotor_core::value::{Anywhere, SecretValue};
use rotor_core::{Cause, Error, ExposeSecret, SecretString, TargetError, TargetKind};
use serde_json::Value;

use crate::secret::Engine;

/// The tag RDS puts on the master secret of a DB instance (lower case).
pub const INSTANCE_TAG: &str = "aws:rds:primarydbinstancearn";
/// The tag RDS puts on the master secret of a DB cluster (lower case).
pub const CLUSTER_TAG: &str = "aws:rds:primarydbclusterarn";

/// The database an RDS-managed master secret belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primary {
    /// A DB instance, by ARN.
    Instance(String),
    /// A DB cluster (Aurora or Multi-AZ), by ARN.
    Cluster(String),
}

impl Primary {
    /// The database named by a secret's tags, if it is an RDS-managed secret.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Primary> {
        tags.iter().find_map(|(key, value)| {
            let key = key.to_ascii_lowercase();
            if key == INSTANCE_TAG {
                Some(Primary::Instance(value.clone()))
            } else if key == CLUSTER_TAG {
                Some(Primary::Cluster(value.clone()))
            } else {
                None
            }
        })
    }

    /// The ARN, for messages and the RDS API.
    pub fn arn(&self) -> &str {
        match self {
            Primary::Instance(arn) | Primary::Cluster(arn) => arn,
        }
    }
}

impl Primary {
    /// The database of a master secret that RDS keeps: one whose value holds
    /// only `username` and `password` and whose tags name its database.
    pub fn of_master(master: &LinkedSecret) -> Option<Primary> {
        is_credentials_only(&master.value)
            .then(|| Primary::from_tags(&master.tags))
            .flatten()
    }
}

/// Whether a secret value holds only `username` and `password`, the shape of
/// the secrets RDS manages.
pub fn is_credentials_only(value: &SecretString) -> bool {
    match serde_json::from_str::<Value>(value.expose_secret()) {
        Ok(Value::Object(fields)) => {
            fields.len() == 2 && fields.contains_key("username") && fields.contains_key("password")
        }
        _ => false,
    }
}

/// The `username` and `password` of a credentials-only value.
pub fn credentials(value: &SecretString) -> Option<(String, SecretString)> {
    MasterCredentials::parse(value)
        .ok()
        .map(|login| (login.username, login.password))
}

/// The value of a master secret that RDS keeps: a user name and a password.
pub struct MasterCredentials {
    /// The master user.
    pub username: String,
    /// Its password.
    pub password: SecretString,
}

impl SecretValue for MasterCredentials {
    type Invalid = &'static str;
    /// Where it logs in is the RDS API's to say, not the value's.
    type Target = Anywhere;

    fn parse(value: &SecretString) -> Result<Self, Self::Invalid> {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(value.expose_secret())
        else {
            return Err("is not a JSON object with username and password");
        };
        match (fields.remove("username"), fields.remove("password")) {
            (Some(Value::String(user)), Some(Value::String(password)))
                if !user.is_empty() && !user.contains('\0') =>
            {
                Ok(MasterCredentials {
                    username: user,
                    password: SecretString::from(password),
                })
            }
            _ => Err("has no user name or password"),
        }
    }

    fn target(&self) -> Anywhere {
        Anywhere
    }
}

/// Whether `host` is an RDS Proxy endpoint, as AWS names them: a label after
/// the first starts with `proxy-` (`name.proxy-id.region.rds.amazonaws.com`,
/// `endpoint.endpoint.proxy-id.region.rds.amazonaws.com`). An IP address or a
/// name of one label is not.
pub fn is_rds_proxy(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    host.split('.').skip(1).any(|label| {
        label.len() > "proxy-".len()
            && label
                .get(.."proxy-".len())
                .is_some_and(|start| start.eq_ignore_ascii_case("proxy-"))
    })
}

/// Where a database accepts connections, as the RDS API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The engine.
    pub engine: Engine,
    /// The writer's host name.
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// The RDS API, created only when a secret needs it.
pub struct Rds {
    client: aws_sdk_rds::Client,
}

impl Rds {
    /// A client from the environment (region, credentials, `AWS_ENDPOINT_URL_RDS`),
    /// on the HTTPS client Secrets Manager uses.
    pub async fn from_env() -> Rds {
        let config = rotor_core::store::aws::sdk_loader().load().await;
        Rds {
            client: aws_sdk_rds::Client::new(&config),
        }
    }

    /// The engine and writer endpoint of an instance or cluster.
    pub async fn endpoint(&self, primary: &Primary) -> Result<Endpoint, Error> {
        self.writer(primary)
            .await
            .map_err(|e| about(e, primary.arn()))
    }

    async fn writer(&self, primary: &Primary) -> Result<Endpoint, TargetError> {
        let (engine, host, port) = match primary {
            Primary::Instance(arn) => {
                let instance = self.describe_instance(arn).await?.ok_or_else(|| {
                    TargetError::new(
                        Cause::NotFound,
                        format!("DescribeDBInstances found no DB instance {arn}"),
                    )
                })?;
                let endpoint = instance.endpoint();
                (
                    instance.engine().map(str::to_owned),
                    endpoint.and_then(|e| e.address()).map(str::to_owned),
                    endpoint.and_then(|e| e.port()),
                )
            }
            Primary::Cluster(arn) => {
                let cluster = self.describe_cluster(arn).await?.ok_or_else(|| {
                    TargetError::new(
                        Cause::NotFound,
                        format!("DescribeDBClusters found no DB cluster {arn}"),
                    )
                })?;
                (
                    cluster.engine().map(str::to_owned),
                    cluster.endpoint().map(str::to_owned),
                    cluster.port(),
                )
            }
        };
        let arn = primary.arn();
        let engine_text = engine.unwrap_or_default();
        let engine = Engine::parse(&engine_text).ok_or_else(|| {
            TargetError::new(
                Cause::Rejected,
                format!("{arn} runs engine {engine_text:?}, which rds-rotation does not rotate"),
            )
        })?;
        let host = host.filter(|h| !h.is_empty()).ok_or_else(|| {
            TargetError::new(
                Cause::Pending,
                format!(
                    "{arn} has no endpoint yet (still being created?); {}",
                    "rotate again once it is available"
                ),
            )
        })?;
        let port = api_port(port).unwrap_or(engine.default_port());
        Ok(Endpoint { engine, host, port })
    }
}

/// The first label of a DNS host name: RDS names an instance's endpoint
/// `<instance id>.<random>.<region>.rds.amazonaws.com` and a cluster's
/// `<cluster id>.cluster[-ro]-<random>...`. An IP address or a one-label name
/// has none. Whatever it yields is only a guess until the RDS API reports an
/// endpoint that is the same host.
fn first_label(host: &str) -> Option<&str> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let (label, rest) = host.split_once('.')?;
    (!label.is_empty() && !rest.is_empty()).then_some(label)
}

/// An instance as the RDS API reports it, when `host` is its endpoint.
struct Instance {
    id: String,
    arn: String,
    port: Option<u16>,
    cluster: Option<String>,
    replica_of: Option<String>,
}

/// A cluster as the RDS API reports it.
struct Cluster {
    id: String,
    arn: String,
    port: Option<u16>,
    writer: Option<String>,
    reader: Option<String>,
}

/// A host that the RDS API reports as a reader of the master's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    /// The port the API reports for it, if any.
    pub port: Option<u16>,
}

/// A port as the RDS API reports it (an `i32`, absent or 0 when unknown).
fn api_port(port: Option<i32>) -> Option<u16> {
    port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0)
}

impl Rds {
    /// `host` as a reader of the database the master logs in to, with the
    /// port the API reports for it: a read replica of the master's instance,
    /// an instance of the master's cluster, or that cluster's reader endpoint.
    /// `primary` is the database of an RDS-managed master; otherwise the
    /// master's `writer` host is looked up. Only what the RDS API reports
    /// counts: a host is an instance's or a cluster's only when the API names
    /// it as that instance's endpoint. `None` when it is no reader of it.
    pub async fn reader_of(
        &self,
        host: &str,
        primary: Option<&Primary>,
        writer: &str,
    ) -> Result<Option<Reader>, Error> {
        let reader = self.find_reader(host, primary, writer).await;
        reader.map_err(|e| about(e, host))
    }

    async fn find_reader(
        &self,
        host: &str,
        primary: Option<&Primary>,
        writer: &str,
    ) -> Result<Option<Reader>, TargetError> {
        let primary = match primary {
            Some(primary) => primary.clone(),
            None => match self.database_at(writer).await? {
                Some(primary) => primary,
                None => return Ok(None),
            },
        };
        match primary {
            Primary::Cluster(id) => {
                let Some(cluster) = self.cluster(&id).await? else {
                    return Ok(None);
                };
                if cluster
                    .reader
                    .as_deref()
                    .is_some_and(|r| same_host(r, host))
                {
                    return Ok(Some(Reader { port: cluster.port }));
                }
                let Some(instance) = self.instance_at(host).await? else {
                    return Ok(None);
                };
                Ok(instance
                    .cluster
                    .is_some_and(|c| c == cluster.id || c == cluster.arn)
                    .then_some(Reader {
                        port: instance.port,
                    }))
            }
            Primary::Instance(id) => {
                let Some(source) = self.instance(&id).await? else {
                    return Ok(None);
                };
                let Some(instance) = self.instance_at(host).await? else {
                    return Ok(None);
                };
                Ok(instance
                    .replica_of
                    .is_some_and(|r| r == source.1.id || r == source.1.arn)
                    .then_some(Reader {
                        port: instance.port,
                    }))
            }
        }
    }

    /// The instance or cluster whose writer endpoint is `host`.
    async fn database_at(&self, host: &str) -> Result<Option<Primary>, TargetError> {
        if let Some(instance) = self.instance_at(host).await? {
            return Ok(Some(Primary::Instance(instance.arn)));
        }
        let Some(label) = first_label(host) else {
            return Ok(None);
        };
        Ok(self
            .cluster(label)
            .await?
            .filter(|c| c.writer.as_deref().is_some_and(|w| same_host(w, host)))
            .map(|c| Primary::Cluster(c.arn)))
    }

    /// The instance whose endpoint is `host`, if any.
    async fn instance_at(&self, host: &str) -> Result<Option<Instance>, TargetError> {
        let Some(label) = first_label(host) else {
            return Ok(None);
        };
        Ok(self
            .instance(label)
            .await?
            .filter(|i| i.0.as_deref().is_some_and(|e| same_host(e, host)))
            .map(|i| i.1))
    }

    /// The instance `id` and its endpoint's host.
    async fn instance(&self, id: &str) -> Result<Option<(Option<String>, Instance)>, TargetError> {
        Ok(self.describe_instance(id).await?.map(|i| {
            (
                i.endpoint().and_then(|e| e.address()).map(str::to_owned),
                Instance {
                    id: i.db_instance_identifier().unwrap_or_default().to_owned(),
                    arn: i.db_instance_arn().unwrap_or_default().to_owned(),
                    port: api_port(i.endpoint().and_then(|e| e.port())),
                    cluster: i.db_cluster_identifier().map(str::to_owned),
                    replica_of: i
                        .read_replica_source_db_instance_identifier()
                        .map(str::to_owned),
                },
            )
        }))
    }

    /// The cluster `id`.
    async fn cluster(&self, id: &str) -> Result<Option<Cluster>, TargetError> {
        Ok(self.describe_cluster(id).await?.map(|c| Cluster {
            id: c.db_cluster_identifier().unwrap_or_default().to_owned(),
            arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
            port: api_port(c.port()),
            writer: c.endpoint().map(str::to_owned),
            reader: c.reader_endpoint().map(str::to_owned),
        }))
    }

    /// DescribeDBInstances for the instance `id` (a name or an ARN); `None`
    /// when there is no such instance.
    async fn describe_instance(&self, id: &str) -> Result<Option<DbInstance>, TargetError> {
        match self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_instances().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeDBInstances", id, e)),
        }
    }

    /// DescribeDBClusters for the cluster `id` (a name or an ARN); `None`
    /// when there is no such cluster.
    async fn describe_cluster(&self, id: &str) -> Result<Option<DbCluster>, TargetError> {
        match self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_cluster_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeDBClusters", id, e)),
        }
    }
}

/// A failed RDS API call about `what` (a database's ARN, a host).
fn about(error: TargetError, what: &str) -> Error {
    error.at(TargetKind::Database, format!("the RDS API for {what}"))
}

fn api_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &str,
    arn: &str,
    error: aws_sdk_rds::error::SdkError<E, aws_sdk_rds::config::http::HttpResponse>,
) -> TargetError {
    use aws_sdk_rds::error::SdkError;
    let cause = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Cause::Unreachable,
        SdkError::ServiceError(service) => match service.raw().status().as_u16() {
            401 | 403 => Cause::Permission,
            404 => Cause::NotFound,
            429 | 500..=599 => Cause::Unavailable,
            _ => Cause::Rejected,
        },
        _ => Cause::Unavailable,
    };
    let detail = aws_sdk_rds::error::DisplayErrorContext(&error);
    let fix = if cause == Cause::Permission {
        concat!(
            "; the function's role needs rds:DescribeDBInstances and rds:DescribeDBClusters ",
            "(template parameter rdsDescribeDatabases)"
        )
    } else {
        ""
    };
    TargetError::new(
        cause,
        format!("{operation} for {arn} failed: {detail}{fix}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_rds_proxy_endpoints_by_their_labels() {
        assert!(is_rds_proxy("app.proxy-abc123.eu-west-1.rds.amazonaws.com"));
        assert!(is_rds_proxy(
            "ro.endpoint.proxy-abc123.eu-west-1.rds.amazonaws.com."
        ));
        assert!(is_rds_proxy("APP.PROXY-ABC123.eu-west-1.rds.amazonaws.com"));
        assert!(!is_rds_proxy("proxy-abc123.example.com"));
        assert!(!is_rds_proxy("db.cluster-abc.eu-west-1.rds.amazonaws.com"));
        assert!(!is_rds_proxy("db.my-proxy-abc.example.com"));
        assert!(!is_rds_proxy("127.0.0.1"));
        assert!(!is_rds_proxy("::1"));
    }

    #[test]
    fn reads_the_tag_in_any_case() {
        let tags = |key: &str| BTreeMap::from([(key.to_owned(), "arn:db".to_owned())]);
        assert_eq!(
            Primary::from_tags(&tags("aws:rds:primaryDBInstanceArn")),
            Some(Primary::Instance("arn:db".into()))
        );
        assert_eq!(
            Primary::from_tags(&tags("aws:rds:primarydbclusterarn")),
            Some(Primary::Cluster("arn:db".into()))
        );
        assert_eq!(Primary::from_tags(&tags("rotor:serves")), None);
        assert!(is_credentials_only(&SecretString::from(
            r#"{"username":"a","password":"b"}"#
        )));
        assert!(!is_credentials_only(&SecretString::from(
            r#"{"username":"a","password":"b","host":"h"}"#
        )));
    }
}
