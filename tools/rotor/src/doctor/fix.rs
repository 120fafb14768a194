//! `rotor doctor --fix`: the repairs that cannot lose a working credential,
//! each shown and confirmed (unless `--yes`) and checked against a fresh read
//! of the secret just before it is done. Which repair a finding gets is the
//! findings' choice (`super::findings`): a pending version without a value is
//! cancelled only where rotor makes values itself; where the target issues
//! them and retires the old one (RFC 7592), the value may exist only in the
//! function's memory for that version, so the rotation is resumed instead.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use rotor_core::AwsStore;
use rotor_core::labels::AWSPENDING;

use super::findings::{self, Examination, Repair};
use crate::clients::Clients;
use crate::endpoint::explain;
use crate::function::{LocalFunction, locate_function};
use crate::rotate::{LambdaFunction, RotateOptions, report, rotate};
use crate::status::health::{Health, human};

/// How the repairs run.
#[derive(Clone, Debug)]
pub struct FixOptions {
    /// Do not ask.
    pub yes: bool,
    /// For resume against an emulator: run this function binary locally.
    pub function: Option<String>,
    /// Extra environment for that binary.
    pub env: Vec<(String, String)>,
    /// How long each step may take.
    pub step_timeout: Duration,
}

/// Asks on the terminal; only "y" or "yes" agrees.
fn confirm(repair: &Repair) -> anyhow::Result<bool> {
    eprint!("repair: {repair}\n  do it? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Applies each safe repair of `exam`; returns what was done.
pub async fn apply_all(
    clients: &Clients,
    exam: &Examination,
    options: &findings::Options,
    fix: &FixOptions,
) -> anyhow::Result<String> {
    let mut done = String::new();
    let repairs: Vec<Repair> = exam
        .findings
        .iter()
        .filter(|f| f.health.needs_attention())
        .filter_map(|f| f.repair.clone())
        .collect();
    // A rotation younger than --stuck-after-minutes may still be running:
    // say so, and when --fix will act, rather than nothing at all.
    let young: Vec<&Repair> = exam
        .findings
        .iter()
        .filter(|f| f.health == Health::Warning)
        .filter_map(|f| f.repair.as_ref())
        .collect();
    for repair in &young {
        done.push_str(&young_rotation(exam, options, repair));
    }
    if repairs.is_empty() && young.is_empty() {
        done.push_str("nothing that --fix may repair\n");
    }
    for repair in repairs {
        if !fix.yes && !confirm(&repair)? {
            done.push_str(&format!("skipped: {repair}\n"));
            continue;
        }
        // The state may have moved since the examination: look again.
        let fresh = findings::examine(clients, &exam.arn, options).await?;
        if !findings::still_applies(&fresh, &repair) {
            done.push_str(&format!(
                "not done, the secret changed meanwhile: {repair}\n"
            ));
            continue;
        }
        done.push_str(&format!("repair: {repair}\n"));
        done.push_str(&apply(clients, &fresh, &repair, fix).await?);
    }
    Ok(done)
}

/// Why --fix leaves a young rotation alone, when it will act, and the
/// command that acts now.
fn young_rotation(exam: &Examination, options: &findings::Options, repair: &Repair) -> String {
    let now = std::time::SystemTime::now();
    let age = exam
        .facts
        .in_flight
        .as_ref()
        .and_then(|f| f.since)
        .and_then(|t| now.duration_since(t).ok())
        .map(human)
        .unwrap_or_else(|| "?".into());
    let minutes = options.stuck_after.as_secs() / 60;
    let override_ = options
        .fix_command(exam, true, matches!(repair, Repair::Resume { .. }))
        .map(|c| format!(" If nothing is running it: `{c}`"))
        .unwrap_or_default();
    format!(
        "not repaired: {repair}: it has been in flight for {age}, and --fix acts on a rotation once it has been in flight {minutes} minutes, in case it is still running.{override_}\n"
    )
}

async fn apply(
    clients: &Clients,
    exam: &Examination,
    repair: &Repair,
    fix: &FixOptions,
) -> anyhow::Result<String> {
    match repair {
        Repair::DropStalePending { version } | Repair::Cancel { version } => {
            clients
                .secrets
                .update_secret_version_stage()
                .secret_id(&exam.arn)
                .version_stage(AWSPENDING)
                .remove_from_version_id(version)
                .send()
                .await
                .map_err(|e| {
                    let call = clients.secrets_call("UpdateSecretVersionStage", Some(&exam.arn));
                    explain(&call, &e)
                })?;
            Ok(format!("  done: AWSPENDING removed from {version}\n"))
        }
        Repair::Resume { version } => resume(clients, exam, version, fix).await,
    }
}

/// Finishes the rotation with its own token, as RotateSecret does for a
/// ClientRequestToken that names the pending version: every step is
/// idempotent, so steps that already ran do nothing again.
async fn resume(
    clients: &Clients,
    exam: &Examination,
    version: &str,
    fix: &FixOptions,
) -> anyhow::Result<String> {
    let options = RotateOptions {
        secret_id: exam.arn.clone(),
        token: Some(version.to_owned()),
        test_only: false,
        step_timeout: fix.step_timeout,
    };
    let store = AwsStore::new(clients.secrets.clone());
    let run = match (&fix.function, &clients.endpoint) {
        (Some(function), Some(endpoint)) => {
            let binary: PathBuf = locate_function(function)?;
            let mut env = rotor_testbed::moto::local_env(endpoint);
            env.extend(fix.env.iter().cloned());
            let local = LocalFunction::start(&binary, &env).await?;
            let run = rotate(&store, &local, &options).await;
            eprint!("{}", local.output());
            run?
        }
        (Some(_), None) => bail!(
            "--function runs a local binary against an emulator (--endpoint); against AWS, doctor resumes with RotateSecret and the deployed function"
        ),
        (None, Some(endpoint)) => {
            let Some(function) = &exam.facts.function else {
                bail!("the secret has no rotation function to resume with; give --function BINARY");
            };
            let remote = LambdaFunction::local(endpoint, function);
            rotate(&store, &remote, &options).await?
        }
        (None, None) => {
            clients
                .secrets
                .rotate_secret()
                .secret_id(&exam.arn)
                .client_request_token(version)
                .send()
                .await
                .map_err(|e| explain(&clients.secrets_call("RotateSecret", Some(&exam.arn)), &e))?;
            let commands = crate::commands::Commands::new(clients.endpoint.as_deref());
            let again = commands.rotor(["doctor", exam.arn.as_str()]);
            return Ok(format!(
                "  started: Secrets Manager resumes the rotation to {version}; run `{again}` again in a minute\n"
            ));
        }
    };
    let mut out = report(&run);
    if !run.succeeded() {
        out.push_str("  the rotation did not finish; the pending version is kept\n");
    }
    Ok(out)
}
