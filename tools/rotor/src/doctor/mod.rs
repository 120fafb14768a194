//! `rotor doctor SECRET [--connect] [--fix [--yes]]`: why a secret's rotation
//! is stuck or would fail, and the exact command that fixes each problem.

pub mod connect;
pub mod findings;
pub mod fix;
pub mod lambda;

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use rotor_core::labels::AWSCURRENT;
use serde_json::json;

use crate::clients::Clients;
use crate::commands::Commands;
use crate::endpoint::parse_endpoint;
use crate::status::STUCK_AFTER_MINUTES;
use crate::status::health::{Health, human};
use connect::Checked;
use findings::{Examination, Finding, Options};
use lambda::{Function, Kind};

/// `rotor doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The secret's ARN or name.
    pub secret_id: String,
    /// Also perform testSecret's check against AWSCURRENT, changing nothing:
    /// a database or Redis login, or the provider's token call. A
    /// generic-rotation secret has nothing to log in to, and an ElastiCache or
    /// MemoryDB user's secret without a host nowhere to log in at: doctor
    /// says so.
    #[arg(long)]
    pub connect: bool,
    /// Apply the repairs that cannot lose a working credential, each shown
    /// and confirmed first.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: do not ask.
    #[arg(long, requires = "fix")]
    pub yes: bool,
    /// The Secrets Manager and Lambda endpoint (an emulator such as moto);
    /// AWS's, with the default credential chain, when absent.
    #[arg(long, value_parser = parse_endpoint)]
    pub endpoint: Option<String>,
    /// Which rotor function the secret is for, when its Lambda metadata does
    /// not say: rds, oauth, redis or generic.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// With --fix against an emulator: resume with this function binary
    /// (name beside rotor, or path), as `rotor rotate --function` does.
    #[arg(long, requires = "fix")]
    pub function: Option<String>,
    /// Extra environment for --function, as NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = crate::rotate::parse_env, requires = "function")]
    pub env: Vec<(String, String)>,
    /// How many minutes a rotation may be in flight before doctor treats it
    /// as stuck (and --fix may touch it).
    #[arg(long, default_value_t = STUCK_AFTER_MINUTES)]
    pub stuck_after_minutes: u64,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--kind` named no rotor function.
#[derive(Debug, thiserror::Error)]
#[error("{0:?}: use rds, oauth, redis or generic")]
pub struct UnknownKind(String);

fn parse_kind(text: &str) -> Result<Kind, UnknownKind> {
    Kind::parse(text).ok_or_else(|| UnknownKind(text.to_owned()))
}

/// Runs `rotor doctor`; `Ok(true)` when nothing needs attention (after any
/// repairs).
pub async fn run(args: &DoctorArgs) -> anyhow::Result<bool> {
    let clients = Clients::new(args.endpoint.as_deref()).await?;
    if let Some(function) = &args.function {
        // A mistyped binary is said before anything is examined or repaired.
        crate::function::locate_function(function)?;
    }
    let options = Options {
        kind: args.kind,
        stuck_after: Duration::from_secs(args.stuck_after_minutes * 60),
        commands: Commands::new(clients.endpoint.as_deref()),
    };
    let mut exam = findings::examine(&clients, &args.secret_id, &options).await?;
    let mut out = String::new();
    if args.fix {
        if !args.json {
            out.push_str(&text(&exam));
        }
        let fix = fix::FixOptions {
            yes: args.yes,
            function: args.function.clone(),
            env: args.env.clone(),
            step_timeout: Duration::from_secs(30),
        };
        let done = fix::apply_all(&clients, &exam, &options, &fix).await?;
        exam = findings::examine(&clients, &exam.arn, &options).await?;
        if !args.json {
            out.push_str("\n--fix:\n");
            out.push_str(&done);
            out.push_str("\nafterwards:\n");
        }
    }
    if args.connect {
        connect(&clients, &mut exam).await;
        exam.findings.sort_by_key(|f| std::cmp::Reverse(f.health));
    }
    if args.json {
        out.push_str(&to_json(&exam).to_string());
        out.push('\n');
    } else {
        out.push_str(&text(&exam));
    }
    print!("{out}");
    Ok(!findings::needs_attention(&exam))
}

async fn connect(clients: &Clients, exam: &mut Examination) {
    let Some(kind) = exam.kind else {
        exam.notes
            .push("--connect: which function the secret is for is unknown; give --kind".into());
        return;
    };
    if exam.findings.iter().any(|f| f.code == "current-unparsable") {
        exam.notes.push(format!(
            "--connect: not checked: AWSCURRENT is not a valid {} secret (see the findings)",
            kind.name()
        ));
        return;
    }
    let value = findings::read(clients, &exam.arn, AWSCURRENT)
        .await
        .ok()
        .flatten();
    let Some(value) = value else {
        exam.notes
            .push("--connect: AWSCURRENT could not be read (see the findings)".into());
        return;
    };
    match connect::check(kind, &value).await {
        Ok(Checked::Works(proved)) => {
            let note = format!("--connect: AWSCURRENT works: {proved}");
            exam.notes.push(note)
        }
        Ok(Checked::NotChecked(why)) => {
            let note = format!("--connect: not checked: {why}");
            exam.notes.push(note)
        }
        Err(problem) => exam.findings.push(Finding::new(
            "current-does-not-work",
            Health::Misconfigured,
            format!("AWSCURRENT's credential does not work: {problem}"),
            "whatever reads the secret fails now, and a rotation (whose steps log in with it, or with the master) will too",
            vec![
                "fix the target or the value by hand (the message names what failed); if the pending version holds the working credential, finish that rotation instead (see pending findings)".into(),
            ],
        )),
    }
}

fn date(t: Option<SystemTime>) -> String {
    use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
    t.and_then(|t| DateTime::from(t).fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| "-".into())
}

/// The account for people.
pub fn text(exam: &Examination) -> String {
    let mut out = String::new();
    let f = &exam.facts;
    let _ = writeln!(out, "secret    {} ({})", exam.name, exam.arn);
    let _ = writeln!(
        out,
        "rotation  {}{}, last {}, next {}",
        if f.rotation_enabled { "on" } else { "off" },
        f.every_days
            .map(|d| format!(", every {d} days"))
            .unwrap_or_default(),
        date(f.last_rotated),
        date(f.next_rotation)
    );
    match (&f.function, &exam.function) {
        (None, _) => {
            let _ = writeln!(out, "function  none");
        }
        (Some(arn), Some(Function::Found(facts))) => {
            let _ = writeln!(
                out,
                "function  {arn}: {}, timeout {}, Secrets Manager may invoke it: {}",
                facts
                    .kind
                    .or(exam.kind.filter(|k| facts.candidates.contains(k)))
                    .map(Kind::name)
                    .unwrap_or("not a rotor function"),
                facts
                    .timeout
                    .map(|t| format!("{t} s"))
                    .unwrap_or_else(|| "?".into()),
                match facts.invocable {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "unknown",
                }
            );
        }
        (Some(arn), Some(Function::Missing)) => {
            let _ = writeln!(out, "function  {arn}: does not exist");
        }
        (Some(arn), _) => {
            let _ = writeln!(out, "function  {arn}: unknown");
        }
    }
    let _ = writeln!(out, "versions");
    let now = SystemTime::now();
    for (version, labels) in f.versions.iter() {
        let extra = match &f.in_flight {
            Some(p) if p.version == version && !p.on_current => format!(
                "   ({}{})",
                match p.has_value {
                    Some(true) => "has a value",
                    Some(false) => "no value",
                    None => "value unknown",
                },
                p.since
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|a| format!(", created {} ago", human(a)))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        let _ = writeln!(out, "    {version:<38} {}{extra}", labels.join(" "));
    }
    for note in &exam.notes {
        let _ = writeln!(out, "note      {note}");
    }
    if exam.findings.is_empty() {
        let _ = writeln!(out, "no findings");
    } else {
        let _ = writeln!(out, "{} finding(s)", exam.findings.len());
    }
    for (n, finding) in exam.findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. [{}] {}\n   why: {}",
            n + 1,
            finding.health.word(),
            finding.what,
            finding.why
        );
        for command in &finding.fix {
            let _ = writeln!(out, "   fix: {command}");
        }
    }
    out
}

/// The document for scripts (README: "JSON output"): the secret, its
/// versions, the notes, the findings (code, health word, what, why, fix, and
/// the repair --fix would apply), the worst health word, and whether anything
/// needs attention (the exit code).
pub fn to_json(exam: &Examination) -> serde_json::Value {
    json!({
        "arn": exam.arn,
        "name": exam.name,
        "rotation_enabled": exam.facts.rotation_enabled,
        "function": exam.facts.function,
        "kind": exam.kind.map(Kind::name),
        "versions": exam.facts.versions.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "notes": exam.notes,
        "findings": exam.findings,
        "health": findings::health(exam),
        "attention": findings::needs_attention(exam),
    })
}
