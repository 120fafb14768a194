//! Dependency faults: the database, the authorization server or Secrets
//! Manager slows down, hangs, drops the connection, goes down or throttles in
//! the middle of a rotation. A [`FaultProxy`] between the function and each
//! dependency plays the fault. In every case the step either completes or
//! fails with an error that names the dependency, before the function's
//! deadline; nothing stored is lost; and once the fault clears, the same
//! rotation completes.

use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::runtime_api::Outcome;
use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString};
use rotor_testbed::db::{TlsMode, random_password};
use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, Mode, When};
use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
use rotor_tests::target_db::Db;
use rotor_tests::{
    assert_no_stored_secret_in, moto, moto_store, rfc7592_secret, staged_secret, start_function,
    start_function_at, step_within, steps, token, unique, value,
};
use serde_json::{Value, json};

/// A database reached through one proxy, Secrets Manager through another.
struct Bed {
    db: Db,
    db_proxy: FaultProxy,
    sm_proxy: FaultProxy,
    store: AwsStore,
}

impl Bed {
    async fn start(engine: &str) -> Bed {
        let db = Db::start(engine, TlsMode::Required);
        let db_proxy = FaultProxy::start(engine, ([127, 0, 0, 1], db.port()).into())
            .await
            .unwrap();
        Bed {
            db,
            db_proxy,
            sm_proxy: moto_proxy().await,
            store: moto_store(),
        }
    }

    async fn function(&self) -> LocalFunction {
        let ca = self.db.ca_path();
        start_function_at(
            "rds-rotation",
            &self.sm_proxy.http_endpoint(),
            &[("SSL_CERT_FILE", &ca), ("ROTATION_STRATEGY", "single")],
        )
        .await
    }

    /// A user and a secret for it that reaches the database at `host` through
    /// `proxy`, staged for rotation to `token`.
    async fn secret(&self, host: &str, proxy: &FaultProxy, token: &str) -> String {
        let user = format!("fault_{}", &token[..8]);
        let password = random_password();
        self.db.create_user(&user, &password);
        let value = self
            .db
            .secret_at(host, proxy.port(), &user, &password, json!({}));
        staged_secret(&self.store, &value, &[], token).await
    }

    async fn works(&self, arn: &str, label: &str) -> bool {
        match value(&self.store, arn, label).await {
            Some(stored) => self.db.value_logs_in(&stored),
            None => false,
        }
    }

    /// AWSCURRENT or AWSPENDING logs in: nothing is lost.
    async fn a_stored_credential_works(&self, arn: &str) -> bool {
        self.works(arn, AWSCURRENT).await || self.works(arn, AWSPENDING).await
    }
}

async fn moto_proxy() -> FaultProxy {
    let moto_address = moto()
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    FaultProxy::start("secretsmanager", moto_address)
        .await
        .unwrap()
}

/// Runs the rotation's steps from `from` on; each must succeed.
async fn finish_rotation(function: &LocalFunction, arn: &str, token: &str, from: Step) {
    for &step in steps::from(from) {
        let result = steps::run(function, arn, token, step).await;
        assert!(result.is_ok(), "{step}: {result:?}\n{}", function.output());
    }
}

async fn black_holed_database(engine: &str) {
    let bed = Bed::start(engine).await;
    let function = bed.function().await;
    let t = token();
    let arn = bed.secret("127.0.0.1", &bed.db_proxy, &t).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();

    bed.db_proxy.set_mode(Mode::BlackHole);
    let deadline = Duration::from_secs(4);
    let (kind, message) = step_within(
        &function,
        &steps::event(&arn, &t, Step::SetSecret),
        deadline,
    )
    .await
    .unwrap_err();
    assert_eq!(kind, "Retryable.DeadlineReached", "{message}");
    let address = format!("127.0.0.1:{}", bed.db_proxy.port());
    for expected in [
        "setSecret",
        address.as_str(),
        "logging in as user",
        "before the function's timeout",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    assert!(
        bed.works(&arn, AWSCURRENT).await,
        "the current password changed"
    );

    bed.db_proxy.set_mode(Mode::Pass);
    finish_rotation(&function, &arn, &t, Step::SetSecret).await;
    assert!(bed.works(&arn, AWSCURRENT).await);
    assert_no_stored_secret_in(&bed.store, &arn, &format!("{message}{}", function.output())).await;
}

#[tokio::test]
async fn a_black_holed_postgres_fails_the_step_before_the_deadline() {
    black_holed_database("postgres").await;
}

#[tokio::test]
async fn a_black_holed_mariadb_fails_the_step_before_the_deadline() {
    black_holed_database("mariadb").await;
}

#[tokio::test]
async fn a_black_holed_secrets_manager_fails_the_step_before_the_deadline() {
    let bed = Bed::start("postgres").await;
    let function = bed.function().await;
    let t = token();
    let arn = bed.secret("127.0.0.1", &bed.db_proxy, &t).await;
    bed.sm_proxy.set_mode(Mode::BlackHole);
    let (kind, message) = step_within(
        &function,
        &steps::event(&arn, &t, Step::CreateSecret),
        Duration::from_secs(4),
    )
    .await
    .unwrap_err();
    assert_eq!(kind, "Retryable.DeadlineReached", "{message}");
    assert!(
        message.contains("Secrets Manager (DescribeSecret on"),
        "{message}"
    );
    bed.sm_proxy.set_mode(Mode::Pass);
    finish_rotation(&function, &arn, &t, Step::CreateSecret).await;
    assert!(bed.works(&arn, AWSCURRENT).await);
}

/// The database goes down after setSecret changed the password, and comes
/// back: testSecret fails clearly while it is down, AWSPENDING (already the
/// database's password) logs in, and the rotation then completes.
#[tokio::test]
async fn a_database_that_goes_down_mid_rotation_loses_nothing() {
    let bed = Bed::start("postgres").await;
    let function = bed.function().await;
    let t = token();
    let arn = bed.secret("127.0.0.1", &bed.db_proxy, &t).await;
    finish_rotation_until(&function, &arn, &t, Step::TestSecret).await;

    bed.db_proxy.set_mode(Mode::Down);
    let (kind, message) = steps::run(&function, &arn, &t, Step::TestSecret)
        .await
        .unwrap_err();
    assert!(kind.starts_with("Retryable."), "{kind}: {message}");
    let address = format!("127.0.0.1:{}", bed.db_proxy.port());
    assert!(message.contains(&address), "{message}");
    assert!(bed.works(&arn, AWSPENDING).await);
    assert!(bed.a_stored_credential_works(&arn).await);

    bed.db_proxy.set_mode(Mode::Pass);
    finish_rotation(&function, &arn, &t, Step::TestSecret).await;
    assert!(bed.works(&arn, AWSCURRENT).await);
    assert_no_stored_secret_in(&bed.store, &arn, &format!("{message}{}", function.output())).await;
}

/// Runs the rotation's steps before `until`; each must succeed.
async fn finish_rotation_until(function: &LocalFunction, arn: &str, token: &str, until: Step) {
    for step in Step::ALL.into_iter().take_while(|s| *s != until) {
        let result = steps::run(function, arn, token, step).await;
        assert!(result.is_ok(), "{step}: {result:?}\n{}", function.output());
    }
}

/// The link breaks after 1, 2, ... chunks of setSecret's conversation with the
/// database (the TLS handshake, the login, the password change): each break
/// fails the step with an error naming the database, or comes after its work
/// was done; a stored credential always logs in; the retry completes.
#[tokio::test]
async fn a_connection_cut_at_every_point_of_set_secret_loses_nothing() {
    let bed = Bed::start("postgres").await;
    let function = bed.function().await;
    let address = format!("127.0.0.1:{}", bed.db_proxy.port());
    let mut failures = 0;
    let mut cut_at = 1;
    loop {
        let t = token();
        let arn = bed.secret("127.0.0.1", &bed.db_proxy, &t).await;
        finish_rotation_until(&function, &arn, &t, Step::SetSecret).await;
        let before = bed.db_proxy.chunks();
        bed.db_proxy.cut_after(cut_at);
        let result = steps::run(&function, &arn, &t, Step::SetSecret).await;
        let cut = bed.db_proxy.chunks() - before >= cut_at;
        bed.db_proxy.cancel_cut();
        if let Err((kind, message)) = &result {
            failures += 1;
            assert!(cut, "setSecret failed without a cut: {kind}: {message}");
            assert!(
                kind.starts_with("Retryable."),
                "cut after {cut_at}: a broken link is worth a retry: {kind}: {message}"
            );
            assert!(
                message.contains(&address) && message.contains("setSecret"),
                "cut after {cut_at}: {kind}: {message}"
            );
        }
        assert!(
            bed.a_stored_credential_works(&arn).await,
            "cut after {cut_at}: no stored credential logs in"
        );
        finish_rotation(&function, &arn, &t, Step::SetSecret).await;
        assert!(bed.works(&arn, AWSCURRENT).await);
        assert_no_stored_secret_in(
            &bed.store,
            &arn,
            &format!("{result:?}{}", function.output()),
        )
        .await;
        if !cut {
            break;
        }
        cut_at += 1;
    }
    eprintln!(
        "setSecret cut at each of {} points: {failures} failed clearly, then completed",
        cut_at - 1
    );
    assert!(failures > 0);
}

#[tokio::test]
async fn a_slow_link_everywhere_still_rotates() {
    let bed = Bed::start("mariadb").await;
    let function = bed.function().await;
    let t = token();
    let arn = bed.secret("127.0.0.1", &bed.db_proxy, &t).await;
    bed.db_proxy
        .set_mode(Mode::Delay(Duration::from_millis(40)));
    bed.sm_proxy
        .set_mode(Mode::Delay(Duration::from_millis(40)));
    finish_rotation(&function, &arn, &t, Step::CreateSecret).await;
    assert!(bed.works(&arn, AWSCURRENT).await);
    assert!(bed.db_proxy.chunks() > 10 && bed.sm_proxy.chunks() > 5);
}

fn aws_error(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: \
        {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Throttling and server errors from Secrets Manager are retried by the SDK
/// (three attempts, with backoff); one that persists fails the step as
/// retryable, naming the call, after exactly three attempts.
#[tokio::test]
async fn secrets_manager_throttling_and_5xx_are_retried_within_bounds() {
    let bed = Bed::start("postgres").await;
    let function = bed.function().await;
    let throttled = aws_error(
        "400 Bad Request",
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    );
    let internal = aws_error(
        "500 Internal Server Error",
        r#"{"__type":"InternalServiceError","message":"An error occurred on the server side."}"#,
    );
    let unavailable = aws_error("503 Service Unavailable", "");
    let t = token();
    let arn = bed.secret("127.0.0.1", &bed.db_proxy, &t).await;

    for (step, fault) in [
        (Step::CreateSecret, &throttled),
        (Step::SetSecret, &internal),
        (Step::TestSecret, &unavailable),
    ] {
        bed.sm_proxy.answer_next(2, fault);
        let result = steps::run(&function, &arn, &t, step).await;
        assert!(result.is_ok(), "{step}: {result:?}\n{}", function.output());
    }

    bed.sm_proxy.answer_next(1000, &throttled);
    let before = bed.sm_proxy.chunks();
    let (kind, message) = steps::run(&function, &arn, &t, Step::FinishSecret)
        .await
        .unwrap_err();
    let attempts = bed.sm_proxy.chunks() - before;
    bed.sm_proxy.answer_next(0, b"");
    assert_eq!(kind, "Retryable.SecretsManager", "{message}");
    assert!(
        message.contains("DescribeSecret") && message.contains("ThrottlingException"),
        "{message}"
    );
    assert_eq!(
        attempts, 3,
        "the SDK's standard retry mode makes 3 attempts"
    );
    finish_rotation(&function, &arn, &t, Step::FinishSecret).await;
    assert!(bed.works(&arn, AWSCURRENT).await);
}

/// Certificates are checked against the name the secret gives: the same
/// server reached as 127.0.0.2 (a name its certificate does not carry) is
/// refused, and nothing changes.
#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    for engine in ["postgres", "mariadb"] {
        let bed = Bed::start(engine).await;
        let other_name = FaultProxy::start_on(
            [127, 0, 0, 2].into(),
            engine,
            ([127, 0, 0, 1], bed.db.port()).into(),
        )
        .await
        .unwrap();
        let function = bed.function().await;
        let t = token();
        let arn = bed.secret("127.0.0.2", &other_name, &t).await;
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap();
        let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert!(
            kind.starts_with("NotRetryable."),
            "{engine}: {kind}: {message}"
        );
        assert!(
            message.to_lowercase().contains("certificate") && message.contains("127.0.0.2"),
            "{engine}: {message}"
        );
        assert!(
            bed.works(&arn, AWSCURRENT).await,
            "{engine}: the password changed"
        );
        assert!(
            other_name.connections() > 0,
            "{engine}: never reached the server"
        );
    }
}

/// The authorization server hangs, then goes down, during testSecret; the
/// secret's own token endpoint is also reached under a name its certificate
/// does not carry. Each fails clearly, and the rotation completes once the
/// server is back.
#[tokio::test]
async fn an_authorization_server_that_hangs_or_goes_down() {
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let upstream = ([127, 0, 0, 1], server.port()).into();
    let proxy = FaultProxy::start("glewlwyd", upstream).await.unwrap();
    let other_name = FaultProxy::start_on([127, 0, 0, 2].into(), "glewlwyd", upstream)
        .await
        .unwrap();
    let sm_proxy = moto_proxy().await;
    let store = moto_store();
    let ca = server.ca_path().display().to_string();
    let function = start_function_at(
        "oauth-rotation",
        &sm_proxy.http_endpoint(),
        &[("SSL_CERT_FILE", &ca)],
    )
    .await;
    let secret_via = |proxy: &FaultProxy, host: &str, client| {
        rfc7592_secret(
            &server,
            client,
            AuthMethod::ClientSecretBasic,
            Some((host, proxy.port())),
        )
    };

    // Another name: refused before anything changes at the server.
    let client = server
        .register_client(AuthMethod::ClientSecretBasic)
        .await
        .unwrap();
    let t = token();
    let arn = staged_secret(
        &store,
        &secret_via(&other_name, "127.0.0.2", &client),
        &[],
        &t,
    )
    .await;
    let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert!(
        message.to_lowercase().contains("certificate") || message.contains("could not be reached"),
        "{kind}: {message}"
    );
    assert!(
        gets_token(&server, &store, &arn, AWSCURRENT).await,
        "the client's secret changed"
    );

    let client = server
        .register_client(AuthMethod::ClientSecretBasic)
        .await
        .unwrap();
    let t = token();
    let arn = staged_secret(&store, &secret_via(&proxy, "127.0.0.1", &client), &[], &t).await;
    for step in [Step::CreateSecret, Step::SetSecret] {
        steps::run(&function, &arn, &t, step).await.unwrap();
    }
    proxy.set_mode(Mode::BlackHole);
    let (kind, message) = step_within(
        &function,
        &steps::event(&arn, &t, Step::TestSecret),
        Duration::from_secs(4),
    )
    .await
    .unwrap_err();
    assert_eq!(kind, "Retryable.DeadlineReached", "{message}");
    assert!(message.contains("token endpoint"), "{message}");
    proxy.set_mode(Mode::Down);
    let (kind, message) = steps::run(&function, &arn, &t, Step::TestSecret)
        .await
        .unwrap_err();
    assert!(kind.starts_with("Retryable."), "{kind}: {message}");
    assert!(message.contains("token endpoint"), "{message}");
    // The server issued the new secret at createSecret, and it is stored.
    assert!(gets_token(&server, &store, &arn, AWSPENDING).await);
    proxy.set_mode(Mode::Pass);
    finish_rotation(&function, &arn, &t, Step::TestSecret).await;
    assert!(gets_token(&server, &store, &arn, AWSCURRENT).await);
}

async fn gets_token(server: &OAuthServer, store: &AwsStore, arn: &str, label: &str) -> bool {
    let Some(stored) = value(store, arn, label).await else {
        return false;
    };
    let client: Value = serde_json::from_str(stored.expose_secret()).unwrap();
    server
        .client_credentials(
            client["client_id"].as_str().unwrap(),
            &SecretString::from(client["client_secret"].as_str().unwrap()),
            AuthMethod::ClientSecretBasic,
            None,
        )
        .await
        .is_ok()
}

/// How setSecret is made to fail at one point of its conversation with the
/// database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetFault {
    /// The link breaks as the function sends its n-th chunk, which never
    /// arrives: the statement fails with a connection error.
    Cut,
    /// The n-th chunk reaches the server and is acted on; the process is
    /// killed (SIGKILL) before it reads the answer.
    Kill,
}

/// Fault points and what came of them, for one engine and strategy.
#[derive(Default, Debug)]
struct TargetMatrix {
    /// Chunks the function sent the database in one setSecret without a fault.
    round_trips: u64,
    /// Faults injected, by kind.
    cut: u32,
    killed: u32,
    /// Kill points where no answer came to kill after.
    kill_not_fired: u32,
    /// setSecret failed with an error naming the database.
    failed_clearly: u32,
    /// The fault fell after setSecret's work was done: it succeeded.
    completed_anyway: u32,
}

/// Fails setSecret after each of its round trips with the database (link cut,
/// process killed), then retries the rotation with the same token, as Secrets
/// Manager does. Every database call, the master's included, goes through the
/// proxy. After each fault a stored credential logs in; after the retry an
/// independent client (psql, mariadb) proves that AWSCURRENT logs in and has
/// exactly the original user's access: it reads a table the original reads
/// and cannot read one the original cannot.
async fn target_fault_matrix(engine: &str, strategy: &str) -> TargetMatrix {
    let db = Db::start(engine, TlsMode::Required);
    let proxy = FaultProxy::start(engine, ([127, 0, 0, 1], db.port()).into())
        .await
        .unwrap();
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("fault-master"),
            &SecretString::from(db.secret_at(
                "127.0.0.1",
                proxy.port(),
                &db.admin_user(),
                &db.admin_password(),
                json!({}),
            )),
            &[],
        )
        .await
        .unwrap();
    let ca = db.ca_path();
    let env = [
        ("SSL_CERT_FILE", ca.as_str()),
        ("ROTATION_STRATEGY", strategy),
        ("MASTER_SECRET_ARN", master.as_str()),
    ];
    let name = format!("{engine} {strategy}");
    let started = std::time::Instant::now();
    let mut matrix = TargetMatrix::default();
    let mut output = String::new();
    // The cuts run until one comes after setSecret's last chunk, which
    // measures the round trips; the kills then cover each of them (and two
    // more: TLS may split a flight differently from one run to the next).
    // A kill armed on a chunk that gets no answer (a COM_QUIT, a Terminate)
    // does not fire: nothing was left to do after it.
    for fault in [TargetFault::Cut, TargetFault::Kill] {
        let mut at = 1;
        loop {
            if fault == TargetFault::Kill && at > matrix.round_trips + 2 {
                break;
            }
            let user = format!("tf_{}", &token()[..8]);
            let old = random_password();
            db.create_user(&user, &old);
            db.grant_items_not_vault(&user);
            let t = token();
            let arn = staged_secret(
                &store,
                &db.secret_at("127.0.0.1", proxy.port(), &user, &old, json!({})),
                &[],
                &t,
            )
            .await;
            let function = start_function("rds-rotation", &env).await;
            steps::run(&function, &arn, &t, Step::CreateSecret)
                .await
                .unwrap();
            let before = proxy.chunks();
            let plan = CrashPlan::new(at, When::After);
            match fault {
                TargetFault::Cut => proxy.cut_after(at),
                TargetFault::Kill => {
                    plan.set_victim(function.pid().expect("pid"));
                    proxy.set_plan(Some(plan.clone()));
                }
            }
            let payload = bytes::Bytes::from(steps::event(&arn, &t, Step::SetSecret).to_string());
            let result = function.invoke_raw(payload, Duration::from_secs(30)).await;
            let sent = proxy.chunks() - before;
            proxy.cancel_cut();
            proxy.set_plan(None);
            let fired = match fault {
                TargetFault::Cut => sent >= at,
                TargetFault::Kill => plan.fired().is_some(),
            };
            let point = format!("{name}, {fault:?} at round trip {at}");
            output.push_str(&function.output());
            match result {
                Ok(invocation) => match invocation.outcome {
                    Outcome::Response(_) => {
                        matrix.completed_anyway += u32::from(fired);
                    }
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => {
                        assert!(
                            fired,
                            "{point}: setSecret failed without a fault: {error_message}"
                        );
                        assert!(
                            error_type.starts_with("Retryable.")
                                && error_message.contains(&format!("127.0.0.1:{}", proxy.port())),
                            "{point}: {error_type}: {error_message}"
                        );
                        output.push_str(&error_message);
                        matrix.failed_clearly += 1;
                    }
                },
                Err(_) => assert!(
                    fault == TargetFault::Kill && fired,
                    "{point}: the function died without being killed\n{}",
                    function.output()
                ),
            }
            match (fired, fault) {
                (true, TargetFault::Cut) => matrix.cut += 1,
                (true, TargetFault::Kill) => matrix.killed += 1,
                (false, TargetFault::Cut) => matrix.round_trips = sent,
                (false, TargetFault::Kill) => matrix.kill_not_fired += 1,
            }
            // A stored credential works at this instant.
            let mut working = false;
            for label in [AWSCURRENT, AWSPENDING] {
                if let Some(stored) = value(&store, &arn, label).await {
                    working = working || db.value_logs_in(&stored);
                }
            }
            assert!(
                working,
                "{point}: neither AWSCURRENT nor AWSPENDING logs in"
            );

            // The retry, by a fresh process, completes the rotation.
            let retry = start_function("rds-rotation", &env).await;
            for &step in steps::from(Step::SetSecret) {
                let result = steps::run(&retry, &arn, &t, step).await;
                assert!(
                    result.is_ok(),
                    "{point}: the retried {step} failed: {result:?}\n{}",
                    retry.output()
                );
            }
            output.push_str(&retry.output());
            let current = value(&store, &arn, AWSCURRENT).await.unwrap();
            let parsed: Value = serde_json::from_str(current.expose_secret()).unwrap();
            let current_user = parsed["username"].as_str().unwrap().to_owned();
            let current_password = SecretString::from(parsed["password"].as_str().unwrap());
            if let Err(problem) = db.has_access_of_original(&current_user, &current_password) {
                panic!("{point}: after the retry, {problem}");
            }
            assert_no_stored_secret_in(&store, &arn, &output).await;
            if !fired && fault == TargetFault::Cut {
                break;
            }
            at += 1;
        }
    }
    eprintln!(
        "target fault matrix {name}: {} chunks to the database in setSecret; {} faults ({} \
        cuts, {} kills, {} kill points without an answer to kill after): {} failed \
        clearly, {} came after the work was done, {} killed; every retry completed with \
        the original's access; {:.1?}",
        matrix.round_trips,
        matrix.cut + matrix.killed,
        matrix.cut,
        matrix.killed,
        matrix.kill_not_fired,
        matrix.failed_clearly,
        matrix.completed_anyway,
        matrix.killed,
        started.elapsed(),
    );
    assert!(
        matrix.cut > 0 && matrix.killed > 0,
        "{name}: no fault happened"
    );
    matrix
}

#[tokio::test]
async fn target_faults_postgres_single_user() {
    target_fault_matrix("postgres", "single").await;
}

#[tokio::test]
async fn target_faults_postgres_alternating_users() {
    target_fault_matrix("postgres", "alternating").await;
}

#[tokio::test]
async fn target_faults_mariadb_single_user() {
    target_fault_matrix("mariadb", "single").await;
}

#[tokio::test]
async fn target_faults_mariadb_alternating_users() {
    target_fault_matrix("mariadb", "alternating").await;
}
