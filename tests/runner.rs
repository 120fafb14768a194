//! The local runner plays Secrets Manager's part by the service's rules.

use std::time::Duration;

use rotor_cli::function::function_binary;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::SecretStore as _;
use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString};
use rotor_tests::commands::{aws_cli_available, printed_commands, rotor_path, run_printed};
use rotor_tests::listener::{NotFoundServer, SilentListener};
use rotor_tests::{
    CargoLambda, labels, moto, moto_store, same, staged_secret, start_function, token, unique,
    value,
};

fn options(secret_id: &str, token: Option<String>) -> RotateOptions {
    RotateOptions {
        secret_id: secret_id.into(),
        token,
        test_only: false,
        step_timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn a_repeated_token_is_a_success_with_nothing_done() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let arn = store
        .create_secret(&unique("runner"), &SecretString::from("v1"), &[])
        .await
        .unwrap();
    let t = token();
    let first = rotate(&store, &function, &options(&arn, Some(t.clone())))
        .await
        .unwrap();
    assert!(first.succeeded() && first.steps.len() == 4);
    let current = value(&store, &arn, AWSCURRENT).await;
    let again = rotate(&store, &function, &options(&arn, Some(t.clone())))
        .await
        .unwrap();
    assert!(again.steps.is_empty());
    assert!(
        again
            .nothing_to_do
            .as_deref()
            .is_some_and(|r| r.contains(&t))
    );
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &current));
}

#[tokio::test]
async fn a_rotation_in_progress_elsewhere_is_not_stranded() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let first = token();
    let arn = staged_secret(&store, "v1", &[], &first).await;
    let error = rotate(&store, &function, &options(&arn, Some(token())))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("already in progress") && message.contains(&first),
        "{message}"
    );
    assert_eq!(store.describe_versions_pending(&arn).await, Some(first));
}

#[tokio::test]
async fn test_only_runs_test_secret_and_leaves_the_secret_as_it_was() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let arn = store
        .create_secret(
            &unique("runner"),
            &SecretString::from(r#"{"password":"p"}"#),
            &[],
        )
        .await
        .unwrap();
    let before = value(&store, &arn, AWSCURRENT).await;
    let mut opts = options(&arn, None);
    opts.test_only = true;
    let run = rotate(&store, &function, &opts).await.unwrap();
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.steps[0].step, Step::TestSecret);
    assert!(run.succeeded(), "{:?}", run.steps[0].result);
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &before));
    assert_eq!(store.describe_versions_pending(&arn).await, None);
}

#[tokio::test]
async fn the_rotor_command_rotates_and_prints_the_label_table() {
    let store = moto_store();
    let name = unique("cli");
    store
        .create_secret(&name, &SecretString::from("cli-initial"), &[])
        .await
        .unwrap();
    let output = tokio::process::Command::new(function_binary("rotor"))
        .args(["rotate", &name, "--endpoint", moto().endpoint()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in ["createSecret", "finishSecret", "AWSCURRENT", "AWSPREVIOUS"] {
        assert!(stdout.contains(expected), "{stdout}");
    }
    let current = value(&store, &name, AWSCURRENT).await.unwrap();
    assert!(current.expose_secret() != "cli-initial");
    assert!(!stdout.contains(current.expose_secret()) && !stdout.contains("cli-initial"));
}

trait PendingVersion {
    async fn describe_versions_pending(&self, arn: &str) -> Option<String>;
}

impl PendingVersion for rotor_core::AwsStore {
    async fn describe_versions_pending(&self, arn: &str) -> Option<String> {
        use rotor_core::SecretStore;
        let described = self.describe(arn).await.unwrap();
        described.versions.with_label(AWSPENDING).map(str::to_owned)
    }
}

#[tokio::test]
async fn steps_can_run_through_the_lambda_invoke_api() {
    let store = moto_store();
    let emulator = CargoLambda::start().await;
    let _function = emulator.run_function("generic-rotation");
    let remote =
        rotor_cli::rotate::LambdaFunction::local(&emulator.endpoint(), CargoLambda::FUNCTION);
    let arn = store
        .create_secret(&unique("invoke"), &SecretString::from("v1"), &[])
        .await
        .unwrap();
    let run = rotate(&store, &remote, &options(&arn, None)).await.unwrap();
    assert!(
        run.succeeded(),
        "{:?}",
        run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
    );
    assert_eq!(run.steps.len(), 4);
    assert_eq!(run.after.versions.current(), Some(run.token.as_str()));
    // A step's error comes back through the Invoke API with its type and message.
    let bad = store
        .create_secret(
            &unique("invoke"),
            &SecretString::from("plain"),
            &[("rotor:fields", "password")],
        )
        .await
        .unwrap();
    let failed = rotate(&store, &remote, &options(&bad, None)).await.unwrap();
    let (kind, message) = failed.steps[0].result.as_ref().unwrap_err();
    assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
    assert!(message.contains("not a JSON object"), "{message}");
}

/// Runs the `rotor` binary; its exit code, stdout and stderr.
async fn rotor_cli(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(rotor_path())
        .args(args)
        .env(rotor_core::settings::LOOPBACK_VAR, "true")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run rotor; build it first with cargo build --workspace --bins");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What an SDK error looks like when it is dumped rather than explained.
const SDK_DUMP: [&str; 5] = [
    "Request {",
    "SdkBody",
    "DispatchFailure",
    "Extensions",
    "Uri {",
];

/// An endpoint that accepts connections and never answers: rotate, status
/// and doctor each give up (connect, attempt and operation timeouts on every
/// client) and say which endpoint did not answer, rather than hang. The
/// outer bound only keeps a hang from stalling the suite; it is no assertion
/// about how long they take.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_endpoint_makes_every_command_give_up_with_a_clear_message() {
    let silent = SilentListener::start().await;
    let url = silent.http_url();
    let commands = [
        vec!["rotate", "my-secret", "--endpoint", &url],
        vec!["status", "--endpoint", &url],
        vec!["doctor", "my-secret", "--endpoint", &url],
    ];
    let runs: Vec<_> = commands
        .iter()
        .map(|args| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            tokio::spawn(async move {
                let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
                let bound = Duration::from_secs(600);
                let ran = tokio::time::timeout(bound, rotor_cli(&borrowed)).await;
                (args, ran)
            })
        })
        .collect();
    for run in runs {
        let (args, ran) = run.await.expect("join");
        let (code, _, stderr) = ran.unwrap_or_else(|_| panic!("rotor {args:?} never gave up"));
        assert_eq!(code, 2, "rotor {args:?}: {stderr}");
        assert!(
            stderr.contains("did not answer") && stderr.contains(&url),
            "rotor {args:?}: {stderr}"
        );
        assert!(!SDK_DUMP.iter().any(|d| stderr.contains(d)), "{stderr}");
    }
}

/// Nothing listening, something that is not Secrets Manager, and a URL
/// without a scheme: each command says which, in one sentence with the fix,
/// never with the SDK's dump of the request.
#[tokio::test(flavor = "multi_thread")]
async fn endpoint_failures_are_said_plainly() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let other = NotFoundServer::start().await;
    let no_scheme = moto().endpoint().trim_start_matches("http://").to_owned();
    let cases = [
        (refused.clone(), "connection refused"),
        (other.http_url(), "not Secrets Manager"),
        (no_scheme.clone(), "no scheme"),
    ];
    for (endpoint, says) in &cases {
        for command in ["rotate", "status", "doctor"] {
            let mut args = vec![command];
            if command != "status" {
                args.push("my-secret");
            }
            args.extend(["--endpoint", endpoint.as_str()]);
            let (code, _, stderr) = rotor_cli(&args).await;
            assert_eq!(code, 2, "rotor {args:?}: {stderr}");
            assert!(
                stderr.contains(says) && stderr.contains(endpoint.as_str()),
                "rotor {args:?} should say {says:?}: {stderr}"
            );
            assert!(!SDK_DUMP.iter().any(|d| stderr.contains(d)), "{stderr}");
            let first = stderr.lines().next().unwrap_or_default();
            assert!(first.contains(says), "said on its first line: {stderr}");
        }
    }
}

/// A mistyped --function names what was asked, where rotor looked (beside
/// itself) and the functions it knows; never a path of the machine that built
/// it.
#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_function_is_not_looked_for_at_the_build_path() {
    let built = rotor_path();
    let dir = built
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/")
        .join(unique("installed"));
    std::fs::create_dir_all(&dir).expect("a directory for the installed rotor");
    let installed = dir.join("rotor");
    std::fs::hard_link(&built, &installed).expect("link rotor");
    let store = moto_store();
    let name = unique("typo");
    store
        .create_secret(&name, &SecretString::from("v1"), &[])
        .await
        .expect("create");
    let out = tokio::process::Command::new(&installed)
        .args(["rotate", &name, "--endpoint", moto().endpoint()])
        .args(["--function", "generic-rotaton"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run the installed rotor");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let baked = built.with_file_name("generic-rotaton");
    assert!(!stderr.contains(&baked.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("generic-rotaton")
            && stderr.contains(&dir.display().to_string())
            && stderr.contains("generic-rotation"),
        "{stderr}"
    );
    assert!(
        labels(&store, &name)
            .await
            .values()
            .flatten()
            .all(|l| l != AWSPENDING)
    );
}

/// Inputs that would make the run fail are refused before a version is
/// staged: a zero step timeout, settings the function's own parser refuses,
/// an --env without a name, a mistyped function, --invoke against an emulator
/// without a Lambda endpoint, and --function with --invoke.
#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_refused_before_anything_is_staged() {
    let store = moto_store();
    let name = unique("inputs");
    store
        .create_secret(&name, &SecretString::from(r#"{"password":"p"}"#), &[])
        .await
        .expect("create");
    let before = labels(&store, &name).await;
    let cases: [(&[&str], &str); 6] = [
        (&["--step-timeout", "0"], "--step-timeout"),
        (
            &[
                "--function",
                "rds-rotation",
                "--env",
                "ROTATION_STRATEGY=sideways",
            ],
            "ROTATION_STRATEGY",
        ),
        (&["--env", "=value"], "--env"),
        (&["--function", "generic-rotaton"], "generic-rotaton"),
        (&["--invoke", "my-function"], "--lambda-endpoint"),
        (
            &[
                "--invoke",
                "f",
                "--lambda-endpoint",
                "http://127.0.0.1:9",
                "--function",
                "g",
            ],
            "--function",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["rotate", name.as_str(), "--endpoint", moto().endpoint()];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = rotor_cli(&args).await;
        assert_eq!(code, 2, "{extra:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(says),
            "{extra:?} should name {says}: {stderr}"
        );
        assert_eq!(
            labels(&store, &name).await,
            before,
            "{extra:?} staged a version"
        );
    }
}

/// A run whose createSecret fails leaves the version AWSPENDING: rotor
/// prints the commands that resume it and cancel it, refuses the next run
/// with the same commands, and each command, run as printed, does what it
/// says.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_prints_the_commands_that_resume_or_cancel_it() {
    let store = moto_store();
    let dir = std::env::temp_dir().join(unique("printed"));
    std::fs::create_dir_all(&dir).expect("a working directory");
    // createSecret refuses a value that is not JSON when fields are named.
    let failing = |name: String| {
        let store = store.clone();
        async move {
            let tags = [("rotor:fields", "password")];
            store
                .create_secret(&name, &SecretString::from("plain"), &tags)
                .await
                .expect("create");
            let (code, stdout, _) =
                rotor_cli(&["rotate", &name, "--endpoint", moto().endpoint()]).await;
            assert_eq!(code, 1, "{stdout}");
            let pending = store
                .describe_versions_pending(&name)
                .await
                .expect("pending");
            (stdout, pending)
        }
    };

    // Resume: fix the value, then the printed resume command finishes it.
    let name = unique("failed");
    let (stdout, pending) = failing(name.clone()).await;
    let printed = printed_commands(&stdout);
    assert!(
        printed.len() >= 2,
        "a resume and a cancel command: {stdout}"
    );
    let resume = printed
        .iter()
        .find(|c| c.contains(" rotate ") && c.contains(&pending))
        .unwrap_or_else(|| panic!("no resume command: {stdout}"));
    assert!(
        printed
            .iter()
            .any(|c| c.contains("update-secret-version-stage")),
        "{stdout}"
    );
    // The next run is refused, with the commands that resume and cancel.
    let (code, _, stderr) = rotor_cli(&["rotate", &name, "--endpoint", moto().endpoint()]).await;
    assert_eq!(code, 2, "{stderr}");
    let offered = printed_commands(&stderr);
    assert!(
        offered
            .iter()
            .any(|c| c.contains(" rotate ") && c.contains(&format!("--token {pending}")))
            && offered
                .iter()
                .any(|c| c.contains("update-secret-version-stage")),
        "the refusal names the commands: {stderr}"
    );
    store
        .put_value(
            &name,
            rotor_core::store::NewVersion {
                version_id: &token(),
                value: &SecretString::from(r#"{"password":"p"}"#),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .expect("fix the value");
    let out = run_printed(resume, &dir, "").await;
    assert!(
        out.status.success(),
        "{resume}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(labels(&store, &name).await[&pending], [AWSCURRENT]);

    // Cancel: each printed cancel command, on a run of its own.
    for which in ["update-secret-version-stage", " doctor "] {
        let name = unique("failed");
        let (stdout, pending) = failing(name.clone()).await;
        let cancel = printed_commands(&stdout)
            .into_iter()
            .find(|c| c.contains(which))
            .unwrap_or_else(|| panic!("no {which} command: {stdout}"));
        if which.contains("update") && !aws_cli_available() {
            assert!(cancel.contains("--endpoint-url") && cancel.contains(moto().endpoint()));
            continue;
        }
        let out = run_printed(&cancel, &dir, "y\n").await;
        // doctor exits 1 for what remains: rotation, which the steps needed
        // on, stays on until turned off (the output says how).
        let code = out.status.code().unwrap_or(-1);
        assert!(
            code == 0 || (code == 1 && which == " doctor "),
            "{cancel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !labels(&store, &name).await[&pending].contains(&AWSPENDING.to_owned()),
            "{cancel} left AWSPENDING"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
