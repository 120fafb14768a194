//! The secret's rotation settings across a local run: what the runner names
//! when it stages (the secret's own function where the emulator would not run
//! it itself), and the account of what changed.

use std::fmt::Write as _;

use aws_sdk_lambda::error::ProvideErrorMetadata as _;
use rotor_core::AwsStore;
use rotor_core::store::aws::STAGING_ONLY_FUNCTION;

use crate::endpoint::{Call, Service, explain};

/// What the runner may learn of the emulator, and change of the secret's
/// rotation settings.
#[derive(Clone, Debug, Default)]
pub struct Staging {
    /// The emulator's Lambda API, which says whether the emulator would run
    /// the secret's rotation function itself (a function deployed in it).
    /// Without it, the runner assumes it would.
    pub lambda: Option<aws_sdk_lambda::Client>,
    /// The rotation function the settings name once the rotation ends
    /// (`--rotation-function`); the one they name now when absent.
    pub rotation_function: Option<String>,
    /// Once the rotation ends, turn rotation back off if it was off before
    /// the run (`rotor rotate`); RotateSecret, which [`rotate`] plays, leaves
    /// it on.
    pub restore_rotation_off: bool,
    /// Turn rotation off once the rotation ends, even when it was on before
    /// this run (`--leave-rotation-off`: a resumed run's).
    pub leave_rotation_off: bool,
}

/// A secret's rotation settings, as DescribeSecret gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationSettings {
    /// Whether rotation is on.
    pub enabled: bool,
    /// The rotation function's ARN.
    pub function: Option<String>,
    /// The schedule, as `rotor status` shows it.
    pub schedule: Option<String>,
}

impl std::fmt::Display for RotationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rotation {}, {}, function {}",
            if self.enabled { "on" } else { "off" },
            self.schedule.as_deref().unwrap_or("no schedule"),
            self.function.as_deref().unwrap_or("none")
        )
    }
}

/// The rotation settings before and after a run, and why they differ.
#[derive(Clone, Debug)]
pub struct SettingsReport {
    /// Before the run.
    pub before: RotationSettings,
    /// After it.
    pub after: RotationSettings,
    /// The function the settings should name (the one before, or
    /// `--rotation-function`).
    pub wanted_function: Option<String>,
    /// Why the staging named another function than that one, when it did.
    pub staged_with: Option<String>,
}

impl SettingsReport {
    /// The function to ask a resumed run to restore, when this run could not.
    pub fn to_restore(&self) -> Option<&str> {
        let wanted = self.wanted_function.as_deref()?;
        (self.after.function.as_deref() != Some(wanted)).then_some(wanted)
    }
}

/// Reads the secret's rotation settings.
pub async fn rotation_settings(
    store: &AwsStore,
    secret_id: &str,
) -> anyhow::Result<RotationSettings> {
    let out = store
        .client()
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            let call = Call {
                service: Service::SecretsManager,
                endpoint: None,
                operation: "DescribeSecret",
                subject: Some(secret_id),
            };
            explain(&call, &e)
        })?;
    Ok(RotationSettings {
        enabled: out.rotation_enabled() == Some(true),
        function: out
            .rotation_lambda_arn()
            .filter(|f| !f.is_empty())
            .map(str::to_owned),
        schedule: out.rotation_rules().and_then(crate::status::schedule),
    })
}

/// The function to name in the staging RotateSecret, and why, when it is
/// not the one the settings name: that one keeps them unchanged, but an
/// emulator runs a function deployed in it itself (and moves its own labels
/// as it does), so then the staging names one that exists nowhere, and the
/// settings' function is put back once the rotation ends.
pub(super) async fn staging_function(
    staging: &Staging,
    wanted: Option<&str>,
) -> (String, Option<String>) {
    let Some(function) = wanted else {
        let why = "the secret had no rotation function, and the emulator records the one the staging RotateSecret names (it exists nowhere)";
        return (STAGING_ONLY_FUNCTION.to_owned(), Some(why.to_owned()));
    };
    if function == STAGING_ONLY_FUNCTION {
        return (function.to_owned(), None);
    }
    let Some(lambda) = &staging.lambda else {
        let why = format!(
            "whether the emulator would run {function} itself is unknown; rotor puts it back when the rotation ends"
        );
        return (STAGING_ONLY_FUNCTION.to_owned(), Some(why));
    };
    let deployed = lambda.get_function().function_name(function).send().await;
    match deployed {
        Err(e) if e.code() == Some("ResourceNotFoundException") => (function.to_owned(), None),
        Ok(_) => {
            let why = format!(
                "{function} is deployed in the emulator, which would run it itself; rotor puts it back when the rotation ends"
            );
            (STAGING_ONLY_FUNCTION.to_owned(), Some(why))
        }
        Err(_) => {
            let why = format!(
                "the emulator's Lambda API did not say whether it would run {function} itself; rotor puts it back when the rotation ends"
            );
            (STAGING_ONLY_FUNCTION.to_owned(), Some(why))
        }
    }
}

/// What became of the rotation settings, in a line or two.
pub(super) fn settings_text(settings: &SettingsReport) -> String {
    let (before, after) = (&settings.before, &settings.after);
    if before == after {
        return format!("  rotation settings unchanged: {after}\n");
    }
    let mut changes = Vec::new();
    if before.function != after.function {
        changes.push(format!(
            "function {} -> {}",
            before.function.as_deref().unwrap_or("none"),
            after.function.as_deref().unwrap_or("none")
        ));
    }
    if before.schedule != after.schedule {
        changes.push(format!(
            "schedule {} -> {}",
            before.schedule.as_deref().unwrap_or("none"),
            after.schedule.as_deref().unwrap_or("none")
        ));
    }
    changes.push(match (before.enabled, after.enabled) {
        (true, true) => "rotation stays on".to_owned(),
        (false, false) => {
            "rotation stays off (on only while the steps ran: the functions require it)".to_owned()
        }
        (false, true) => {
            "rotation turned on (the steps need it while the rotation is in flight)".to_owned()
        }
        (true, false) => "rotation turned off".to_owned(),
    });
    let mut out = format!("  rotation settings changed: {}\n", changes.join("; "));
    let asked = settings.wanted_function.is_some() && settings.wanted_function == after.function;
    if let Some(why) = &settings.staged_with
        && !asked
    {
        let _ = writeln!(out, "    why: {why}");
    }
    out
}
