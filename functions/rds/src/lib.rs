//! `rds-rotation`: rotates database credentials kept in the RDS secret format,
//! for MySQL, MariaDB and PostgreSQL (Aurora included), with AWS's two
//! strategies: a single user whose password changes, or two users that take
//! turns (`u` and `u_clone`) so the previous credentials keep working while the
//! new ones spread.
//!
//! One deployment replaces AWS's six SecretsManagerRDS* functions: the engine
//! comes from the secret, the strategy from `ROTATION_STRATEGY`.

use std::time::Duration;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::linked::{self, Deployer, Link};
use rotor_core::password::PasswordPolicy;
use rotor_core::settings::EnvSettings;
use rotor_core::{Error, Rotator, SecretStore, SecretString, StepContext, System, TargetError};
use tracing::{info, warn};

pub mod connect;
pub mod managed;
pub mod mysql;
pub mod postgres;
pub mod secret;
pub mod tls;

use connect::{Cause, ConnectError};
use secret::{DbSecret, Engine, alternate_username, base_username};

/// The environment variable choosing the strategy.
pub const STRATEGY_VAR: &str = "ROTATION_STRATEGY";
/// The master secret to use when a secret has no `masterarn`.
pub const MASTER_SECRET_VAR: &str = "MASTER_SECRET_ARN";
/// The longest MySQL user name (AWS's MySQL functions default to 16).
pub const USERNAME_LIMIT_VAR: &str = "USERNAME_CHARACTER_LIMIT";

/// How a secret's credentials change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One user; its password changes.
    Single,
    /// Two users take turns; the master secret manages them.
    Alternating,
}

impl Strategy {
    /// Parses a strategy as `ROTATION_STRATEGY` or the `rotor:strategy` tag
    /// names it; empty means single.
    pub fn parse(text: &str) -> Option<Strategy> {
        match text.trim() {
            "" | "single" | "single-user" => Some(Strategy::Single),
            "alternating" | "alternating-users" | "multi-user" | "multiuser" => {
                Some(Strategy::Alternating)
            }
            _ => None,
        }
    }
}

/// The tag with which a secret chooses its strategy, over `ROTATION_STRATEGY`.
pub const STRATEGY_TAG: &str = "rotor:strategy";

/// A secret's strategy: its `rotor:strategy` tag, else the deployment's.
fn strategy<S: SecretStore>(ctx: &StepContext<'_, S>, config: &Config) -> Result<Strategy, Error> {
    match ctx.secret.tags.get(STRATEGY_TAG) {
        None => Ok(config.strategy),
        Some(text) => Strategy::parse(text).ok_or_else(|| Error::InvalidSettings {
            secret: ctx.secret_arn().to_owned(),
            setting: STRATEGY_TAG.into(),
            problem: format!("{text:?} is not a strategy; use single or alternating"),
        }),
    }
}

/// The deployment's settings, read once per process.
#[derive(Clone, Debug)]
pub struct Config {
    strategy: Strategy,
    master_secret: Option<String>,
    mysql_username_limit: usize,
    mysql_policy: PasswordPolicy,
    postgres_policy: PasswordPolicy,
    test_attempts: u32,
}

impl Config {
    /// Reads the settings from any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let strategy = match lookup(STRATEGY_VAR) {
            None => Strategy::Single,
            Some(text) => Strategy::parse(&text).ok_or_else(|| {
                format!("{STRATEGY_VAR}={text:?} is not a strategy; use single or alternating")
            })?,
        };
        let policy = |engine: Engine| {
            let defaults = PasswordPolicy {
                exclude_characters: engine.default_excluded_characters().to_owned(),
                ..PasswordPolicy::default()
            };
            PasswordPolicy::from_lookup(defaults, &lookup).map_err(|e| e.to_string())
        };
        let mysql_username_limit = match lookup(USERNAME_LIMIT_VAR) {
            None => 16,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=80).contains(n))
                .ok_or_else(|| {
                    format!("{USERNAME_LIMIT_VAR}={text:?} must be a whole number from 1 to 80")
                })?,
        };
        Ok(Config {
            strategy,
            master_secret: lookup(MASTER_SECRET_VAR).filter(|v| !v.trim().is_empty()),
            mysql_username_limit,
            mysql_policy: policy(Engine::MySql)?,
            postgres_policy: policy(Engine::Postgres)?,
            test_attempts: 5,
        })
    }

    /// The strategy (`rotor doctor` reports it).
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The deployment's master secret, for secrets without a `masterarn`.
    pub fn master_secret(&self) -> Option<&str> {
        self.master_secret.as_deref()
    }

    fn username_limit(&self, engine: Engine) -> usize {
        match engine {
            Engine::MySql => self.mysql_username_limit,
            Engine::MariaDb => 80,
            Engine::Postgres => 63,
        }
    }

    fn policy(&self, engine: Engine) -> &PasswordPolicy {
        match engine {
            Engine::Postgres => &self.postgres_policy,
            _ => &self.mysql_policy,
        }
    }
}

/// Rotates database credentials.
pub struct RdsRotator {
    config: EnvSettings<Config>,
}

impl RdsRotator {
    /// Reads the environment once; a bad variable fails every step with a
    /// message naming it rather than crashing the process.
    pub fn from_env() -> Self {
        RdsRotator {
            config: EnvSettings::new(Config::from_lookup(|var| std::env::var(var).ok())),
        }
    }

    /// With settings given by the caller.
    pub fn new(config: Config) -> Self {
        RdsRotator {
            config: EnvSettings::ready(config),
        }
    }

    fn config(&self, secret: &str) -> Result<&Config, Error> {
        self.config.get(secret)
    }
}

fn parse(secret: &str, label: &str, value: &SecretString) -> Result<DbSecret, Error> {
    DbSecret::parse(value).map_err(|problem| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem,
    })
}

/// An open session with either engine.
enum Session {
    Postgres(tokio_postgres::Client),
    MySql(mysql::Session),
}

impl Session {
    async fn open(
        secret: &DbSecret,
        user: &str,
        password: &SecretString,
    ) -> Result<Session, ConnectError> {
        if secret.engine.is_mysql_family() {
            mysql::connect(secret, user, password)
                .await
                .map(Session::MySql)
        } else {
            postgres::connect(secret, user, password)
                .await
                .map(Session::Postgres)
        }
    }

    async fn ping(&mut self) -> Result<(), TargetError> {
        match self {
            Session::Postgres(client) => postgres::ping(client).await,
            Session::MySql(session) => session.ping().await,
        }
    }

    async fn set_own_password(
        &mut self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), TargetError> {
        match self {
            Session::Postgres(client) => postgres::set_password(client, user, password).await,
            Session::MySql(session) => session.set_own_password(password).await,
        }
    }

    async fn set_alternate(
        &mut self,
        current: &str,
        pending: &str,
        password: &SecretString,
    ) -> Result<(), TargetError> {
        match self {
            Session::Postgres(client) => {
                postgres::set_alternate(client, base_username(current), pending, password).await
            }
            Session::MySql(session) => {
                session
                    .set_alternate(base_username(current), pending, password)
                    .await
            }
        }
    }

    /// Through a master session: changes `user`'s password and nothing else.
    async fn set_password_of(
        &mut self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), TargetError> {
        match self {
            Session::Postgres(client) => {
                postgres::set_alternate(client, user, user, password).await
            }
            Session::MySql(session) => session.set_alternate(user, user, password).await,
        }
    }

    async fn close(self) {
        match self {
            Session::Postgres(client) => drop(client),
            Session::MySql(session) => session.close().await,
        }
    }
}

/// Logs in with a secret's own credentials: `Ok(None)` when the server
/// refuses them, an error for anything else (network, TLS), which no other
/// credential would get past either.
async fn login(secret: &DbSecret) -> Result<Option<Session>, Error> {
    waiting(secret, "logging in as", &secret.username);
    match Session::open(secret, &secret.username, &secret.password).await {
        Ok(session) => Ok(Some(session)),
        Err(e) if e.cause == Cause::Credentials => Ok(None),
        Err(e) => Err(e.into_error(secret.engine, &secret.address(), &secret.username)),
    }
}

/// Where and how the master logs in for `current`: the user's database, with
/// the master's credentials, port and transport. A master secret that RDS
/// manages (only `username` and `password`, tagged with its instance or
/// cluster) gets engine, host and port from the RDS API, and the user's host
/// must be that database's writer: whoever writes the user's secret must not be
/// able to send the master password to a host of their choosing, nor in
/// plaintext (`"ssl": false` in the user's secret is not the master's).
async fn master_login(
    arn: &str,
    current: &DbSecret,
    master: &linked::LinkedSecret,
) -> Result<DbSecret, Error> {
    let master_arn = master.arn.as_str();
    let invalid = |problem: String| Error::InvalidSecretValue {
        secret: master_arn.to_owned(),
        label: AWSCURRENT.into(),
        problem,
    };
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
                .map_err(|e| {
                    e.at(
                        System::Database,
                        format!("the RDS API for {}", primary.arn()),
                    )
                })?;
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
            let master = parse(master_arn, AWSCURRENT, &master.value)?;
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
            .map_err(|e| {
                e.at(
                    System::Database,
                    format!("the RDS API for {}", current.host),
                )
            })
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
    let mut admin =
        DbSecret::parse(&current.with_credentials(&username, &password)).map_err(invalid)?;
    admin.host = host;
    admin.port = port;
    admin.transport = transport;
    Ok(admin)
}

/// Tells a tracked step what it now waits for at the database.
fn waiting(secret: &DbSecret, doing: &str, user: &str) {
    rotor_core::progress::waiting_for(|| {
        format!(
            "{} at {} ({doing} user {user:?})",
            secret.engine,
            secret.address()
        )
    });
}

fn refused(secret: &DbSecret, problem: String) -> Error {
    Error::Target {
        target: format!("{} at {}", secret.engine, secret.address()),
        problem,
        system: System::Database,
        cause: rotor_core::Cause::Auth,
    }
}

/// A login an RDS Proxy refused: the proxy authenticates with the secrets
/// registered with it, so the likely cause is that the pending user's secret
/// is not one of them (alternating users log in under two names).
fn through_proxy(error: Error, user: &str) -> Error {
    match error {
        Error::Target {
            system,
            cause,
            target,
            problem,
        } => Error::Target {
            system,
            cause,
            target,
            problem: format!(
                "{problem}; the host is an RDS Proxy endpoint, which logs users in with the secrets registered with it: register the secret of user {user:?} with the proxy (with alternating users, both users' secrets; see the README's RDS Proxy section)"
            ),
        },
        other => other,
    }
}

/// A statement that failed on an open session; its cause comes from the
/// driver's typed error (the connection broke, the server was busy, or it
/// refused the statement).
fn failed(secret: &DbSecret, what: &str, error: TargetError) -> Error {
    TargetError::new(error.cause, format!("{what} failed: {}", error.problem)).at(
        System::Database,
        format!("{} at {}", secret.engine, secret.address()),
    )
}

impl Rotator for RdsRotator {
    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
        let username = match strategy(ctx, config)? {
            Strategy::Single => current.username.clone(),
            Strategy::Alternating => alternate_username(
                &current.username,
                config.username_limit(current.engine),
                current.engine,
            )
            .map_err(|problem| Error::InvalidSecretValue {
                secret: arn.to_owned(),
                label: AWSCURRENT.into(),
                problem,
            })?,
        };
        let password =
            config
                .policy(current.engine)
                .generate()
                .map_err(|source| Error::PasswordPolicy {
                    secret: arn.to_owned(),
                    source,
                })?;
        Ok(current.with_credentials(&username, &password))
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
        // A single user whose pending password works is done. An alternate
        // user is not: a login proves only that its first statement ran, so
        // every attempt brings it to the original's state again.
        if strategy(ctx, config)? == Strategy::Single
            && let Some(session) = login(&pending).await?
        {
            session.close().await;
            info!(secret = %arn, user = %pending.username, "the pending password already works");
            return Ok(());
        }
        if (pending.host.as_str(), pending.port, pending.engine)
            != (current.host.as_str(), current.port, current.engine)
        {
            return Err(Error::InvalidSecretValue {
                secret: arn.to_owned(),
                label: ctx.pending_label.to_owned(),
                problem: format!(
                    "names {} {}, but AWSCURRENT names {} {}; rotation changes credentials, not databases",
                    pending.engine,
                    pending.address(),
                    current.engine,
                    current.address()
                ),
            });
        }
        match strategy(ctx, config)? {
            Strategy::Single => self.set_single(ctx, config, &current, &pending).await,
            Strategy::Alternating => self.set_alternating(ctx, config, &current, &pending).await,
        }
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let attempts = config.test_attempts;
        let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        // The clone of an alternating pair must also act with exactly the
        // original's privileges; the original is the reference itself.
        let original = match strategy(ctx, config)? {
            Strategy::Alternating if base_username(&pending.username) != pending.username => {
                Some(parse(arn, AWSCURRENT, &ctx.current().await?.value)?)
            }
            _ => None,
        };
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=attempts {
            waiting(&pending, "testing the login of", &pending.username);
            match Session::open(&pending, &pending.username, &pending.password).await {
                Ok(mut session) => {
                    let result = session.ping().await;
                    let result = match (result, &original) {
                        (Ok(()), Some(original)) => {
                            same_access(&mut session, &pending, original).await
                        }
                        (result, _) => {
                            result.map_err(|detail| failed(&pending, "the test query", detail))
                        }
                    };
                    session.close().await;
                    return result;
                }
                // A new password can take a moment to reach every node (Aurora
                // readers, proxies): retry briefly with backoff before failing.
                Err(e)
                    if attempt < attempts
                        && matches!(
                            e.cause,
                            Cause::Credentials | Cause::Timeout | Cause::Refused | Cause::Busy
                        ) =>
                {
                    warn!(secret = %arn, attempt, cause = ?e.cause, "the pending credentials did not log in yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    let refused = e.cause == Cause::Credentials;
                    let error = e.into_error(pending.engine, &pending.address(), &pending.username);
                    return Err(if refused && managed::is_rds_proxy(&pending.host) {
                        through_proxy(error, &pending.username)
                    } else {
                        error
                    });
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// Checks that the logged-in clone `pending` has the access of the original
/// user: MySQL and MariaDB, the same `SHOW GRANTS` once the user names are
/// set aside (the original logs in with AWSCURRENT to show its own);
/// PostgreSQL, membership of the original role only, and acting as it.
async fn same_access(
    session: &mut Session,
    pending: &DbSecret,
    current: &DbSecret,
) -> Result<(), Error> {
    let base = base_username(&pending.username);
    let fix = "run setSecret again (rotating again re-synchronises the alternate user)";
    let mismatch = |problem: String| Error::Target {
        target: format!("{} at {}", pending.engine, pending.address()),
        problem: format!("testSecret: {problem}; {fix}"),
        system: System::Database,
        cause: rotor_core::Cause::Mismatch,
    };
    match session {
        Session::Postgres(client) => {
            let (acts_as, member_of) = postgres::identity(client)
                .await
                .map_err(|detail| failed(pending, "reading the pending user's roles", detail))?;
            if acts_as != base {
                return Err(mismatch(format!(
                    "user {:?} acts as {acts_as:?} after login, not as the original user {base:?} (ALTER ROLE ... SET role)",
                    pending.username
                )));
            }
            if member_of != [base] {
                return Err(mismatch(format!(
                    "user {:?} is a member of {member_of:?}; it must be a member of exactly [{base:?}]",
                    pending.username
                )));
            }
            Ok(())
        }
        Session::MySql(clone) => {
            if current.username != base {
                return Err(mismatch(format!(
                    "AWSCURRENT names user {:?}, not the original user {base:?} of {:?}",
                    current.username, pending.username
                )));
            }
            let have = clone
                .own_grants(&pending.username)
                .await
                .map_err(|detail| failed(pending, "SHOW GRANTS as the pending user", detail))?;
            let Some(Session::MySql(mut original)) = login(current).await? else {
                return Err(refused(
                    current,
                    format!(
                        "refused the AWSCURRENT credentials of user {:?}, whose privileges the pending user must match",
                        current.username
                    ),
                ));
            };
            let want = original.own_grants(base).await;
            original.close().await;
            let want =
                want.map_err(|detail| failed(current, "SHOW GRANTS as the original user", detail))?;
            if have == want {
                return Ok(());
            }
            let missing: Vec<&String> = want.difference(&have).collect();
            let extra: Vec<&String> = have.difference(&want).collect();
            Err(mismatch(format!(
                "user {:?} lacks {missing:?} and has {extra:?} beyond the original user {base:?} (SHOW GRANTS, user names as ?)",
                pending.username
            )))
        }
    }
}

impl RdsRotator {
    async fn set_single<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        config: &Config,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        if pending.username != current.username {
            return Err(Error::InvalidSecretValue {
                secret: arn.to_owned(),
                label: ctx.pending_label.to_owned(),
                problem: format!(
                    "names user {:?}, but AWSCURRENT names {:?}; single-user rotation changes one user's password",
                    pending.username, current.username
                ),
            });
        }
        // The current password, else the previous one (a rotation that changed
        // the database but did not finish), must still log in.
        let mut session = login(current).await?;
        if session.is_none()
            && let Some(previous) = ctx.previous().await?
        {
            let previous = parse(arn, AWSPREVIOUS, &previous.value)?;
            if previous.username == pending.username && previous.host == pending.host {
                session = login(&previous).await?;
            }
        }
        // A user that cannot log in or change its own password (an expired or
        // unknown password, MySQL's password_require_current, a restricted
        // role) has it changed by the master, when the secret has one.
        let has_master = current.masterarn.is_some() || config.master_secret.is_some();
        match session {
            Some(mut session) => {
                waiting(pending, "changing the password of", &pending.username);
                let result = session
                    .set_own_password(&pending.username, &pending.password)
                    .await;
                session.close().await;
                match result.map_err(|detail| {
                    failed(
                        pending,
                        &format!("changing the password of user {:?}", pending.username),
                        detail,
                    )
                }) {
                    Ok(()) => {
                        info!(secret = %arn, user = %pending.username, "password changed");
                        return Ok(());
                    }
                    Err(e) if !has_master || e.is_retryable() => return Err(e),
                    Err(e) => {
                        warn!(secret = %arn, user = %pending.username, error = %e, "the user cannot change its own password; the master changes it");
                    }
                }
            }
            None if !has_master => {
                return Err(refused(
                    pending,
                    format!(
                        "refused the pending, current and previous passwords of user {:?}; set the user's password to the AWSCURRENT value, or give the secret a masterarn, then rotate again",
                        pending.username
                    ),
                ));
            }
            None => {
                info!(secret = %arn, user = %pending.username, "the user's passwords are refused; the master changes it");
            }
        }
        let mut master = self.master_session(ctx, config, current).await?;
        waiting(
            pending,
            "changing, as the master, the password of",
            &pending.username,
        );
        let result = master
            .set_password_of(&pending.username, &pending.password)
            .await;
        master.close().await;
        result.map_err(|detail| {
            failed(
                pending,
                &format!(
                    "changing, as the master, the password of user {:?}",
                    pending.username
                ),
                detail,
            )
        })?;
        info!(secret = %arn, user = %pending.username, "password changed by the master");
        Ok(())
    }

    async fn set_alternating<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        config: &Config,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let expected = alternate_username(
            &current.username,
            config.username_limit(current.engine),
            current.engine,
        )
        .ok();
        if expected.as_deref() != Some(pending.username.as_str()) {
            return Err(Error::InvalidSecretValue {
                secret: arn.to_owned(),
                label: ctx.pending_label.to_owned(),
                problem: format!(
                    "names user {:?}, which is not the alternate of the current user {:?}",
                    pending.username, current.username
                ),
            });
        }
        match login(current).await? {
            Some(session) => session.close().await,
            None => {
                return Err(refused(
                    current,
                    format!(
                        "refused the AWSCURRENT credentials of user {:?}; fix them before rotating",
                        current.username
                    ),
                ));
            }
        }
        let mut session = self.master_session(ctx, config, current).await?;
        waiting(pending, "setting up the alternate user", &pending.username);
        let result = session
            .set_alternate(&current.username, &pending.username, &pending.password)
            .await;
        session.close().await;
        result.map_err(|detail| {
            failed(
                pending,
                &format!("setting up user {:?}", pending.username),
                detail,
            )
        })?;
        info!(secret = %arn, user = %pending.username, "alternate user set");
        Ok(())
    }

    /// A session as the master for `current`'s database: the secret's own
    /// masterarn, else the deployer's MASTER_SECRET_ARN. A masterarn is written
    /// by whoever writes this secret: the master secret is read only if it
    /// agrees to serve this one (its rotor:serves tag) or the deployer's
    /// variable names it.
    async fn master_session<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        config: &Config,
        current: &DbSecret,
    ) -> Result<Session, Error> {
        let arn = ctx.secret_arn();
        let (setting, target) = match (&current.masterarn, &config.master_secret) {
            (Some(named), _) => ("masterarn", named.as_str()),
            (None, Some(deployer)) => (MASTER_SECRET_VAR, deployer.as_str()),
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
        let allowed: Vec<String> = config.master_secret.iter().cloned().collect();
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
        let master_arn = linked.arn.clone();
        let admin = master_login(arn, current, &linked).await?;
        let Some(session) = login(&admin).await? else {
            return Err(refused(
                &admin,
                format!(
                    "refused the master credentials of user {:?} from {master_arn}",
                    admin.username
                ),
            ));
        };
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_proxy_is_named_as_the_likely_cause() {
        let pending = DbSecret::parse(&SecretString::from(
            r#"{"engine":"postgres","host":"app.proxy-abc123.eu-west-1.rds.amazonaws.com","username":"app_clone","password":"hunter2-secret"}"#,
        ))
        .unwrap();
        let refused = ConnectError {
            cause: Cause::Credentials,
            detail: "password authentication failed".into(),
        }
        .into_error(pending.engine, &pending.address(), &pending.username);
        let error = through_proxy(refused, &pending.username);
        assert_eq!(error.error_type(), "NotRetryable.DatabaseAuth");
        let text = error.to_string();
        assert!(
            text.contains("RDS Proxy")
                && text.contains("\"app_clone\"")
                && text.contains("both users' secrets"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
    }
}
