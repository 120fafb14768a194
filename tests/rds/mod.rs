//! The real `rds-rotation` binary, over the Lambda Runtime API, against moto and
//! throwaway PostgreSQL and MariaDB servers with password authentication and
//! TLS required. After each rotation an independent client (psql, mariadb)
//! proves which credentials log in.
//!
//! One file a part of the function: [`single`] user and [`alternating`]
//! users; [`master`], which master secret a secret may use and how it logs
//! in; [`tls`], how connections are made and how they fail; [`rds_api`],
//! masters that RDS keeps and reader hosts, through moto's RDS API.

mod alternating;
mod master;
mod rds_api;
mod single;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, RotationRun, rotate};
use rotor_core::admin::ADMIN_VAR;
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, SecretString, Step};
use rotor_tests::target_db::Db;
use rotor_tests::{start_function, unique};
use serde_json::json;

/// rds-rotation trusting `db`'s test CA, with `strategy` as the default and
/// `extra` environment.
async fn function(db: &Db, strategy: &str, extra: &[(&str, &str)]) -> LocalFunction {
    let ca = db.ca_path();
    let mut env = vec![
        ("SSL_CERT_FILE", ca.as_str()),
        ("ROTATION_STRATEGY", strategy),
    ];
    env.extend_from_slice(extra);
    start_function("rds-rotation", &env).await
}

/// [`function`] whose deployer names `master` as every secret's master
/// secret (`MASTER_SECRET_ARN`).
async fn function_with_master(db: &Db, strategy: &str, master: &str) -> LocalFunction {
    function(db, strategy, &[(ADMIN_VAR, master)]).await
}

/// A master secret holding `db`'s admin login, tagged `tags` (a
/// `rotor:serves` tag lets a masterarn name it).
async fn master_secret(db: &Db, store: &AwsStore, tags: &[(&str, &str)]) -> String {
    let login = db.secret(&db.admin_user(), &db.admin_password(), json!({}));
    store
        .create_secret(&unique("master"), &SecretString::from(login), tags)
        .await
        .expect("the master secret")
}

/// Plays a RotateSecret request for `arn` with `function`, to the version
/// `token` (a new one when None), as `rotor rotate` does.
async fn rotate_to(
    store: &AwsStore,
    function: &LocalFunction,
    arn: &str,
    token: Option<&str>,
) -> RotationRun {
    let options = RotateOptions {
        secret_id: arn.into(),
        token: token.map(str::to_owned),
        test_only: false,
        step_timeout: Duration::from_secs(60),
    };
    rotate(store, function, &options)
        .await
        .expect("the rotation runs")
}

/// A rotation of `arn` to a new version that must succeed; a failure names
/// `what`, each step's result and the function's output.
async fn rotate_ok(store: &AwsStore, function: &LocalFunction, arn: &str, what: &str) {
    let run = rotate_to(store, function, arn, None).await;
    let results: Vec<_> = run.steps.iter().map(|s| &s.result).collect();
    assert!(
        run.succeeded(),
        "{what}: {results:?}\n{}",
        function.output()
    );
}

/// The step a rotation stopped at, with its error type and message.
fn refusal(run: &RotationRun) -> (Step, String, String) {
    let last = run.steps.last().expect("a step ran");
    let (kind, message) = last.result.clone().expect_err("a step failed");
    (last.step, kind, message)
}

/// A TCP relay to `upstream` that keeps every byte the client sent.
pub(crate) async fn recording_relay(upstream: std::net::SocketAddr) -> (u16, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (port, seen)
}

/// Two `#[tokio::test]`s, `$postgres` and `$mariadb`, that run the async
/// function `$test` against a server of each engine (its argument names it).
macro_rules! on_both_engines {
    ($test:ident, $postgres:ident, $mariadb:ident) => {
        #[tokio::test]
        async fn $postgres() {
            $test("postgres").await;
        }

        #[tokio::test]
        async fn $mariadb() {
            $test("mariadb").await;
        }
    };
}
pub(crate) use on_both_engines;
