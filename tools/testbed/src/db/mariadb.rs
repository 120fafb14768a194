//! A throwaway MariaDB 10.11 server ([`MariaDb`]) and its `mariadb` client.

use super::*;

/// A throwaway MariaDB 10.11 server. Its only accounts are `rotor_admin'@'%'`
/// (random password, mysql_native_password, ALL PRIVILEGES WITH GRANT OPTION) and
/// the locked `mariadb.sys`; no root, no anonymous users, no test database.
/// Dropping it stops the server and removes its temp dir.
pub struct MariaDb {
    db: DbServer,
}

impl MariaDb {
    fn try_start(tls: TlsMode, cert: ServerCert) -> anyhow::Result<MariaDb> {
        let user = os_user("mysql")?;
        for tool in [MARIADBD, MARIADB_CLIENT] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: install mariadb-server and mariadb-client (scripts/setup.sh does)"
                );
            }
        }
        let template = mariadb_template(user.as_ref())?;
        let port = free_port()?;
        let dir = make_dir("mariadb", user.as_ref())?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        let init = dir.join("init.sql");
        let tls_files = TlsFiles::in_dir(&dir);
        let mut args: Vec<OsString> = vec!["--no-defaults".into()];
        args.extend(
            [
                format!("--datadir={}", path_str(&data)?),
                format!("--socket={}", path_str(&dir.join("mysqld.sock"))?),
                format!("--pid-file={}", path_str(&dir.join("mysqld.pid"))?),
                format!("--log-error={}", path_str(&log)?),
                format!("--init-file={}", path_str(&init)?),
                format!("--port={port}"),
                format!("--bind-address={HOST}"),
                "--skip-name-resolve".to_owned(),
                "--character-set-server=utf8mb4".to_owned(),
                "--collation-server=utf8mb4_general_ci".to_owned(),
                "--max-connections=50".to_owned(),
            ]
            .into_iter()
            .chain(mariadb_fast_flags())
            .map(OsString::from),
        );
        if tls != TlsMode::Off {
            args.push(format!("--ssl-ca={}", path_str(&tls_files.ca_path)?).into());
            args.push(format!("--ssl-cert={}", path_str(&tls_files.cert_path)?).into());
            args.push(format!("--ssl-key={}", path_str(&tls_files.key_path)?).into());
        }
        if tls == TlsMode::Required {
            args.push("--require-secure-transport=ON".into());
        }
        let server = prepare_server(
            dir.clone(),
            log,
            user.as_ref(),
            "KILL",
            Path::new(MARIADBD),
            &args,
        )?;

        copy_dir(&template, &data)?;

        // The admin account, made by the server itself before it accepts any
        // connection (--init-file runs before the listener's first accept).
        let password = random_password();
        write_private(
            &init,
            format!(
                "CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n",
                password.expose_secret()
            ),
            user.as_ref(),
        )?;
        let log = server.log.clone();
        let db = DbServer::launch(server, port, tls, password, cert, user.as_ref(), || {
            fs::read_to_string(&log)
                .map(|text| text.contains("ready for connections"))
                .unwrap_or(false)
        })?;
        // The password was only needed at start-up.
        let _ = fs::remove_file(&init);
        Ok(MariaDb { db })
    }

    db_server_api! {
        engine: "MariaDB",
        start: "Starts a server with a valid certificate. The first start in a test \
                process also bootstraps the system tables into a template datadir \
                (under a second); every server then starts from a copy of it.",
        ca_path: "The CA certificate's file, for `--ssl-ca`.",
        pid: "mariadbd's process id.",
        log_tail: "The last lines of the server's error log.",
    }

    /// Runs SQL as the admin with the `mariadb` client over TCP (verified TLS
    /// unless TLS is off); returns its batch output (tab-separated, no column
    /// names), without the final newline.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        self.sql_with(&self.admin_login(), sql)
    }

    /// Runs SQL with the `mariadb` client as `login`. A refused login is an error
    /// carrying the client's message (which never contains the password).
    pub fn sql_with(&self, login: &ClientLogin, sql: &str) -> anyhow::Result<String> {
        let mut command = Command::new(MARIADB_CLIENT);
        scrub_env(&mut command, &["MYSQL", "MARIADB"]);
        command
            .env("MYSQL_PWD", login.password.expose_secret())
            .args([
                "--no-defaults",
                "--protocol=TCP",
                "--batch",
                "--skip-column-names",
            ])
            .arg(format!("--host={HOST}"))
            .arg(format!("--port={}", self.db.port))
            .arg(format!("--user={}", login.user))
            .arg("--connect-timeout=10");
        match &login.tls {
            ClientTls::Verify(ca) => {
                command
                    .arg("--ssl")
                    .arg(format!("--ssl-ca={}", path_str(ca)?))
                    .arg("--ssl-verify-server-cert");
            }
            ClientTls::Unverified => {
                command.arg("--ssl");
            }
            ClientTls::Plaintext => {
                command.arg("--skip-ssl");
            }
        }
        run_client("mariadb", command, sql)
    }
}

/// Settings that make a throwaway InnoDB quick to create and start: small files,
/// no durability, no background I/O it does not need.
fn mariadb_fast_flags() -> impl Iterator<Item = String> {
    [
        "--skip-log-bin",
        "--innodb-buffer-pool-size=16M",
        "--innodb-log-file-size=4M",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-flush-method=nosync",
        "--innodb-doublewrite=0",
        "--innodb-use-native-aio=0",
        "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
        "--innodb-buffer-pool-load-at-startup=0",
        "--innodb-buffer-pool-dump-at-shutdown=0",
    ]
    .into_iter()
    .map(str::to_owned)
}

/// The datadir every MariaDB server of this process starts from a copy of: the
/// system tables as `mariadb-install-db --skip-test-db` makes them, without the
/// help tables and the sys schema (slow to load, unused), and without any account
/// but `mariadb.sys` (mariadb-install-db's root accounts have no password over
/// TCP). Made once, on first use; removed when this process exits.
fn mariadb_template(user: Option<&OsUser>) -> anyhow::Result<PathBuf> {
    static TEMPLATE: Mutex<Option<(PathBuf, Child)>> = Mutex::new(None);
    let mut template = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((dir, _)) = template.as_ref() {
        return Ok(dir.join("data"));
    }
    let (dir, janitor) = template_dir("mariadb-template", user)?;
    let data = dir.join("data");
    fs::create_dir(&data).with_context(|| format!("creating {}", data.display()))?;
    chown(&data, user)?;

    let mut sql = String::from(
        "CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\nSET @auth_root_socket=NULL;\n",
    );
    for file in [
        "mysql_system_tables.sql",
        "mysql_performance_tables.sql",
        "mysql_system_tables_data.sql",
    ] {
        let path = Path::new(MARIADB_SQL_DIR).join(file);
        sql.push_str(&fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: install mariadb-server (scripts/setup.sh does)",
                path.display()
            )
        })?);
        sql.push('\n');
    }
    sql.push_str(
        "DELETE FROM mysql.global_priv WHERE User <> 'mariadb.sys';\n\
         DELETE FROM mysql.proxies_priv;\n",
    );

    let log = dir.join("bootstrap.log");
    let log_file = fs::File::create(&log).context("creating the bootstrap log")?;
    let mut command = Command::new(MARIADBD);
    command
        .arg("--no-defaults")
        .arg("--bootstrap")
        .arg(format!("--datadir={}", path_str(&data)?))
        .args([
            "--log-warnings=0",
            "--enforce-storage-engine=",
            "--max-allowed-packet=8M",
            "--net-buffer-length=16K",
        ])
        .args(mariadb_fast_flags())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    run_as(&mut command, user, &dir, CLIENT_ENV);
    let (mut child, writer) = spawn_with_input(&mut command, "mariadbd --bootstrap", sql)?;
    let status = wait_timeout(&mut child, Duration::from_secs(60))?;
    let _ = writer.join();
    match status {
        Some(status) if status.success() => {}
        status => {
            let tail = tail_lines(&log, 30, &[]);
            bail!(
                "bootstrapping MariaDB's system tables failed ({}); its log ends:\n{tail}",
                status.map_or("timed out after 60 s".to_owned(), |s| s.to_string())
            );
        }
    }
    *template = Some((dir, janitor));
    Ok(data)
}
