//! A throwaway PostgreSQL 15 server ([`Postgres`]) and its `psql` client.

use super::*;

/// A throwaway PostgreSQL 15 server. Host connections need the password
/// (scram-sha-256); the superuser is `rotor_admin` with a random password; fsync
/// is off. Dropping it stops the server and removes its temp dir.
pub struct Postgres {
    db: DbServer,
}

impl Postgres {
    fn try_start(tls: TlsMode, cert: ServerCert) -> anyhow::Result<Postgres> {
        let user = os_user("postgres")?;
        let postgres = Path::new(PG_BIN).join("postgres");
        for tool in [&postgres, &Path::new(PG_BIN).join("psql")] {
            if !tool.exists() {
                bail!(
                    "{} is missing: install postgresql-15 and postgresql-client-15 (scripts/setup.sh does)",
                    tool.display()
                );
            }
        }
        let (template, template_password) = postgres_template(user.as_ref())?;
        let port = free_port()?;
        let dir = make_dir("pg", user.as_ref())?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        let tls_files = TlsFiles::in_dir(&dir);
        let mut args: Vec<OsString> = vec!["-D".into(), data.clone().into()];
        let settings = [
            ("port", port.to_string()),
            ("listen_addresses", HOST.to_owned()),
            ("unix_socket_directories", path_str(&dir)?.to_owned()),
            ("password_encryption", "scram-sha-256".to_owned()),
            ("fsync", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("shared_buffers", "16MB".to_owned()),
            ("max_connections", "40".to_owned()),
            ("logging_collector", "off".to_owned()),
            ("log_connections", "on".to_owned()),
            (
                "ssl",
                if tls == TlsMode::Off { "off" } else { "on" }.to_owned(),
            ),
            ("ssl_cert_file", path_str(&tls_files.cert_path)?.to_owned()),
            ("ssl_key_file", path_str(&tls_files.key_path)?.to_owned()),
        ];
        for (name, value) in settings {
            args.push("-c".into());
            args.push(format!("{name}={value}").into());
        }
        let server = prepare_server(dir.clone(), log, user.as_ref(), "QUIT", &postgres, &args)?;
        copy_dir(&template, &data)?;

        // Who may connect, and how: only from 127.0.0.1 (and the socket), always
        // with the password.
        let hba = match tls {
            TlsMode::Required => {
                "hostssl   all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 127.0.0.1/32 reject\n"
            }
            TlsMode::Optional | TlsMode::Off => "host all all 127.0.0.1/32 scram-sha-256\n",
        };
        let hba = format!(
            "# written by rotor's test bed (tools/testbed/src/db/)\n\
             local all all scram-sha-256\n{hba}"
        );
        write_private(&data.join("pg_hba.conf"), &hba, user.as_ref())?;

        let pid_file = data.join("postmaster.pid");
        let db = DbServer::launch(
            server,
            port,
            tls,
            random_password(),
            cert,
            user.as_ref(),
            || {
                // The 8th line of postmaster.pid becomes "ready" once the server
                // accepts connections.
                fs::read_to_string(&pid_file)
                    .map(|text| text.lines().nth(7).map(str::trim) == Some("ready"))
                    .unwrap_or(false)
            },
        )?;

        // This server's own admin password (made above), set over the Unix socket
        // (in the 0700 temp dir) with the template's, before anyone else is told
        // the port.
        let socket = format!(
            "host={} port={port} user={ADMIN_USER} dbname=postgres",
            conninfo_quote(path_str(&dir)?)
        );
        run_psql(
            &socket,
            &template_password,
            &format!(
                "ALTER ROLE {ADMIN_USER} PASSWORD '{}'",
                db.password.expose_secret()
            ),
        )
        .with_context(|| {
            format!(
                "setting the admin password; the log ends:\n{}",
                db.server.log_tail()
            )
        })?;
        Ok(Postgres { db })
    }

    db_server_api! {
        engine: "PostgreSQL",
        start: "Starts a server with a valid certificate. The first start in a test \
                process also runs `initdb` into a template datadir (under a second); \
                every server then starts from a copy of it.",
        ca_path: "The CA certificate's file, for `sslrootcert`.",
        pid: "The postmaster's process id.",
        log_tail: "The last lines of the server's log.",
    }

    /// Runs SQL as the admin with psql over TCP (verified TLS unless TLS is off) in
    /// the `postgres` database; returns psql's unaligned, tuples-only output
    /// (columns separated by `|`), without the final newline.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.psql_with(&self.admin_login(), "postgres", sql)
    }

    /// Runs SQL with psql as `login` in `database`. A refused login is an error
    /// carrying psql's message (which never contains the password).
    pub fn psql_with(
        &self,
        login: &ClientLogin,
        database: &str,
        sql: &str,
    ) -> anyhow::Result<String> {
        let tls = match &login.tls {
            ClientTls::Verify(ca) => format!(
                "sslmode=verify-full sslrootcert={}",
                conninfo_quote(path_str(ca)?)
            ),
            ClientTls::Unverified => "sslmode=require".to_owned(),
            ClientTls::Plaintext => "sslmode=disable".to_owned(),
        };
        let conninfo = format!(
            "host={HOST} port={} user={} dbname={} {tls}",
            self.db.port,
            conninfo_quote(&login.user),
            conninfo_quote(database),
        );
        run_psql(&conninfo, &login.password, sql)
    }
}

/// Runs SQL with psql (no ~/.psqlrc, stop at the first error, unaligned
/// tuples-only output).
fn run_psql(conninfo: &str, password: &SecretString, sql: &str) -> anyhow::Result<String> {
    let mut command = Command::new(Path::new(PG_BIN).join("psql"));
    scrub_env(&mut command, &["PG"]);
    command
        .env("PGPASSWORD", password.expose_secret())
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
        ])
        .arg(conninfo);
    run_client("psql", command, sql)
}

/// Quotes a libpq conninfo value.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The datadir every PostgreSQL server of this process starts from a copy of,
/// and its admin password: `initdb --auth=scram-sha-256` with the superuser
/// `rotor_admin` and a random password from `--pwfile`. Made once, on first use
/// (about 0.7 s); removed when this process exits. Copying it takes about 0.1 s.
fn postgres_template(user: Option<&OsUser>) -> anyhow::Result<(PathBuf, SecretString)> {
    static TEMPLATE: Mutex<Option<(PathBuf, SecretString, Child)>> = Mutex::new(None);
    let mut template = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((dir, password, _)) = template.as_ref() {
        return Ok((dir.join("data"), password.clone()));
    }
    let initdb = Path::new(PG_BIN).join("initdb");
    if !initdb.exists() {
        bail!(
            "{} is missing: install postgresql-15 (scripts/setup.sh does)",
            initdb.display()
        );
    }
    let (dir, janitor) = template_dir("pg-template", user)?;
    let data = dir.join("data");
    // The password comes from a file, never the command line.
    let password = random_password();
    let pwfile = dir.join("pwfile");
    write_private(&pwfile, password.expose_secret(), user)?;
    let mut command = Command::new(&initdb);
    command
        .arg("-D")
        .arg(&data)
        .arg(format!("--username={ADMIN_USER}"))
        .arg(format!("--pwfile={}", path_str(&pwfile)?))
        .args([
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ])
        .stdin(Stdio::null());
    run_as(&mut command, user, &dir, CLIENT_ENV);
    let output = command
        .output()
        .with_context(|| format!("running {}", initdb.display()))?;
    let _ = fs::remove_file(&pwfile);
    if !output.status.success() {
        bail!(
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    *template = Some((dir, password.clone(), janitor));
    Ok((data, password))
}
