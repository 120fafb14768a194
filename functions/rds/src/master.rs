//! The master (admin) secret: which one a secret may use, where the master
//! logs in, and the session it opens. A master secret that RDS manages holds
//! only a user name and password; its database comes from the RDS API
//! ([`crate::managed`]).
//!
//! Whoever writes a user's secret must not be able to send the master
//! password to a host of their choosing, nor in plaintext: the master logs in
//! to its own database's writer, with its own transport, and the user's host
//! must be that database or a reader of it.

use rotor_core::labels::AWSCURRENT;
use rotor_core::linked::{self, Deployer, Link, LinkedSecret};
use rotor_core::{Error, SecretStore, StepContext, System, TargetError};

use crate::config::{Config, MASTER_SECRET_VAR};
use crate::managed;
use crate::secret::{self, DbSecret};
use crate::session::{Session, login, refused};

/// A session as the master for `current`'s database: the secret's own
/// masterarn, else the deployer's MASTER_SECRET_ARN. A masterarn is written
/// by whoever writes this secret: the master secret is read only if it
/// agrees to serve this one (its rotor:serves tag) or the deployer's
/// variable names it.
pub(crate) async fn session<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    current: &DbSecret,
) -> Result<Session, Error> {
    let arn = ctx.secret_arn();
    let (setting, target) = match (&current.masterarn, config.master_secret()) {
        (Some(named), _) => ("masterarn", named.as_str()),
        (None, Some(deployer)) => (MASTER_SECRET_VAR, deployer),
        (None, None) => {
            return Err(Error::InvalidSecretValue {
                secret: arn.to_owned(),
                label: AWSCURRENT.into(),
                problem: format!(
                    "has no masterarn field; alternating users need a master secret: add masterarn, or set {MASTER_SECRET_VAR}"
                ),
            });
        }
    };
    let allowed: Vec<String> = config
        .master_secret()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let linked = linked::read(
        ctx.store(),
        ctx.secret,
        Link {
            setting,
            target,
            deployer: Deployer {
                variable: MASTER_SECRET_VAR,
                secrets: &allowed,
            },
        },
    )
    .await?;
    let admin = admin_secret(arn, current, &linked).await?;
    let Some(session) = login(&admin).await? else {
        return Err(refused(
            &admin,
            format!(
                "refused the master credentials of user {:?} from {}",
                admin.username, linked.arn
            ),
        ));
    };
    Ok(session)
}

/// Where and how the master logs in for `current` (the secret `arn`): the
/// user's database, with the master's credentials, port and transport. A
/// master secret that RDS manages (only `username` and `password`, tagged with
/// its instance or cluster) gets engine, host and port from the RDS API and is
/// always used over verified TLS; `"ssl": false` in the user's secret is not
/// the master's.
async fn admin_secret(
    arn: &str,
    current: &DbSecret,
    master: &LinkedSecret,
) -> Result<DbSecret, Error> {
    let master_arn = master.arn.as_str();
    let invalid = |problem: String| Error::InvalidSecretValue {
        secret: master_arn.to_owned(),
        label: AWSCURRENT.into(),
        problem,
    };
    let rds_api =
        |e: TargetError, about: &str| e.at(System::Database, format!("the RDS API for {about}"));
    let rds_managed = managed::is_credentials_only(&master.value)
        .then(|| managed::Primary::from_tags(&master.tags))
        .flatten();
    let mut rds = None;
    let (username, password, engine, host, port, transport) = match &rds_managed {
        Some(primary) => {
            let endpoint = rds
                .insert(managed::Rds::from_env().await)
                .endpoint(primary)
                .await
                .map_err(|e| rds_api(e, primary.arn()))?;
            let (username, password) = managed::credentials(&master.value)
                .ok_or_else(|| invalid("has no user name or password".into()))?;
            (
                username,
                password,
                endpoint.engine,
                endpoint.host,
                endpoint.port,
                secret::Transport::VerifiedTls,
            )
        }
        None => {
            let master = DbSecret::parse_version(master_arn, AWSCURRENT, &master.value)?;
            (
                master.username.clone(),
                master.password.clone(),
                master.engine,
                master.host.clone(),
                master.port,
                master.transport,
            )
        }
    };
    // A user secret may name a reader of the master's database (a read
    // replica, an Aurora reader, the cluster's reader endpoint): the master
    // still logs in to the writer, and the RDS API must say the host is one.
    let reader = |rds: Option<managed::Rds>| async {
        let rds = match rds {
            Some(rds) => rds,
            None => managed::Rds::from_env().await,
        };
        rds.is_reader_of(&current.host, rds_managed.as_ref(), &host)
            .await
            .map_err(|e| rds_api(e, &current.host))
    };
    if !managed::same_host(&host, &current.host) && !reader(rds).await? {
        return Err(Error::InvalidSettings {
            secret: arn.to_owned(),
            setting: "masterarn".into(),
            problem: format!(
                "the master secret's database is at host {host}, but this secret names {}, which the RDS API does not report as a reader of it; they must be the same database or a reader of it",
                current.host
            ),
        });
    }
    if engine.is_mysql_family() != current.engine.is_mysql_family() {
        return Err(Error::InvalidSettings {
            secret: arn.to_owned(),
            setting: "masterarn".into(),
            problem: format!(
                "the master secret's database runs {engine}, but this secret names {}",
                current.engine
            ),
        });
    }
    let mut admin = DbSecret::parse(&current.with_credentials(&username, &password))
        .map_err(|e| invalid(e.to_string()))?;
    admin.host = host;
    admin.port = port;
    admin.transport = transport;
    Ok(admin)
}
