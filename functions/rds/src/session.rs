//! A logged-in session with either engine, and the errors a step reports
//! about it: a login the server refused, a statement that failed, a login an
//! RDS Proxy turned away. Every message names the engine, host and port.

use std::time::Duration;

use rotor_core::retry::Backoff;
use rotor_core::{Error, SecretString, TargetError, TargetKind};
use tracing::warn;

use crate::connect::{ConnectError, ConnectFailure};
use crate::mysql;
use crate::postgres;
use crate::rds_api;
use crate::secret::{DbSecret, base_username};

/// An open session with either engine.
pub(crate) enum Session {
    Postgres(tokio_postgres::Client),
    MySql(mysql::Session),
}

/// A change setSecret makes to a user through a session, for the pending
/// version's user and password.
#[derive(Clone, Copy)]
pub(crate) enum Change<'a> {
    /// The logged-in user changes its own password.
    OwnPassword,
    /// A master session changes the user's password and nothing else: on
    /// PostgreSQL `ALTER ROLE ... PASSWORD` (never LOGIN, never CREATE), on
    /// MySQL and MariaDB `ALTER USER` for every account of the name.
    PasswordAsMaster,
    /// A master session brings the alternate user to the state of the
    /// original user `current` names (either user of the pair).
    Alternate {
        /// AWSCURRENT's user name.
        current: &'a str,
    },
}

impl Change<'_> {
    /// What the step waits for while it makes the change, before "user ...".
    fn doing(self) -> &'static str {
        match self {
            Change::OwnPassword => "changing the password of",
            Change::PasswordAsMaster => "changing, as the master, the password of",
            Change::Alternate { .. } => "setting up the alternate user",
        }
    }

    /// What failed, before "user ...".
    fn what(self) -> &'static str {
        match self {
            Change::Alternate { .. } => "setting up",
            other => other.doing(),
        }
    }
}

impl Session {
    /// Logs in as `user` with `password` at `secret`'s database.
    pub(crate) async fn open(
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

    /// The query AWS's functions use to prove a login works.
    pub(crate) async fn ping(&mut self) -> Result<(), TargetError> {
        match self {
            Session::Postgres(client) => postgres::ping(client).await,
            Session::MySql(session) => session.ping().await,
        }
    }

    /// Makes `change` for `pending`'s user and password, closes the session,
    /// and says which change failed.
    pub(crate) async fn apply(
        mut self,
        change: Change<'_>,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let user = pending.username.as_str();
        let password = &pending.password;
        waiting(pending, change.doing(), user);
        let result = match (&mut self, change) {
            (Session::Postgres(client), Change::OwnPassword) => {
                postgres::set_password(client, user, password).await
            }
            (Session::MySql(session), Change::OwnPassword) => {
                session.set_own_password(password).await
            }
            (Session::Postgres(client), Change::PasswordAsMaster) => {
                postgres::set_password(client, user, password).await
            }
            (Session::MySql(session), Change::PasswordAsMaster) => {
                session.set_password_everywhere(user, password).await
            }
            (Session::Postgres(client), Change::Alternate { current }) => {
                postgres::set_alternate(client, base_username(current), user, password).await
            }
            (Session::MySql(session), Change::Alternate { current }) => {
                session
                    .set_alternate(base_username(current), user, password)
                    .await
            }
        };
        self.close().await;
        result
            .map_err(|detail| failed(pending, &format!("{} user {user:?}", change.what()), detail))
    }

    /// Closes the session politely.
    pub(crate) async fn close(self) {
        match self {
            Session::Postgres(client) => drop(client),
            Session::MySql(session) => session.close().await,
        }
    }
}

/// Logs in with a secret's own credentials: `Ok(None)` when the server
/// refuses them, an error for anything else (network, TLS), which no other
/// credential would get past either.
pub(crate) async fn login(secret: &DbSecret) -> Result<Option<Session>, Error> {
    waiting(secret, "logging in as", &secret.username);
    match Session::open(secret, &secret.username, &secret.password).await {
        Ok(session) => Ok(Some(session)),
        Err(e) if e.failure == ConnectFailure::Credentials => Ok(None),
        Err(e) => Err(e.into_error(secret.engine, &secret.address(), &secret.username)),
    }
}

/// testSecret's login with the pending credentials, tried `attempts` times:
/// a new password can take a moment to reach every node (Aurora readers,
/// proxies), so a refusal, a busy server or no answer is retried briefly
/// with backoff.
pub(crate) async fn pending_login(
    arn: &str,
    pending: &DbSecret,
    attempts: u32,
) -> Result<Session, Error> {
    let user = &pending.username;
    Backoff::new(Duration::from_millis(250), Duration::from_secs(4))
        .attempts(attempts)
        .run(
            |_| {
                waiting(pending, "testing the login of", user);
                Session::open(pending, user, &pending.password)
            },
            |e| e.failure.may_pass_soon(),
            |attempt, e, _| {
                warn!(secret = %arn, attempt, failure = ?e.failure, "the pending credentials did not log in yet; retrying");
            },
        )
        .await
        .map_err(|gave_up| login_failed(pending, gave_up.error))
}

/// testSecret, MySQL and MariaDB: every account of the pending user's name
/// has the password the session logged in with, as far as the session can
/// see (it may read `mysql.user`, and the accounts' plugins store the same
/// string for the same password). A login checks only the account that
/// matches the function's own address. PostgreSQL has one role per name.
pub(crate) async fn same_password_everywhere(
    session: &mut Session,
    pending: &DbSecret,
) -> Result<(), Error> {
    let Session::MySql(session) = session else {
        return Ok(());
    };
    let user = &pending.username;
    let differ = session
        .accounts_with_another_password(user)
        .await
        .map_err(|detail| {
            failed(
                pending,
                &format!("reading the accounts of {user:?}"),
                detail,
            )
        })?;
    if differ.is_empty() {
        return Ok(());
    }
    let accounts = match differ.as_slice() {
        [one] => format!("account {one} has"),
        _ => format!("accounts {} have", differ.join(", ")),
    };
    let problem = format!(
        concat!(
            "testSecret: {} of user {:?} another password than the account that logged in with ",
            "the pending one; run setSecret again (it changes every account of the name)"
        ),
        accounts, user
    );
    let mismatch = TargetError::new(rotor_core::Cause::Mismatch, problem);
    Err(mismatch.at(TargetKind::Database, target(pending)))
}

/// Tells a tracked step what it now waits for at the database.
pub(crate) fn waiting(secret: &DbSecret, doing: &str, user: &str) {
    rotor_core::progress::waiting_for(|| {
        format!(
            "{} at {} ({doing} user {user:?})",
            secret.engine,
            secret.address()
        )
    });
}

/// The database at `secret`'s address refused a login; `problem` says whose
/// and what to do.
pub(crate) fn refused(secret: &DbSecret, problem: String) -> Error {
    TargetError::new(rotor_core::Cause::Auth, problem).at(TargetKind::Database, target(secret))
}

/// A statement that failed on an open session; its cause comes from the
/// driver's typed error (the connection broke, the server was busy, or it
/// refused the statement).
pub(crate) fn failed(secret: &DbSecret, what: &str, error: TargetError) -> Error {
    TargetError::new(error.cause, format!("{what} failed: {}", error.problem))
        .at(TargetKind::Database, target(secret))
}

/// `secret`'s database as errors name it: `PostgreSQL at host:port`.
pub(crate) fn target(secret: &DbSecret) -> String {
    format!("{} at {}", secret.engine, secret.address())
}

/// A login to `secret`'s database that failed; when an RDS Proxy refused it,
/// the error also names the likely cause.
pub(crate) fn login_failed(secret: &DbSecret, error: ConnectError) -> Error {
    let refused = error.failure == ConnectFailure::Credentials;
    let error = error.into_error(secret.engine, &secret.address(), &secret.username);
    if refused && rds_api::is_rds_proxy(&secret.host) {
        through_proxy(error, &secret.username)
    } else {
        error
    }
}

/// A login an RDS Proxy refused: the proxy authenticates with the secrets
/// registered with it, so the likely cause is that the pending user's secret
/// is not one of them (alternating users log in under two names).
fn through_proxy(error: Error, user: &str) -> Error {
    error.map_target_problem(|problem| {
        format!(
            concat!(
                "{}; the host is an RDS Proxy endpoint, which logs users in with the secrets ",
                "registered with it: register the secret of user {:?} with the proxy (with ",
                "alternating users, both users' secrets; see the README's RDS Proxy section)"
            ),
            problem, user
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_proxy_is_named_as_the_likely_cause() {
        let pending = serde_json::json!({
            "engine": "postgres",
            "host": "app.proxy-abc123.eu-west-1.rds.amazonaws.com",
            "username": "app_clone",
            "password": "hunter2-secret",
        });
        let pending = DbSecret::parse(&SecretString::from(pending.to_string())).unwrap();
        let refused = ConnectError {
            failure: ConnectFailure::Credentials,
            detail: "password authentication failed".into(),
        };
        let error = login_failed(&pending, refused);
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

    #[test]
    fn changes_name_what_failed() {
        assert_eq!(Change::OwnPassword.what(), "changing the password of");
        assert_eq!(
            Change::PasswordAsMaster.what(),
            "changing, as the master, the password of"
        );
        assert_eq!(Change::Alternate { current: "app" }.what(), "setting up");
    }
}
