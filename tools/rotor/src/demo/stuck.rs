//! A stuck rotation in the demo, and `rotor doctor` repairing it. The
//! deployed generic-rotation is described in moto's Lambda (its metadata and
//! environment, as the template deploys it); Secrets Manager starts a
//! rotation with it, and the partner system of this multi-call rotation never
//! confirms the new value (its validation queue is down), so the rotation
//! stays in flight with AWSPENDING holding the registered value. `rotor
//! doctor` (the binary, as an operator runs it) names the problem; once the
//! partner is back, `rotor doctor --fix` resumes the rotation with the local
//! generic-rotation, and the secret is healthy again.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, SecretStore, SecretString};
use serde_json::Value;

use rotor_testbed::moto::{Moto, local_env, local_sdk_config};
use rotor_testbed::webhook_receiver::{Behaviour, WebhookReceiver};

use super::Checked;
use super::report::summary;
use crate::function::LocalFunction;
use crate::rotate::{RotateOptions, rotate};

/// The stuck secret: it must be one the webhook key secret serves.
pub(super) const NAME: &str = "demo/partner-stuck";

/// The deployed generic-rotation, as moto's Lambda names it.
const FUNCTION: &str = "rotor-generic-rotation";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-generic-rotation";

/// Leaves a rotation in flight, shows what doctor says of it, repairs it with
/// `doctor --fix` and checks that the secret then has no finding but the
/// emulator's missing function.
pub(super) async fn stuck_rotation(
    moto: &Moto,
    store: &AwsStore,
    receiver: &WebhookReceiver,
    function: &LocalFunction,
    out: &mut String,
) -> anyhow::Result<Checked> {
    let tags = [
        ("rotor:mode", "multi".to_owned()),
        ("rotor:webhook", receiver.url()),
        (
            "rotor:webhook-key-secret",
            "demo/webhook-signing-key".into(),
        ),
    ];
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let value = SecretString::from(r#"{"partner":"globex","password":"initial"}"#);
    store.create_secret(NAME, &value, &tags).await?;
    let _ = writeln!(
        out,
        "\na stuck rotation, and rotor doctor\n  {NAME} (multi-call; the partner never confirms the new value)"
    );
    // Started before the function is described in moto's Lambda: moto would
    // otherwise try to run the function's (empty) code itself.
    let token = uuid::Uuid::new_v4().to_string();
    start_rotation(moto, NAME, &token, FUNCTION_ARN).await?;
    deploy_metadata(moto, receiver).await?;
    // Secrets Manager invokes the function; here the local process runs its
    // steps, and testSecret waits for the partner, which never answers.
    receiver.set_behaviour("testSecret", Behaviour::Defer);
    let options = RotateOptions {
        secret_id: NAME.into(),
        token: Some(token),
        test_only: false,
        step_timeout: Duration::from_secs(30),
    };
    let run = rotate(store, function, &options).await?;
    out.push_str(&summary(&run));

    let doctor = |extra: &'static [&'static str]| doctor(moto, receiver, extra);
    let before = doctor(&[]).await?;
    let _ = writeln!(out, "    rotor doctor {NAME}:");
    for finding in findings(&before) {
        let _ = writeln!(out, "      {finding}");
    }
    receiver.set_behaviour("testSecret", Behaviour::Accept);
    let after = doctor(&["--fix", "--yes", "--function", "generic-rotation"]).await?;
    let remaining: Vec<&str> = codes(&after);
    let _ = writeln!(
        out,
        "    the partner is back; rotor doctor {NAME} --fix --function generic-rotation resumed the rotation:\n      \
         findings now: {}",
        if remaining.is_empty() {
            "none".to_owned()
        } else {
            remaining.join(", ")
        }
    );
    let stuck_found = codes(&before).contains(&"pending-with-value");
    let repaired = remaining.is_empty();
    let promoted = store.describe(NAME).await?.versions.current() == Some(run.token.as_str());
    Ok(Checked {
        completed: usize::from(stuck_found && repaired && promoted),
        total: 1,
        leaked: false,
    })
}

/// The deployed function, as moto's Lambda describes it: the name, the
/// description and the environment the template gives generic-rotation (its
/// code is not run there).
async fn deploy_metadata(moto: &Moto, receiver: &WebhookReceiver) -> anyhow::Result<()> {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
    let lambda = aws_sdk_lambda::Client::new(&local_sdk_config(moto.endpoint()));
    // The smallest zip: its end-of-central-directory record.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    let variables = [("ROTOR_WEBHOOK_ALLOWED_PREFIXES".to_owned(), receiver.url())];
    lambda
        .create_function()
        .function_name(FUNCTION)
        .description("rotor generic-rotation: generated values (the demo's deployment)")
        .runtime(Runtime::Providedal2023)
        .role(moto.lambda_role("rotor-demo-generic-rotation")?)
        .handler("bootstrap")
        .timeout(60)
        .environment(
            Environment::builder()
                .set_variables(Some(variables.into()))
                .build(),
        )
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .context("CreateFunction in moto")?;
    lambda
        .add_permission()
        .function_name(FUNCTION)
        .statement_id("SecretsManagerInvoke")
        .action("lambda:InvokeFunction")
        .principal("secretsmanager.amazonaws.com")
        .send()
        .await
        .context("AddPermission in moto")?;
    Ok(())
}

/// RotateSecret as Secrets Manager's schedule starts it: rotation on with
/// `function`, version `token` staged AWSPENDING; moto, finding no function to
/// invoke, stops there, and the local process runs the steps.
async fn start_rotation(
    moto: &Moto,
    name: &str,
    token: &str,
    function: &str,
) -> anyhow::Result<()> {
    use aws_sdk_secretsmanager::types::RotationRulesType;
    let sent = moto
        .client()
        .rotate_secret()
        .secret_id(name)
        .client_request_token(token)
        .rotation_lambda_arn(function)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await;
    match sent {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some() => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("RotateSecret in moto")),
    }
}

/// `rotor doctor NAME --json` and `extra`, run as an operator runs it, against
/// moto; its JSON document.
async fn doctor(moto: &Moto, receiver: &WebhookReceiver, extra: &[&str]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("find the rotor binary")?;
    let allowed = format!("ROTOR_WEBHOOK_ALLOWED_PREFIXES={}", receiver.url());
    let mut args = vec!["doctor", NAME, "--json", "--stuck-after-minutes", "0"];
    args.extend_from_slice(extra);
    if extra.contains(&"--function") {
        args.extend(["--env", &allowed]);
    }
    let output = tokio::process::Command::new(exe)
        .args(&args)
        .args(["--endpoint", moto.endpoint()])
        .envs(local_env(moto.endpoint()))
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("run rotor doctor")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).with_context(|| {
        format!(
            "rotor doctor {} printed no JSON document: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Each finding of a doctor document: code, health and what.
fn findings(document: &Value) -> Vec<String> {
    document["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} ({}): {}",
                f["code"].as_str().unwrap_or("?"),
                f["health"].as_str().unwrap_or("?"),
                f["what"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn codes(document: &Value) -> Vec<&str> {
    document["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str())
        .collect()
}
