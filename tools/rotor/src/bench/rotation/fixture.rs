//! What each rotation target sets up: its secrets in moto, the function's
//! environment, the throwaway database, and the check after each rotation.

use super::*;

/// One secret the runs rotate (runs take the kinds in turn).
pub(super) struct Kind {
    pub(super) secret: &'static str,
    /// For the progress lines and the calls table.
    pub(super) label: &'static str,
    /// For the description above the tables.
    pub(super) noun: &'static str,
}

/// What a target supplies: its secrets, already created in moto, the function's
/// environment, and the database whose user the secret holds, if any.
pub(super) struct Fixture {
    pub(super) kinds: Vec<Kind>,
    pub(super) env: Vec<(String, String)>,
    pub(super) database: Option<Database>,
    pub(super) iam: Option<crate::iam_bed::IamBed>,
}

/// The login user the database targets rotate.
const DB_USER: &str = "bench_app";

/// The organisational unit of the directory target's account.
const LDAP_OU: &str = "people";

impl Fixture {
    /// generic-rotation's secrets: a plain string, and JSON with other fields.
    pub(super) async fn generic(store: &AwsStore, endpoint: &str) -> anyhow::Result<Fixture> {
        let kinds = vec![
            Kind {
                secret: "bench/plain-string",
                label: "plain string",
                noun: "a plain-string secret",
            },
            Kind {
                secret: "bench/json",
                label: "JSON",
                noun: "a JSON secret",
            },
        ];
        let values = [
            SecretString::from(format!("bench-{}", uuid::Uuid::new_v4().simple())),
            SecretString::from(r#"{"username":"app","password":"x","host":"h"}"#),
        ];
        for (kind, value) in kinds.iter().zip(&values) {
            store
                .create_secret(kind.secret, value, &[])
                .await
                .with_context(|| format!("creating {}", kind.secret))?;
        }
        let mut env = local_env(endpoint);
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        Ok(Fixture {
            kinds,
            env,
            database: None,
            iam: None,
        })
    }

    /// rds-rotation's: a throwaway server (TLS required), a login user with a
    /// random password, and its RDS-format secret.
    pub(super) async fn rds(
        store: &AwsStore,
        endpoint: &str,
        target: Target,
    ) -> anyhow::Result<Fixture> {
        let database = Database::start(target)?;
        let password = random_password();
        database.create_user(DB_USER, &password)?;
        let mut env = local_env(endpoint);
        if let Database::Redis(redis) = &database {
            let admin = serde_json::json!({
                "host": "127.0.0.1",
                "port": redis.tls_port(),
                "username": rotor_testbed::redis_server::ADMIN_USER,
                "password": redis.admin_password().expose_secret(),
            });
            store
                .create_secret(
                    "bench/redis-admin",
                    &SecretString::from(admin.to_string()),
                    &[],
                )
                .await
                .context("creating bench/redis-admin")?;
            env.push(("MASTER_SECRET_ARN".into(), "bench/redis-admin".into()));
        }
        let value = match &database {
            // A directory account: the URL and the account's DN, no engine.
            Database::Ldap(ldap) => serde_json::json!({
                "directory": "ldap",
                "url": ldap.ldap_url(),
                "username": ldap.user_dn(DB_USER, LDAP_OU),
                "password": password.expose_secret(),
            }),
            _ => serde_json::json!({
                "engine": database.engine(),
                "host": "127.0.0.1",
                "port": database.port(),
                "username": DB_USER,
                "password": password.expose_secret(),
            }),
        };
        let kind = match database {
            Database::Postgres(_) => Kind {
                secret: "bench/postgres-app",
                label: "PostgreSQL",
                noun: "an RDS-format secret for a PostgreSQL user",
            },
            Database::MariaDb(_) => Kind {
                secret: "bench/mariadb-app",
                label: "MariaDB",
                noun: "an RDS-format secret for a MariaDB user",
            },
            Database::Redis(_) => Kind {
                secret: "bench/redis-app",
                label: "Redis",
                noun: "a secret for a Redis ACL user",
            },
            Database::Ldap(_) => Kind {
                secret: "bench/ldap-app",
                label: "OpenLDAP",
                noun: "a secret for an OpenLDAP account",
            },
        };
        store
            .create_secret(kind.secret, &SecretString::from(value.to_string()), &[])
            .await
            .with_context(|| format!("creating {}", kind.secret))?;
        env.push((
            "SSL_CERT_FILE".into(),
            database.ca_path().display().to_string(),
        ));
        env.push(("ROTATION_STRATEGY".into(), "single".into()));
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        Ok(Fixture {
            kinds: vec![kind],
            env,
            database: Some(database),
            iam: None,
        })
    }

    /// iam-rotation's: a second moto with IAM authentication on, a user with
    /// one key, the function's own IAM user, and the secret (`iam_bed`).
    pub(super) async fn iam(store: &AwsStore, endpoint: &str) -> anyhow::Result<Fixture> {
        let secret = "bench/iam-ci";
        let (bed, mut env) =
            crate::iam_bed::IamBed::start(store, endpoint, secret, "bench-ci").await?;
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        Ok(Fixture {
            kinds: vec![Kind {
                secret,
                label: "IAM key",
                noun: "a secret holding an IAM user's access key",
            }],
            env,
            database: None,
            iam: Some(bed),
        })
    }

    /// After a rotation of `secret`, for a database target: the AWSCURRENT
    /// password differs from AWSPREVIOUS's and logs in, and neither shows in the
    /// function's `output`. Nothing to check for generic.
    pub(super) async fn check(
        &self,
        store: &AwsStore,
        secret: &str,
        output: &str,
    ) -> anyhow::Result<()> {
        if let Some(iam) = &self.iam {
            return iam.check(store, secret, output).await;
        }
        let Some(database) = &self.database else {
            return Ok(());
        };
        let credentials = |label: &'static str| async move {
            let stored = store
                .get_value(secret, VersionSelector::Label(label))
                .await
                .with_context(|| format!("reading {secret}'s {label} value"))?
                .with_context(|| format!("{secret} has no {label} value"))?;
            let value: Value = serde_json::from_str(stored.value.expose_secret())
                .map_err(|_| anyhow::anyhow!("{secret}'s {label} value is not JSON"))?;
            match (value["username"].as_str(), value["password"].as_str()) {
                (Some(user), Some(password)) => {
                    anyhow::Ok((user.to_owned(), SecretString::from(password)))
                }
                _ => bail!("{secret}'s {label} value has no username or password"),
            }
        };
        let (user, new) = credentials(AWSCURRENT).await?;
        let (_, old) = credentials(AWSPREVIOUS).await?;
        ensure!(
            new.expose_secret() != old.expose_secret(),
            "the rotation of {secret} left the password as it was"
        );
        ensure!(
            !output.contains(new.expose_secret()) && !output.contains(old.expose_secret()),
            "the function's output holds a password of {secret}"
        );
        database.logs_in(&user, &new).with_context(|| {
            format!(
                "{} could not log in as {user} with {secret}'s new AWSCURRENT password",
                database.client()
            )
        })
    }
}

/// The server a database target's secret points at.
pub(super) enum Database {
    Postgres(Postgres),
    MariaDb(MariaDb),
    Redis(rotor_testbed::redis_server::RedisServer),
    Ldap(rotor_testbed::openldap::OpenLdap),
}

impl Database {
    fn start(target: Target) -> anyhow::Result<Database> {
        Ok(match target {
            Target::RdsPostgres => Database::Postgres(Postgres::start(TlsMode::Required)?),
            Target::RdsMariaDb => Database::MariaDb(MariaDb::start(TlsMode::Required)?),
            Target::Redis => Database::Redis(rotor_testbed::redis_server::RedisServer::start()?),
            Target::Ldap => Database::Ldap(rotor_testbed::openldap::OpenLdap::start()?),
            Target::Generic | Target::Iam | Target::Fleet => bail!("this target has no database"),
        })
    }

    /// The secret's `engine`.
    fn engine(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::MariaDb(_) => "mariadb",
            Database::Redis(_) => "redis",
            Database::Ldap(_) => "ldap",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Database::Postgres(db) => db.port(),
            Database::MariaDb(db) => db.port(),
            Database::Redis(db) => db.tls_port(),
            Database::Ldap(db) => db.ldap_port(),
        }
    }

    fn ca_path(&self) -> &Path {
        match self {
            Database::Postgres(db) => db.ca_path(),
            Database::MariaDb(db) => db.ca_path(),
            Database::Redis(db) => db.ca_path(),
            Database::Ldap(db) => db.ca_path(),
        }
    }

    /// The CLI client that checks logins.
    pub(super) fn client(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "psql",
            Database::MariaDb(_) => "the mariadb client",
            Database::Redis(_) => "redis-cli",
            Database::Ldap(_) => "ldapsearch",
        }
    }

    /// Creates a login user (no other privileges) as the admin.
    fn create_user(&self, user: &str, password: &SecretString) -> anyhow::Result<()> {
        match self {
            Database::Postgres(db) => db.psql(&format!(
                "CREATE ROLE {user} LOGIN PASSWORD '{}'",
                password.expose_secret()
            )),
            Database::MariaDb(db) => db.sql(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{}'",
                password.expose_secret()
            )),
            Database::Redis(db) => db.create_user(user, password, &[]).map(|()| String::new()),
            Database::Ldap(db) => db
                .create_user(user, LDAP_OU, password)
                .map(|()| String::new()),
        }
        .with_context(|| format!("creating the database user {user}"))?;
        Ok(())
    }

    /// Whether `user` logs in with `password` (verified TLS), as an error if not.
    fn logs_in(&self, user: &str, password: &SecretString) -> anyhow::Result<()> {
        let login = ClientLogin::new(
            user,
            SecretString::from(password.expose_secret()),
            ClientTls::Verify(self.ca_path().to_path_buf()),
        );
        match self {
            Database::Postgres(db) => db.psql_with(&login, "postgres", "SELECT 1"),
            Database::MariaDb(db) => db.sql_with(&login, "SELECT 1"),
            Database::Redis(db) => {
                ensure!(
                    db.logs_in(user, password),
                    "redis-cli could not log in as {user}"
                );
                Ok(String::new())
            }
            // The secret's username is the account's DN.
            Database::Ldap(db) => {
                ensure!(
                    db.binds(user, password),
                    "ldapsearch could not bind as {user}"
                );
                Ok(String::new())
            }
        }
        .map(drop)
    }

    /// The server's name and version, as it reports them.
    pub(super) fn version(&self) -> String {
        let reported = match self {
            Database::Postgres(db) => db.psql("SHOW server_version"),
            Database::MariaDb(db) => db.sql("SELECT VERSION()"),
            Database::Redis(db) => db.admin(&["INFO", "server"]).map(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .unwrap_or("?")
                    .to_owned()
            }),
            // slapd names its version on stderr: "@(#) $OpenLDAP: slapd 2.5.13+dfsg-5 ...".
            Database::Ldap(_) => std::process::Command::new("/usr/sbin/slapd")
                .arg("-VV")
                .output()
                .map_err(anyhow::Error::from)
                .and_then(|out| {
                    let text = String::from_utf8_lossy(&out.stderr).into_owned();
                    text.split_whitespace()
                        .skip_while(|w| *w != "slapd")
                        .nth(1)
                        .map(str::to_owned)
                        .context("slapd -VV named no version")
                }),
        };
        let name = match self {
            Database::Postgres(_) => "PostgreSQL",
            Database::MariaDb(_) => "MariaDB",
            Database::Redis(_) => "Redis",
            Database::Ldap(_) => "OpenLDAP",
        };
        match reported {
            Ok(version) => format!("{name} {}", version.trim()),
            Err(_) => format!("{name} (version unknown)"),
        }
    }
}
