//! `rotor status`: every secret's rotation at a glance.
//!
//! ListSecrets (100 secrets a page) carries each secret's rotation settings,
//! dates and labels, so a fleet costs about one call per hundred secrets; only
//! a secret with a rotation in flight costs two more (when did it start, does
//! the pending version have a value), and each distinct rotation function two
//! (GetFunctionConfiguration, GetPolicy). Those run with bounded concurrency.

pub mod health;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, RotationRulesType, SecretListEntry,
};
use rotor_core::labels::{AWSPENDING, Versions};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::clients::Clients;
use crate::commands::Commands;
use crate::doctor::lambda;
use crate::endpoint::parse_endpoint;
use health::{Facts, Health, InFlight, Reason};

/// `rotor status`: one line per secret, and an exit code that says whether
/// anything needs attention.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Only secrets with this tag, as KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Option<String>,
    /// Only secrets whose name starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The Secrets Manager and Lambda endpoint (an emulator such as moto);
    /// AWS's, with the default credential chain, when absent.
    #[arg(long, value_parser = parse_endpoint)]
    pub endpoint: Option<String>,
    /// How many calls may be in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// How many minutes a rotation may be in flight before it counts as stuck.
    #[arg(long, default_value_t = STUCK_AFTER_MINUTES)]
    pub stuck_after_minutes: u64,
    /// The tag holding each secret's rotation window (rotation-scheduler's
    /// WINDOW_TAG), for the WINDOW column.
    #[arg(long, value_name = "KEY", default_value = rotation_scheduler::window::DEFAULT_WINDOW_TAG)]
    pub window_tag: String,
    /// Afterwards, print on stderr how long it took and the API calls it made.
    #[arg(long)]
    pub stats: bool,
}

/// One secret's line.
#[derive(Clone, Debug)]
pub struct Line {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// What is known.
    pub facts: Facts,
    /// The schedule as Secrets Manager holds it.
    pub schedule: Option<String>,
    /// Which rotor function rotates it, when the function's metadata says.
    pub kind: Option<lambda::Kind>,
    /// The health word and why.
    pub health: Health,
    /// The reasons for the word, by doctor's finding codes.
    pub reasons: Vec<Reason>,
    /// When rotation-scheduler may next start its rotation (its window tag
    /// and `RotationRules`), `None` without a window.
    pub window: Option<window::WindowState>,
    /// Its after-rotation actions and their last outcomes, if it has any.
    pub after: Option<AfterActions>,
}

/// A secret's after-rotation actions (its `rotor:after` tag) and what the
/// last rotation's finishSecret recorded of them (`rotor:after-result`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfterActions {
    /// The version the record names (the rotation that ran them).
    pub version: Option<String>,
    /// Each entry, and its outcome (`ok`, `failed`, `refused`, `not run`).
    pub actions: Vec<(String, String)>,
}

/// The after-rotation actions of a listed secret, from its tags.
pub fn after_of(entry: &SecretListEntry) -> Option<AfterActions> {
    use rotor_core::after::{AFTER_TAG, RESULT_TAG, Record, last_outcomes};
    let tag = |key: &str| {
        entry
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
    };
    let after = tag(AFTER_TAG)?;
    let record = tag(RESULT_TAG).and_then(Record::parse);
    let actions = last_outcomes(after, record.as_ref())
        .into_iter()
        .map(|(entry, outcome)| (entry.to_owned(), outcome.to_owned()))
        .collect();
    Some(AfterActions {
        version: record.map(|r| r.version_id),
        actions,
    })
}

/// The minutes doctor and status wait before calling a rotation stuck.
pub const STUCK_AFTER_MINUTES: u64 = 60;

/// Runs `rotor status`; `Ok(true)` when every secret is ok.
pub async fn run(args: &StatusArgs) -> anyhow::Result<bool> {
    let clients = Clients::new(args.endpoint.as_deref()).await?;
    let progress = std::io::stderr().is_terminal() && !args.json;
    let started = std::time::Instant::now();
    let lines = collect(&clients, args, progress).await?;
    if args.stats {
        let calls = clients.counter.calls();
        let total: u64 = calls.values().sum();
        eprintln!(
            "rotor status: {} secrets in {:.2} s, {total} calls ({:.3} a secret): {}",
            lines.len(),
            started.elapsed().as_secs_f64(),
            total as f64 / lines.len().max(1) as f64,
            calls
                .iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let healthy = !lines.iter().any(|l| l.health.needs_attention());
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", to_json(&lines))?;
    } else {
        let commands = Commands::new(clients.endpoint.as_deref());
        write!(
            out,
            "{}",
            table(&lines, &commands, args.stuck_after_minutes)
        )?;
    }
    Ok(healthy)
}

/// Lists the secrets and assesses each.
pub async fn collect(
    clients: &Clients,
    args: &StatusArgs,
    progress: bool,
) -> anyhow::Result<Vec<Line>> {
    let tag = match &args.filter {
        Some(text) => Some(
            text.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--filter {text:?} is not KEY=VALUE"))?,
        ),
        None => None,
    };
    let mut entries = Vec::new();
    let mut pages = list(clients, args.prefix.as_deref(), tag.as_ref()).send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            crate::endpoint::explain(&clients.secrets_call("ListSecrets", None), &e)
        })?;
        entries.extend(
            page.secret_list
                .unwrap_or_default()
                .into_iter()
                .filter(|e| {
                    // The service's tag filters match keys and values separately.
                    tag.as_ref().is_none_or(|(k, v)| {
                        e.tags()
                            .iter()
                            .any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str()))
                    })
                }),
        );
        if progress {
            eprint!("\rrotor status: {} secrets listed", entries.len());
        }
    }

    let limit = Arc::new(Semaphore::new(args.concurrency as usize));
    // Each distinct function once.
    let arns: std::collections::BTreeSet<String> = entries
        .iter()
        .filter(|e| e.rotation_enabled() == Some(true))
        .filter_map(|e| e.rotation_lambda_arn().map(str::to_owned))
        .filter(|a| !a.is_empty())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for arn in arns {
        let client = clients.lambda.clone();
        let endpoint = clients.endpoint.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let function = lambda::inspect(&client, endpoint.as_deref(), &arn).await;
            (arn, function)
        });
    }
    let mut functions = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (arn, function) = done?;
        functions.insert(arn, function);
    }

    let total = entries.len();
    let now = SystemTime::now();
    let stuck_after = Duration::from_secs(args.stuck_after_minutes * 60);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let client = clients.secrets.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let mut facts = facts_of(&entry);
            if let Some(flight) = &mut facts.in_flight
                && !flight.on_current
            {
                let _permit = limit.acquire_owned().await;
                let arn = entry.arn().unwrap_or_default();
                fill_in_flight(&client, arn, flight).await;
            }
            (index, entry, facts)
        });
    }
    let mut lines = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        let (index, entry, facts) = done?;
        let function = facts.function.as_ref().and_then(|a| functions.get(a));
        let (health, reasons) = health::assess(&facts, function, now, stuck_after);
        lines.push((
            index,
            Line {
                arn: entry.arn().unwrap_or_default().to_owned(),
                name: entry.name().unwrap_or_default().to_owned(),
                schedule: entry.rotation_rules().and_then(schedule),
                window: window::of(&args.window_tag, &entry, now),
                kind: match function {
                    Some(lambda::Function::Found(f)) => f.kind,
                    _ => None,
                },
                after: after_of(&entry),
                facts,
                health,
                reasons,
            },
        ));
        if progress && lines.len() % 25 == 0 {
            eprint!("\rrotor status: {}/{total} secrets checked   ", lines.len());
        }
    }
    if progress {
        eprint!("\r{:60}\r", "");
    }
    lines.sort_by_key(|(index, _)| *index);
    Ok(lines.into_iter().map(|(_, line)| line).collect())
}

fn list(
    clients: &Clients,
    prefix: Option<&str>,
    tag: Option<&(String, String)>,
) -> aws_sdk_secretsmanager::operation::list_secrets::paginator::ListSecretsPaginator {
    let mut request = clients.secrets.list_secrets().max_results(100);
    if let Some(prefix) = prefix {
        request = request.filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(prefix)
                .build(),
        );
    }
    if let Some((key, value)) = tag {
        request = request
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(key)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(value)
                    .build(),
            );
    }
    request.into_paginator()
}

/// A schedule as people read it: `every 30 days`, or the expression and its window.
pub(crate) fn schedule(rules: &aws_sdk_secretsmanager::types::RotationRulesType) -> Option<String> {
    if let Some(expression) = rules.schedule_expression() {
        let window = rules
            .duration()
            .map(|d| format!(" (window {d})"))
            .unwrap_or_default();
        Some(format!("{expression}{window}"))
    } else {
        // An emulator reports 0 days for a secret RotateSecret gave no schedule.
        rules
            .automatically_after_days()
            .filter(|days| *days > 0)
            .map(|days| format!("every {days} days"))
    }
}

fn time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// What one ListSecrets entry says.
pub fn facts_of(entry: &SecretListEntry) -> Facts {
    facts(
        entry.rotation_enabled(),
        entry.rotation_lambda_arn(),
        entry.next_rotation_date(),
        entry.last_rotated_date(),
        entry.rotation_rules(),
        entry.secret_versions_to_stages(),
    )
}

/// The facts from the rotation fields that ListSecrets and DescribeSecret
/// both return (in types of their own).
pub fn facts(
    rotation_enabled: Option<bool>,
    function: Option<&str>,
    next_rotation: Option<&DateTime>,
    last_rotated: Option<&DateTime>,
    rules: Option<&RotationRulesType>,
    stages: Option<&HashMap<String, Vec<String>>>,
) -> Facts {
    let versions = Versions::new(
        stages
            .into_iter()
            .flatten()
            .map(|(id, labels)| (id.clone(), labels.clone())),
    );
    Facts {
        rotation_enabled: rotation_enabled == Some(true),
        function: function.filter(|a| !a.is_empty()).map(str::to_owned),
        next_rotation: time(next_rotation),
        last_rotated: time(last_rotated),
        every_days: rules.and_then(|r| r.automatically_after_days()),
        in_flight: health::in_flight(&versions),
        versions,
    }
}

/// When the pending version was created, and whether it has a value: two calls.
pub async fn fill_in_flight(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    flight: &mut InFlight,
) {
    let mut pages = client
        .list_secret_version_ids()
        .secret_id(arn)
        .include_deprecated(true)
        .into_paginator()
        .send();
    while let Some(Ok(page)) = pages.next().await {
        if let Some(v) = page
            .versions()
            .iter()
            .find(|v| v.version_id() == Some(flight.version.as_str()))
        {
            flight.since = time(v.created_date());
            break;
        }
    }
    let read = client
        .get_secret_value()
        .secret_id(arn)
        .version_id(&flight.version)
        .version_stage(AWSPENDING)
        .send()
        .await;
    flight.has_value = match read {
        Ok(_) => Some(true),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Some(false),
        Err(_) => None,
    };
}

fn date(t: Option<SystemTime>) -> String {
    t.and_then(|t| DateTime::from(t).fmt(DateTimeFormat::DateTime).ok())
        .map(|s| s.chars().take(16).collect::<String>().replace('T', " "))
        .unwrap_or_else(|| "-".into())
}

fn function_name(arn: &str) -> &str {
    arn.rsplit_once(":function:")
        .map(|(_, name)| name)
        .unwrap_or(arn)
}

fn in_flight_text(flight: Option<&InFlight>, now: SystemTime) -> String {
    match flight {
        None => "-".into(),
        Some(f) if f.on_current => "label left on current".into(),
        Some(f) => {
            let value = match f.has_value {
                Some(true) => "with value",
                Some(false) => "no value",
                None => "value ?",
            };
            let age = f
                .since
                .and_then(|t| now.duration_since(t).ok())
                .map(|a| format!("{} ago, ", health::human(a)))
                .unwrap_or_default();
            format!("{}… {age}{value}", &f.version[..f.version.len().min(8)])
        }
    }
}

/// The table for people, and for each secret that needs attention the
/// doctor command that says more (with the options that made it stuck).
pub fn table(lines: &[Line], commands: &Commands, stuck_after_minutes: u64) -> String {
    let now = SystemTime::now();
    let rows: Vec<[String; 9]> = lines
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                l.health.word().to_owned(),
                if l.facts.rotation_enabled {
                    "on"
                } else {
                    "off"
                }
                .to_owned(),
                l.facts
                    .function
                    .as_deref()
                    .map(function_name)
                    .unwrap_or("-")
                    .to_owned(),
                l.schedule.clone().unwrap_or_else(|| "-".into()),
                date(l.facts.last_rotated),
                date(l.facts.next_rotation),
                window::cell(l.window.as_ref()),
                in_flight_text(l.facts.in_flight.as_ref(), now),
            ]
        })
        .collect();
    let head = [
        "SECRET",
        "HEALTH",
        "ROTATION",
        "FUNCTION",
        "SCHEDULE",
        "LAST ROTATED",
        "NEXT",
        "WINDOW",
        "IN FLIGHT",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut put = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    put(head.to_vec());
    for row in &rows {
        put(row.iter().map(String::as_str).collect());
    }
    for l in lines.iter().filter(|l| l.health.needs_attention()) {
        let mut doctor = vec!["doctor".to_owned(), l.name.clone()];
        if stuck_after_minutes != STUCK_AFTER_MINUTES {
            doctor.extend([
                "--stuck-after-minutes".to_owned(),
                stuck_after_minutes.to_string(),
            ]);
        }
        let reasons: Vec<&str> = l.reasons.iter().map(|r| r.what.as_str()).collect();
        out.push_str(&format!(
            "{}: {}; see `{}`\n",
            l.name,
            reasons.join("; "),
            commands.rotor(&doctor)
        ));
    }
    for l in lines {
        if let Some(window::WindowState::Invalid(why)) = &l.window {
            out.push_str(&format!(
                "{}: its rotation window cannot be used, so rotation-scheduler skips it: {why}\n",
                l.name
            ));
        }
        let Some(after) = &l.after else { continue };
        let actions: Vec<String> = after
            .actions
            .iter()
            .map(|(entry, outcome)| format!("{entry} {outcome}"))
            .collect();
        let version = after.version.as_deref().unwrap_or("none yet");
        out.push_str(&format!(
            "{}: after-rotation actions (last run for version {version}): {}\n",
            l.name,
            actions.join(", ")
        ));
    }
    let attention = lines.iter().filter(|l| l.health.needs_attention()).count();
    out.push_str(&format!(
        "{} secrets, {attention} needing attention\n",
        lines.len()
    ));
    out
}

/// The document for scripts (README: "JSON output"): per secret, its health
/// word and the findings behind it, by the codes doctor uses; `attention`
/// says whether any secret needs it (the exit code), `counts` how many
/// secrets have each word.
pub fn to_json(lines: &[Line]) -> serde_json::Value {
    let rfc = |t: Option<SystemTime>| {
        t.and_then(|t| DateTime::from(t).fmt(DateTimeFormat::DateTime).ok())
    };
    let mut counts = serde_json::Map::new();
    for health in [
        Health::Ok,
        Health::Warning,
        Health::Overdue,
        Health::Stuck,
        Health::Misconfigured,
    ] {
        let n = lines.iter().filter(|l| l.health == health).count();
        counts.insert(health.word().to_owned(), json!(n));
    }
    json!({
        "secrets": lines.iter().map(|l| json!({
            "arn": l.arn,
            "name": l.name,
            "health": l.health,
            "findings": l.reasons,
            "rotation_enabled": l.facts.rotation_enabled,
            "function": l.facts.function,
            "kind": l.kind.map(lambda::Kind::name),
            "schedule": l.schedule,
            "last_rotated": rfc(l.facts.last_rotated),
            "next_rotation": rfc(l.facts.next_rotation),
            "window": window::to_json(l.window.as_ref()),
            "in_flight": l.facts.in_flight.as_ref().map(|f| json!({
                "version": f.version,
                "on_current": f.on_current,
                "has_value": f.has_value,
                "since": rfc(f.since),
            })),
            "after_actions": l.after.as_ref().map(|a| json!({
                "version": a.version,
                "actions": a.actions.iter().map(|(entry, outcome)| json!({
                    "entry": entry,
                    "outcome": outcome,
                })).collect::<Vec<_>>(),
            })),
        })).collect::<Vec<_>>(),
        "attention": lines.iter().any(|l| l.health.needs_attention()),
        "counts": counts,
    })
}
