//! A throwaway database of either engine, as the rotation tests use it: admin
//! SQL, users, secrets that point at it (directly or through a proxy), and
//! logins checked with the engine's own CLI client (psql, mariadb), which shares
//! no code with the function.

use rotor_core::{AwsStore, ExposeSecret, SecretString};
use rotor_testbed::db::{ClientLogin, ClientTls, MariaDb, Postgres, ServerCert, TlsMode};
use serde_json::{Value, json};

use crate::value;

/// A throwaway server of either engine.
pub enum Db {
    /// PostgreSQL.
    Postgres(Postgres),
    /// MariaDB.
    MariaDb(MariaDb),
}

impl Db {
    /// Starts a server of `engine` (`postgres` or `mariadb`).
    pub fn start(engine: &str, tls: TlsMode) -> Db {
        let started = match engine {
            "postgres" => Postgres::start(tls).map(Db::Postgres),
            _ => MariaDb::start(tls).map(Db::MariaDb),
        };
        started.unwrap_or_else(|e| panic!("cannot start {engine}: {e:#}"))
    }

    /// Starts a server of `engine` whose certificate also names `names`.
    pub fn start_also_for(engine: &str, names: &[&str]) -> Db {
        let names: Vec<&'static str> = names
            .iter()
            .map(|n| &*Box::leak(n.to_string().into_boxed_str()))
            .collect();
        let cert = ServerCert::ValidAlsoFor(Box::leak(names.into_boxed_slice()));
        let started = match engine {
            "postgres" => Postgres::start_with(TlsMode::Required, cert).map(Db::Postgres),
            _ => MariaDb::start_with(TlsMode::Required, cert).map(Db::MariaDb),
        };
        started.unwrap_or_else(|e| panic!("cannot start {engine}: {e:#}"))
    }

    /// The secret's `engine` value.
    pub fn engine(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::MariaDb(_) => "mariadb",
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        match self {
            Db::Postgres(db) => db.port(),
            Db::MariaDb(db) => db.port(),
        }
    }

    /// The test CA that issued the server's certificate.
    pub fn ca_path(&self) -> String {
        let path = match self {
            Db::Postgres(db) => db.ca_path(),
            Db::MariaDb(db) => db.ca_path(),
        };
        path.display().to_string()
    }

    /// Runs SQL as the admin; panics on failure.
    pub fn admin(&self, sql: &str) -> String {
        let result = match self {
            Db::Postgres(db) => db.psql(sql),
            Db::MariaDb(db) => db.sql(sql),
        };
        result.unwrap_or_else(|e| panic!("admin SQL failed: {e:#}"))
    }

    /// The admin's user name.
    pub fn admin_user(&self) -> String {
        match self {
            Db::Postgres(db) => db.admin_user().to_owned(),
            Db::MariaDb(db) => db.admin_user().to_owned(),
        }
    }

    /// The admin's password.
    pub fn admin_password(&self) -> SecretString {
        match self {
            Db::Postgres(db) => db.admin_password(),
            Db::MariaDb(db) => db.admin_password(),
        }
    }

    /// Runs a query as `user` over verified TLS; Err holds the client's message.
    pub fn query_as(
        &self,
        user: &str,
        password: &SecretString,
        sql: &str,
    ) -> Result<String, String> {
        let login = ClientLogin::new(
            user,
            SecretString::from(password.expose_secret()),
            ClientTls::Verify(self.ca_path().into()),
        );
        let result = match self {
            Db::Postgres(db) => db.psql_with(&login, "postgres", sql),
            Db::MariaDb(db) => db.sql_with(&login, sql),
        };
        result.map_err(|e| format!("{e:#}"))
    }

    /// Whether `user` logs in with `password` over verified TLS.
    pub fn logs_in(&self, user: &str, password: &SecretString) -> bool {
        self.query_as(user, password, "SELECT 1").is_ok()
    }

    /// Creates a login user with a password and a table it owns or can use.
    pub fn create_user(&self, user: &str, password: &SecretString) {
        let pw = password.expose_secret();
        match self {
            Db::Postgres(_) => self.admin(&format!(
                "CREATE ROLE {} LOGIN PASSWORD {}",
                pg_ident(user),
                pg_literal(pw)
            )),
            Db::MariaDb(_) => self.admin(&format!(
                "CREATE USER {account} IDENTIFIED BY {}; CREATE DATABASE IF NOT EXISTS shop; GRANT SELECT, INSERT ON shop.* TO {account}",
                my_literal(pw),
                account = my_account(user)
            )),
        };
    }

    /// Gives `user` (made by [`Db::create_user`]) read access to one table,
    /// `items`, and none to another, `vault`: what [`Db::has_access_of_original`]
    /// checks. Idempotent.
    pub fn grant_items_not_vault(&self, user: &str) {
        match self {
            Db::Postgres(_) => self.admin(&format!(
                "CREATE TABLE IF NOT EXISTS items (x int); CREATE TABLE IF NOT EXISTS vault (k int); GRANT SELECT ON items TO {}",
                pg_ident(user)
            )),
            Db::MariaDb(_) => self.admin(
                "CREATE DATABASE IF NOT EXISTS vault; CREATE TABLE IF NOT EXISTS vault.keys (k int); CREATE TABLE IF NOT EXISTS shop.items (x int)",
            ),
        };
    }

    /// Whether `user` logs in with `password` and has the access that
    /// [`Db::grant_items_not_vault`] gave the original user: it reads `items`
    /// and cannot read `vault`. Err says which part failed.
    pub fn has_access_of_original(
        &self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), String> {
        let (items, vault) = match self {
            Db::Postgres(_) => ("SELECT count(*) FROM items", "SELECT count(*) FROM vault"),
            Db::MariaDb(_) => (
                "SELECT count(*) FROM shop.items",
                "SELECT count(*) FROM vault.keys",
            ),
        };
        self.query_as(user, password, items)
            .map_err(|e| format!("{user} cannot read the table its original user reads: {e}"))?;
        match self.query_as(user, password, vault) {
            Ok(_) => Err(format!(
                "{user} reads a table its original user cannot read"
            )),
            Err(_) => Ok(()),
        }
    }

    /// A secret for `user` at this server.
    pub fn secret(&self, user: &str, password: &SecretString, extra: Value) -> String {
        self.secret_at("127.0.0.1", self.port(), user, password, extra)
    }

    /// A secret for `user` that reaches this server at `host:port` (a proxy).
    pub fn secret_at(
        &self,
        host: &str,
        port: u16,
        user: &str,
        password: &SecretString,
        extra: Value,
    ) -> String {
        let mut secret = json!({
            "engine": self.engine(),
            "host": host,
            "port": port,
            "username": user,
            "password": password.expose_secret(),
        });
        if let (Some(object), Value::Object(extra)) = (secret.as_object_mut(), extra) {
            object.extend(extra);
        }
        secret.to_string()
    }

    /// Whether a stored secret value (JSON with username and password) logs in.
    pub fn value_logs_in(&self, value: &SecretString) -> bool {
        let Ok(parsed) = serde_json::from_str::<Value>(value.expose_secret()) else {
            return false;
        };
        match (parsed["username"].as_str(), parsed["password"].as_str()) {
            (Some(user), Some(password)) => self.logs_in(user, &SecretString::from(password)),
            _ => false,
        }
    }
}

/// A PostgreSQL identifier, quoted.
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal.
pub fn pg_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A MariaDB string literal.
pub fn my_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A MariaDB account, any host.
pub fn my_account(user: &str) -> String {
    format!("{}@'%'", my_literal(user))
}

/// A text field of the value under `label`.
pub async fn field(store: &AwsStore, arn: &str, label: &str, name: &str) -> Option<String> {
    let value = value(store, arn, label).await?;
    let parsed: Value = serde_json::from_str(value.expose_secret()).ok()?;
    parsed[name].as_str().map(str::to_owned)
}

/// The `password` field of the value under `label`.
pub async fn password(store: &AwsStore, arn: &str, label: &str) -> SecretString {
    SecretString::from(
        field(store, arn, label, "password")
            .await
            .expect("password"),
    )
}
