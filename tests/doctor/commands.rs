//! What `status` and `doctor` print: the same terms in both JSON documents, and every
//! command they suggest runs as printed.

use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{SecretStore, SecretString};
use rotor_tests::commands::{aws_cli_available, printed_commands, run_printed};
use rotor_tests::{moto, moto_store, start_function, steps, token, unique};
use serde_json::{Value, json};

use super::{
    codes, deploy, doctor, function_arn, generic_secret, rotor, secret_for, start_rotation, unstage,
};

/// The findings in `status --json`'s one secret.
fn status_codes(status: &Value) -> Vec<String> {
    status["secrets"][0]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str().map(str::to_owned))
        .collect()
}

/// status and doctor describe a secret in the same terms: the same finding
/// codes, `attention` a boolean in both, and a warning is "warning", never
/// "ok".
#[tokio::test(flavor = "multi_thread")]
async fn status_and_doctor_json_use_the_same_terms() {
    let stuck = ["--stuck-after-minutes", "0"];
    // A stuck rotation, a missing function, and nothing wrong.
    let pending = token();
    let (_, in_flight, in_flight_name) = generic_secret(Some(&pending)).await;
    let store = moto_store();
    let missing_name = unique("doctor");
    let missing = store
        .create_secret(&missing_name, &SecretString::from("v"), &[])
        .await
        .expect("create");
    let staged = token();
    start_rotation(&missing, &function_arn(&unique("gone")), &staged).await;
    unstage(&store, &missing, &staged).await;
    let (_, healthy, healthy_name) = generic_secret(None).await;
    for (arn, name, attention) in [
        (&in_flight, &in_flight_name, true),
        (&missing, &missing_name, true),
        (&healthy, &healthy_name, false),
    ] {
        let (_, doc) = doctor(arn, &stuck).await;
        let mut args = vec!["status", "--prefix", name.as_str(), "--json"];
        args.extend_from_slice(&stuck);
        let (_, out) = rotor(&args).await;
        let status: Value = serde_json::from_str(&out).expect("status --json");
        assert_eq!(status_codes(&status), codes(&doc), "{status}\n{doc}");
        assert_eq!(doc["attention"], json!(attention), "{doc}");
        assert_eq!(status["attention"], json!(attention), "{status}");
    }
    // Young: a warning in doctor, in its JSON too.
    let (_, doc) = doctor(&in_flight, &[]).await;
    assert_eq!(doc["findings"][0]["health"], "warning", "{doc}");
    assert_eq!(doc["attention"], json!(false), "{doc}");
}

/// A stuck or misconfigured state to make afresh for each command tried.
#[derive(Clone, Copy, Debug)]
enum Situation {
    /// A rotation without a value, younger than --stuck-after-minutes.
    YoungWithoutValue,
    /// The same, stuck.
    StuckWithoutValue,
    /// createSecret stored a value, then the rotation stopped.
    StuckWithValue,
    /// AWSPENDING left on the AWSCURRENT version.
    PendingOnCurrent,
    /// The rotation function does not exist.
    FunctionMissing,
    /// rds-rotation that Secrets Manager may not invoke, with a short
    /// timeout, settings it refuses and a value it cannot parse.
    BrokenFunctionAndValue,
}

impl Situation {
    const ALL: [Situation; 6] = [
        Situation::YoungWithoutValue,
        Situation::StuckWithoutValue,
        Situation::StuckWithValue,
        Situation::PendingOnCurrent,
        Situation::FunctionMissing,
        Situation::BrokenFunctionAndValue,
    ];

    /// Whether a rotation is in flight (which each repair must end).
    fn in_flight(self) -> bool {
        matches!(
            self,
            Situation::YoungWithoutValue
                | Situation::StuckWithoutValue
                | Situation::StuckWithValue
                | Situation::PendingOnCurrent
        )
    }

    /// The doctor (and status) options that find it.
    fn options(self) -> &'static [&'static str] {
        match self {
            Situation::YoungWithoutValue => &[],
            _ => &["--stuck-after-minutes", "0"],
        }
    }

    /// Makes it; the secret's ARN and name.
    async fn make(self) -> (String, String) {
        let store = moto_store();
        match self {
            Situation::YoungWithoutValue | Situation::StuckWithoutValue => {
                let (_, arn, name) = generic_secret(Some(&token())).await;
                (arn, name)
            }
            Situation::StuckWithValue => {
                let pending = token();
                let (_, arn, name) = generic_secret(Some(&pending)).await;
                let local = start_function("generic-rotation", &[]).await;
                steps::run(&local, &arn, &pending, Step::CreateSecret)
                    .await
                    .unwrap_or_else(|(kind, _)| panic!("{}: {kind}", Step::CreateSecret));
                (arn, name)
            }
            Situation::PendingOnCurrent => {
                let (_, arn, name) = generic_secret(None).await;
                store
                    .put_value(
                        &arn,
                        NewVersion {
                            version_id: &token(),
                            value: &SecretString::from("newer"),
                            labels: &[AWSCURRENT, AWSPENDING],
                            rotation_token: None,
                        },
                    )
                    .await
                    .expect("put");
                (arn, name)
            }
            Situation::FunctionMissing => {
                let name = unique("doctor");
                let arn = secret_for(&store, &name, "v", &[], &unique("gone"), None).await;
                (arn, name)
            }
            Situation::BrokenFunctionAndValue => {
                let name = unique("doctor");
                let function = unique("fn");
                let arn = secret_for(&store, &name, "v", &[], &function, None).await;
                let env = [("ROTATION_STRATEGY", "sideways")];
                deploy(&function, "rds-rotation", &env, 3, false).await;
                (arn, name)
            }
        }
    }

    /// The commands doctor (its JSON, checked against its text) and status
    /// print for it.
    async fn commands(self, arn: &str, name: &str) -> Vec<String> {
        let (_, doc) = doctor(arn, self.options()).await;
        let from_json: Vec<String> = doc["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["fix"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(printed_commands))
            .flatten()
            .collect();
        let mut args = vec!["doctor", arn];
        args.extend_from_slice(self.options());
        let (_, text) = rotor(&args).await;
        assert_eq!(printed_commands(&text), from_json, "{text}");
        let mut args = vec!["status", "--prefix", name];
        args.extend_from_slice(self.options());
        let (_, table) = rotor(&args).await;
        let mut all = from_json;
        all.extend(printed_commands(&table));
        all
    }
}

/// Every `rotor` and `aws` command doctor and status suggest runs as printed
/// against moto (in `sh`, a "y" on stdin for --fix's question), each on a
/// fresh copy of the state it was suggested for: it carries --endpoint (or
/// --endpoint-url and --region), the function binary and its settings where
/// it resumes, and the options that made doctor call the rotation stuck. A
/// repair leaves the rotation finished or cancelled. Placeholders that a
/// person fills in (FUNCTION_ARN, file://fixed.json) are filled in the same
/// way here.
#[tokio::test(flavor = "multi_thread")]
async fn every_suggested_command_runs_as_printed() {
    let dir = std::env::temp_dir().join(unique("suggested"));
    std::fs::create_dir_all(&dir).expect("a working directory");
    let fixed =
        json!({"engine": "postgres", "host": "db.example", "username": "u", "password": "p"});
    std::fs::write(dir.join("fixed.json"), fixed.to_string()).expect("fixed.json");
    std::fs::write(dir.join("value.json"), fixed.to_string()).expect("value.json");
    let some_function = unique("fn");
    deploy(&some_function, "generic-rotation", &[], 60, true).await;
    let aws = aws_cli_available();
    for situation in Situation::ALL {
        let (arn, name) = situation.make().await;
        let suggested = situation.commands(&arn, &name).await;
        let count = suggested.len();
        assert!(count > 0, "{situation:?}: no command suggested");
        if situation.in_flight() {
            assert!(
                suggested.iter().any(|c| c.contains(" --fix")),
                "{situation:?}: no --fix among {suggested:?}"
            );
        }
        for index in 0..count {
            let (arn, name) = situation.make().await;
            let command = situation.commands(&arn, &name).await[index]
                .replace("ROTATION_FUNCTION_ARN", &function_arn(&some_function))
                .replace("FUNCTION_ARN", &function_arn(&some_function));
            if command.starts_with("aws ") {
                assert!(
                    command.contains(&format!("--endpoint-url {}", moto().endpoint()))
                        && command.contains("--region us-east-1"),
                    "{situation:?}: {command}"
                );
                if !aws {
                    continue;
                }
            } else {
                assert!(
                    command.contains(&format!("--endpoint {}", moto().endpoint())),
                    "{situation:?}: {command}"
                );
            }
            let out = run_printed(&command, &dir, "y\ny\ny\n").await;
            let code = out.status.code().unwrap_or(-1);
            let acts = command.starts_with("aws ")
                || command.contains(" --fix")
                || command.contains(" rotate ");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            if acts {
                assert_eq!(code, 0, "{situation:?}: {command}\n{stdout}\n{stderr}");
            } else {
                assert!(code == 0 || code == 1, "{situation:?}: {command}\n{stderr}");
            }
            if acts && situation.in_flight() {
                let (_, doc) = doctor(&arn, &["--stuck-after-minutes", "0"]).await;
                assert!(
                    codes(&doc).iter().all(|c| !c.starts_with("pending-")),
                    "{situation:?}: after {command}: {doc}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
