//! How the demo words one rotation: steps, timings and labels, and what
//! changed, by field name and length only.

use anyhow::Context;
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::VersionSelector;
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::Value;

use crate::rotate::RotationRun;

/// One line of steps and timings, then the labels.
pub(super) fn summary(run: &RotationRun) -> String {
    let steps: Vec<String> = run
        .steps
        .iter()
        .map(|s| {
            let ms = s.duration.as_secs_f64() * 1000.0;
            match &s.result {
                Ok(v) => match v.get("outcome").and_then(Value::as_str) {
                    Some("done") | None => format!("{} {ms:.0} ms", s.step),
                    Some(outcome) => format!("{} {ms:.0} ms ({outcome})", s.step),
                },
                Err((kind, _)) => format!("{} FAILED ({kind})", s.step),
            }
        })
        .collect();
    let labels: Vec<String> = run
        .after
        .versions
        .iter()
        .filter(|(_, l)| !l.is_empty())
        .map(|(v, l)| format!("{} {}", l.join("+"), &v[..v.len().min(8)]))
        .collect();
    let mut line = format!(
        "    {}\n    labels: {}\n",
        steps.join(", "),
        labels.join(", ")
    );
    if let Some(Err((_, message))) = run.steps.last().map(|s| &s.result) {
        line.push_str(&format!("    why: {message}\n"));
    }
    line
}

/// What changed between AWSPREVIOUS and AWSCURRENT, by field name and length only.
pub(super) async fn describe_change(store: &AwsStore, run: &RotationRun) -> anyhow::Result<String> {
    let read = |label| store.get_value(&run.secret, VersionSelector::Label(label));
    let current = read(AWSCURRENT).await?.context("no AWSCURRENT value")?;
    let Some(previous) = read(AWSPREVIOUS).await? else {
        return Ok("no AWSPREVIOUS version".into());
    };
    let parse = |v: &SecretString| {
        serde_json::from_str::<Value>(v.expose_secret())
            .ok()
            .and_then(|v| v.as_object().cloned())
    };
    Ok(match (parse(&current.value), parse(&previous.value)) {
        (Some(new), Some(old)) => {
            let (mut changed, mut kept) = (Vec::new(), Vec::new());
            for (field, value) in &new {
                if old.get(field) == Some(value) {
                    kept.push(field.clone());
                } else {
                    let length = value.as_str().map(str::len).unwrap_or(0);
                    changed.push(format!("{field} ({length} chars)"));
                }
            }
            format!("new: {}; kept: {}", changed.join(", "), kept.join(", "))
        }
        _ => format!(
            "new value: {} chars, {} the previous one",
            current.value.expose_secret().len(),
            if current.value.expose_secret() == previous.value.expose_secret() {
                "SAME AS"
            } else {
                "differs from"
            }
        ),
    })
}
