//! The master (admin) secret: which one a secret may use, where the master
//! logs in, the session it opens, and whom it may act on. A master secret
//! that RDS manages holds only a user name and password; its database comes
//! from the RDS API ([`crate::rds_api`]).
//!
//! Whoever writes a user's secret must not be able to send the master
//! password to a host of their choosing, nor in plaintext, nor make the
//! master act on an account that is not theirs: the master logs in to its
//! own database's writer, with its own transport; the user's host and port
//! must be that database's or a reader's the RDS API reports; and the master
//! never changes its own user, users outside its owner's `rotor:manages`
//! tag, the server's system accounts or privileged accounts
//! ([`Master::admit`]).

use rotor_core::admin::{self, ADMIN_FIELD, ADMIN_VAR, Admin, Endpoint, Names};
use rotor_core::labels::AWSCURRENT;
use rotor_core::{Error, SecretStore, StepContext, value};

use crate::config::Config;
use crate::rds_api;
use crate::secret::{DbSecret, Transport, base_username};
use crate::session::{self, Change, Session, failed, refused};

/// A master logged in to the database of the secret being rotated, with what
/// bounds it: its own user and its owner's `rotor:manages` tag.
pub(crate) struct Master {
    session: Session,
    /// Where and as whom the master logged in, for messages (engine, host
    /// and port) and for its own user.
    login: DbSecret,
    /// The master secret: its ARN, and the users its owner lets it manage.
    admin: Admin,
    /// The secret being rotated.
    secret: String,
}

/// What the master is about to do to a user it admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// Change the password of an existing user that logs in (single user,
    /// or the original user of an alternating pair).
    SetPassword,
    /// Make the alternate user (`<original>_clone`) of the pair: the user is
    /// created, or an existing one brought to its original's state (its
    /// privileges replaced, its password set). It may be missing or unable
    /// to log in, but an existing one must not be privileged, nor a role
    /// that others are members of: the master would otherwise strip and
    /// hand to the writer an account that is surely not a rotation's, or
    /// pass the original's privileges to the role's members (its original
    /// passes [`Act::SetPassword`]'s checks and the master grants a clone to
    /// no one, so a clone the master made is neither).
    Alternate,
}

/// User names the engines and Amazon RDS keep for themselves.
const SYSTEM_USERS: [&str; 8] = [
    "rdsadmin",
    "rdsrepladmin",
    "rdstopmgr",
    "rdsproxyadmin",
    "mysql.sys",
    "mysql.session",
    "mysql.infoschema",
    "mariadb.sys",
];

/// Why the master refuses a system account.
const SYSTEM_ACCOUNT: &str = concat!(
    "it is a system account of the database engine or of Amazon RDS, ",
    "which only they manage"
);

/// A user as the master sees it before acting on it.
#[derive(Default)]
struct Seen {
    /// It exists (PostgreSQL: a role; MySQL and MariaDB: an account).
    exists: bool,
    /// It may log in (PostgreSQL's LOGIN; always so for MySQL and MariaDB).
    can_login: bool,
    /// Why it is privileged; empty when it is not.
    privileged: Vec<String>,
    /// The roles that are members of it (PostgreSQL), which inherit what it
    /// is given.
    members: Vec<String>,
}

impl Seen {
    /// Why the master may not set this user's password, if it may not: it
    /// sets the password of an existing, unprivileged user that logs in, and
    /// changes nothing else.
    fn unfit_for_password(&self) -> Option<String> {
        if !self.exists {
            return Some(
                concat!(
                    "it does not exist on this server; the master changes the password of an ",
                    "existing user and never creates one for a single user: create the user first"
                )
                .to_owned(),
            );
        }
        if !self.can_login {
            return Some(
                concat!(
                    "it cannot log in (NOLOGIN): it is a group role, not a user, and the master ",
                    "never adds LOGIN"
                )
                .to_owned(),
            );
        }
        if self.privileged.is_empty() {
            return None;
        }
        Some(format!(
            concat!(
                "it is a privileged account ({}); the master never hands one to the writer of ",
                "another secret: rotate it with its own login (its current password), or as the ",
                "master's owner"
            ),
            self.privileged.join("; ")
        ))
    }

    /// Why this user may not become the alternate user of `original`, if it
    /// may not. It may be missing or unable to log in; but the master would
    /// replace an existing one's privileges and password, and give it LOGIN,
    /// so it must be neither privileged nor a role that others are members
    /// of (they would inherit `original`'s privileges through it).
    fn unfit_for_alternate(&self, original: &str) -> Option<String> {
        let (found, fix) = if !self.privileged.is_empty() {
            let why = self.privileged.join("; ");
            let found = format!(
                concat!(
                    "it exists and is a privileged account ({why}). As the alternate user of ",
                    "{original:?} the master would replace its privileges with {original:?}'s ",
                    "and its password with this secret's, and it never does that to a ",
                    "privileged account"
                ),
                why = why,
                original = original,
            );
            (found, "take those privileges from it")
        } else if !self.members.is_empty() {
            let members: Vec<String> = self.members.iter().map(|m| format!("{m:?}")).collect();
            let found = format!(
                concat!(
                    "it exists and other roles are members of it ({members}). As the alternate ",
                    "user of {original:?} it would log in and act with {original:?}'s ",
                    "privileges, and so would its members: the master never makes a role with ",
                    "members an alternate user"
                ),
                members = members.join(", "),
                original = original,
            );
            (found, "revoke it from those roles")
        } else {
            return None;
        };
        Some(format!(
            concat!(
                "{found}. If it is this secret's alternate user, {fix} (as its owner) and rotate ",
                "again; if it is someone else's account, leave it and give this secret an ",
                "original user whose alternate name is free"
            ),
            found = found,
            fix = fix,
        ))
    }
}

/// Whether `user` is a system account of the engine or of Amazon RDS:
/// [`SYSTEM_USERS`], and RDS's `rds_` roles.
fn is_system_user(user: &str) -> bool {
    SYSTEM_USERS.contains(&user) || user.starts_with("rds_")
}

/// The master for `current`'s database: the secret's own masterarn, else the
/// deployer's MASTER_SECRET_ARN. A masterarn is written by whoever writes
/// this secret: the master secret is read only if it agrees to serve this
/// one (its rotor:serves tag) or the deployer's variable names it, and its
/// password goes only to its own server, which must be this secret's (host
/// and port) or one the RDS API reports this secret's host as a reader of.
pub(crate) async fn open<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    current: &DbSecret,
) -> Result<Master, Error> {
    let arn = ctx.secret_arn();
    let named = current.masterarn.as_deref();
    let deployer = config.master_secret();
    let Some(admin) = admin::read(ctx.store(), ctx.secret, named, deployer).await? else {
        let problem = format!(
            "has no {f} field; this needs a master secret: add {f}, or set {ADMIN_VAR}",
            f = ADMIN_FIELD
        );
        return Err(Error::InvalidSecretValue {
            secret: arn.to_owned(),
            label: AWSCURRENT.into(),
            problem,
        });
    };
    let login = master_login(arn, &admin, current).await?;
    let Some(session) = session::login(&login).await? else {
        let problem = format!(
            "refused the master credentials of user {:?} from {}",
            login.username, admin.secret.arn
        );
        return Err(refused(&login, problem));
    };
    Ok(Master {
        session,
        login,
        admin,
        secret: arn.to_owned(),
    })
}

impl Master {
    /// Refuses to `act` on `user` unless the master may: never its own
    /// user, only users its owner's `rotor:manages` tag admits, never a
    /// system account, never a privileged account, as the server reports
    /// it (each engine's [`crate::postgres::role`] and
    /// [`crate::mysql::Session::accounts`] say what counts); and, to set a
    /// password, only an existing user that logs in. A refusal is
    /// `NotRetryable.NotManaged` and changes nothing.
    pub(crate) async fn admit(&mut self, user: &str, act: Act) -> Result<(), Error> {
        let own_user = &self.login.username;
        (self.admin).require_manages(&self.secret, own_user, user, Names::CaseSensitive)?;
        let unfit = if is_system_user(user) {
            Some(SYSTEM_ACCOUNT.to_owned())
        } else {
            let seen = self.look_up(user).await?;
            match act {
                Act::SetPassword => seen.unfit_for_password(),
                Act::Alternate => seen.unfit_for_alternate(base_username(user)),
            }
        };
        match unfit {
            None => Ok(()),
            Some(reason) => Err(admin::not_managed(
                &self.secret,
                &self.admin.secret.arn,
                user,
                &reason,
            )),
        }
    }

    /// `user` as the server shows it to the master.
    async fn look_up(&mut self, user: &str) -> Result<Seen, Error> {
        match &mut self.session {
            Session::Postgres(client) => match crate::postgres::role(client, user).await {
                Ok(Some(role)) => Ok(Seen {
                    exists: true,
                    can_login: role.can_login,
                    privileged: role.privileged,
                    members: role.members,
                }),
                Ok(None) => Ok(Seen::default()),
                Err(e) => Err(failed(&self.login, &format!("reading role {user:?}"), e)),
            },
            Session::MySql(session) => match session.accounts(user, &self.login.username).await {
                Ok(accounts) => Ok(Seen {
                    exists: !accounts.hosts.is_empty(),
                    can_login: true,
                    privileged: accounts.privileged,
                    members: Vec::new(),
                }),
                Err(e) => {
                    let what = format!("reading the accounts of user {user:?}");
                    Err(failed(&self.login, &what, e))
                }
            },
        }
    }

    /// How many accounts (`user@host`) MySQL or MariaDB has for `user`; one
    /// for PostgreSQL, where a name is one role.
    pub(crate) async fn accounts(&mut self, user: &str) -> Result<usize, Error> {
        match &mut self.session {
            Session::Postgres(_) => Ok(1),
            Session::MySql(session) => session.hosts(user).await.map(|h| h.len()).map_err(|e| {
                failed(
                    &self.login,
                    &format!("listing the accounts of user {user:?}"),
                    e,
                )
            }),
        }
    }

    /// Makes `change` for `pending`'s user, once [`Master::admit`] agreed.
    pub(crate) async fn apply(self, change: Change<'_>, pending: &DbSecret) -> Result<(), Error> {
        self.session.apply(change, pending).await
    }

    /// Closes the session politely.
    pub(crate) async fn close(self) {
        self.session.close().await;
    }
}

/// Where and how the master logs in for `current` (the secret `arn`): the
/// user's database, with the master's credentials, port and transport. A
/// master secret that RDS keeps (only `username` and `password`, tagged with
/// its instance or cluster) gets engine, host and port from the RDS API and is
/// always used over verified TLS; `"ssl": false` in the user's secret is not
/// the master's.
async fn master_login(arn: &str, admin: &Admin, current: &DbSecret) -> Result<DbSecret, Error> {
    let master = &admin.secret;
    let kept_by_rds = rds_api::Primary::of_master(master);
    let mut api = None;
    let (username, password, engine, at, transport) = match &kept_by_rds {
        Some(primary) => {
            let rds = api.insert(rds_api::Rds::from_env().await);
            let database = rds.endpoint(primary).await?;
            let login: rds_api::MasterCredentials =
                value::parse_version(&master.arn, AWSCURRENT, &master.value)?;
            let at = Endpoint::new(database.host, database.port);
            let transport = Transport::VerifiedTls;
            (
                login.username,
                login.password,
                database.engine,
                at,
                transport,
            )
        }
        None => {
            let login: DbSecret = value::parse_version(&master.arn, AWSCURRENT, &master.value)?;
            let at = login.endpoint();
            (
                login.username,
                login.password,
                login.engine,
                at,
                login.transport,
            )
        }
    };
    let settings = |problem: String| Error::InvalidSettings {
        secret: arn.to_owned(),
        setting: admin.setting.to_owned(),
        problem,
    };
    // The user's server must be the master's, host and port: a listener of
    // the writer's on another port of the same host would otherwise answer
    // the checks made with the user's own credentials. A user secret may also
    // name a reader of the master's database (a read replica, an Aurora
    // reader, the cluster's reader endpoint), at the port the RDS API reports
    // for it; the master still logs in to the writer.
    let user_at = current.endpoint();
    if admin::same_host(&at.host, &user_at.host) {
        admin.require_same_endpoint(arn, &at, &user_at)?;
    } else {
        let rds = match api {
            Some(rds) => rds,
            None => rds_api::Rds::from_env().await,
        };
        let primary = kept_by_rds.as_ref();
        let reader = rds.reader_of(&user_at.host, primary, &at.host).await?;
        // A reader the API reports without a port listens on the writer's.
        match reader.map(|reader| Endpoint::new(&user_at.host, reader.port.unwrap_or(at.port))) {
            Some(reader_at) if reader_at.is(&user_at) => {}
            None => {
                return Err(settings(format!(
                    concat!(
                        "the master secret's database is at {}, but this secret names {}, ",
                        "which the RDS API does not report as a reader of it; they must be ",
                        "the same database or a reader of it"
                    ),
                    at, user_at
                )));
            }
            Some(reader_at) => {
                return Err(settings(format!(
                    concat!(
                        "this secret names {}, but the RDS API reports that reader of the ",
                        "master's database ({}) at {}; host and port must both be the reader's"
                    ),
                    user_at, at, reader_at
                )));
            }
        }
    }
    if engine.is_mysql_family() != current.engine.is_mysql_family() {
        return Err(settings(format!(
            "the master secret's database runs {engine}, but this secret names {}",
            current.engine
        )));
    }
    Ok(current.login_at(username, password, at, transport))
}
