//! Rotation windows: the real `rotation-scheduler` binary, over the Lambda
//! Runtime API, against moto, starts a due rotation only while the secret's
//! window is open, whether the window comes from its tag (`rotor:window`, UTC
//! hours) or from its own `RotationRules` (`ScheduleExpression` and
//! `Duration`), or both; a due secret kept waiting still counts as overdue in
//! the run's metrics; a malformed window skips the secret, never "any time".
//!
//! The windows are chosen around the real clock (the run's moment is the
//! real time): open from an hour before the test's hour to two hours after
//! it, closed from three hours after it, so a run a few seconds later, even
//! in the next hour, sees the same.
//!
//! Where moto differs from AWS (see tests/scheduler.rs for the rest): moto 5
//! forgets RotationRules' `ScheduleExpression` and `Duration`, and turns
//! rotation on only for `AutomaticallyAfterDays`; AWS keeps them, answers
//! them in DescribeSecret and ListSecrets, and turns rotation on.
//! scripts/moto_server.py makes moto do as AWS does.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use aws_sdk_secretsmanager::types::RotationRulesType;
use rotor_cli::function::{LocalFunction, function_binary};
use rotor_cli::runtime_api::Outcome;
use rotor_core::labels::AWSPENDING;
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, SecretString};
use rotor_testbed::moto::{Moto, local_env};
use rotor_tests::emf::await_emitted;
use rotor_tests::{token, unique};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const FLEET: &str = "rotor:fleet";
const POLICY: &str = "rotor:rotation-policy";
const WINDOW: &str = "rotor:window";
/// A rotation function that exists nowhere: moto's RotateSecret stages the
/// version and answers an error, which the scheduler reports as started
/// with a note (see tests/scheduler.rs).
const NOWHERE: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-windows-nowhere";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_secs(secs)
        .fmt(DateTimeFormat::DateTime)
        .expect("a date")
}

/// `HH:00` for `hours` hours after midnight, on a 24-hour clock.
fn clock(hours: i64) -> String {
    format!("{:02}:00", hours.rem_euclid(24))
}

/// Cron's number for the weekday of day `day` since the epoch (1 is Sunday).
fn cron_weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7) + 1
}

struct Bed {
    moto: Moto,
    client: Client,
    store: AwsStore,
    fleet: String,
}

impl Bed {
    fn new() -> Bed {
        let moto = Moto::start().expect("cannot start moto");
        let client = moto.client();
        Bed {
            store: AwsStore::new(client.clone()),
            client,
            moto,
            fleet: unique("windows"),
        }
    }

    /// A secret of the fleet created `age` seconds ago, with `tags` besides
    /// the fleet's and a 30-day policy, its rotation configured with
    /// [`NOWHERE`] and `rules` (a ScheduleExpression and a Duration).
    async fn secret(
        &mut self,
        name: &str,
        age: i64,
        tags: &[(&str, &str)],
        rules: (Option<&str>, Option<&str>),
    ) -> String {
        self.moto.set_clock(-age).expect("moto shifts its clock");
        let mut all = vec![(FLEET, self.fleet.as_str()), (POLICY, "30d")];
        all.extend_from_slice(tags);
        let name = unique(name);
        let arn = self
            .store
            .create_secret(&name, &SecretString::from("initial"), &all)
            .await
            .expect("create secret");
        configure(&self.client, &arn, rules).await;
        self.moto.set_clock(0).expect("moto shifts its clock");
        name
    }
}

/// Configures a secret's rotation with [`NOWHERE`] as a deployer does, with a
/// schedule (a ScheduleExpression, else 30 days) and a window Duration, and
/// unstages the version moto stages on the way (see `configure_rotation`).
async fn configure(
    client: &Client,
    arn: &str,
    (expression, duration): (Option<&str>, Option<&str>),
) {
    let rules = match expression {
        Some(expression) => RotationRulesType::builder()
            .schedule_expression(expression)
            .set_duration(duration.map(str::to_owned)),
        None => RotationRulesType::builder().automatically_after_days(30),
    };
    let version = token();
    let rotated = client
        .rotate_secret()
        .secret_id(arn)
        .client_request_token(&version)
        .rotation_lambda_arn(NOWHERE)
        .rotation_rules(rules.build())
        .rotate_immediately(false)
        .send()
        .await;
    if let Err(e) = rotated {
        assert_eq!(
            e.code(),
            Some("ResourceNotFoundException"),
            "configure {arn}: {e:?}"
        );
    }
    client
        .update_secret_version_stage()
        .secret_id(arn)
        .version_stage(AWSPENDING)
        .remove_from_version_id(&version)
        .send()
        .await
        .expect("unstage");
}

async fn start_scheduler(endpoint: &str, extra: &[(&str, &str)]) -> LocalFunction {
    let mut env = local_env(endpoint);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    LocalFunction::start(&function_binary("rotation-scheduler"), &env)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot start rotation-scheduler: {e:#}; build it with cargo build --workspace")
        })
}

async fn run(function: &LocalFunction, event: Value) -> Value {
    let invocation = function
        .invoke(&event, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("invocation failed: {e}\n{}", function.output()));
    match invocation.outcome {
        Outcome::Response(report) => report,
        Outcome::Error {
            error_type,
            error_message,
        } => panic!(
            "the run failed: {error_type}: {error_message}\n{}",
            function.output()
        ),
    }
}

/// The report's skipped entries by name.
fn skipped(report: &Value) -> BTreeMap<String, Value> {
    report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or_default().to_owned(), e.clone()))
        .collect()
}

fn started(report: &Value, list: &str) -> Vec<String> {
    let mut names: Vec<String> = report[list]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// Whether moto holds a version of `name` staged AWSPENDING.
async fn pending(client: &Client, name: &str) -> bool {
    let described = client
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .expect("describe");
    described
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .any(|(_, labels)| labels.iter().any(|l| l == AWSPENDING))
}

/// Due secrets start only inside their windows, from the tag, the rotation
/// rules or both; the others are skipped with when their window opens, or
/// with what is wrong with it, are left untouched, and count as overdue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_rotations_start_only_inside_their_windows() {
    let mut bed = Bed::new();
    let started_at = now();
    let hour = started_at.rem_euclid(DAY) / HOUR;
    let this_hour = started_at - started_at.rem_euclid(HOUR);
    let today = started_at.div_euclid(DAY);
    let open = format!("{}-{}", clock(hour - 1), clock(hour + 2));
    let closed = format!("{}-{}", clock(hour + 3), clock(hour + 5));
    // In three days, from midnight.
    let later = format!("cron(0 0 ? * {} *)", cron_weekday(today + 3));
    let due = 40 * DAY;
    let none = (None, None);

    let tag_open = bed.secret("tag-open", due, &[(WINDOW, &open)], none).await;
    let tag_closed = bed
        .secret("tag-closed", due, &[(WINDOW, &closed)], none)
        .await;
    let malformed = bed
        .secret("malformed", due, &[(WINDOW, "2am-4am")], none)
        .await;
    // A schedule in days with no Duration: open all day, every day.
    let rules_open = bed
        .secret("rules-open", due, &[], (Some("cron(0 0 * * ? *)"), None))
        .await;
    let rules_closed = bed
        .secret("rules-closed", due, &[], (Some(&later), Some("2h")))
        .await;
    let both_closed = bed
        .secret("both-closed", due, &[(WINDOW, &open)], (Some(&later), None))
        .await;
    let rules_refused = bed
        .secret(
            "rules-refused",
            due,
            &[],
            (Some("cron(30 2 ? * SUN *)"), None),
        )
        .await;
    let not_due = bed.secret("not-due", DAY, &[(WINDOW, &closed)], none).await;
    let never = bed
        .secret(
            "never",
            due,
            &[(WINDOW, "10:00-11:00")],
            (Some("cron(0 2 ? * SUN *)"), Some("3h")),
        )
        .await;

    let filter = format!("{FLEET}={}", bed.fleet);
    let env = [
        ("TAG_FILTER", filter.as_str()),
        ("ROTATION_FUNCTION_ARNS", NOWHERE),
    ];
    let function = start_scheduler(bed.moto.endpoint(), &env).await;
    let dry = run(&function, json!({"dry_run": true})).await;
    assert_eq!(
        started(&dry, "would_start"),
        {
            let mut v = vec![tag_open.clone(), rules_open.clone()];
            v.sort();
            v
        },
        "{dry}"
    );
    let report = run(&function, json!({})).await;
    let mut expected = vec![tag_open.clone(), rules_open.clone()];
    expected.sort();
    assert_eq!(started(&report, "started"), expected, "{report}");

    let skips = skipped(&report);
    let reason = |name: &str| {
        skips[name]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let detail = |name: &str| {
        skips[name]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let opens = |name: &str| skips[name]["window_opens_at"].as_str().map(str::to_owned);
    for name in [&tag_closed, &rules_closed, &both_closed] {
        assert_eq!(reason(name), "outside_window", "{name}: {}", skips[name]);
    }
    for name in [&malformed, &rules_refused, &never] {
        assert_eq!(reason(name), "bad_window", "{name}: {}", skips[name]);
        assert_eq!(opens(name), None);
    }
    assert_eq!(reason(&not_due), "not_due");

    // When each window opens, and what each message says.
    assert_eq!(opens(&tag_closed), Some(rfc3339(this_hour + 3 * HOUR)));
    assert_eq!(opens(&rules_closed), Some(rfc3339((today + 3) * DAY)));
    let both = opens(&both_closed).expect("an opening");
    assert!(
        both >= rfc3339((today + 3) * DAY) && both < rfc3339((today + 4) * DAY),
        "{both}"
    );
    let message = detail(&tag_closed);
    for part in [
        tag_closed.as_str(),
        "outside its rotation window",
        &format!("tag {WINDOW}={closed}"),
        "policy 30d",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(
        detail(&rules_closed).contains(&format!("RotationRules {later} for 2h")),
        "{}",
        detail(&rules_closed)
    );
    let message = detail(&malformed);
    for part in [
        malformed.as_str(),
        "tag rotor:window=\"2am-4am\"",
        "rotor:window=02:00-04:00",
        "remove the tag",
        "does not rotate it",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(
        detail(&rules_refused)
            .contains("RotationRules.ScheduleExpression \"cron(30 2 ? * SUN *)\"")
            && detail(&rules_refused).contains("minutes must be 0"),
        "{}",
        detail(&rules_refused)
    );
    assert!(
        detail(&never).contains("never overlap"),
        "{}",
        detail(&never)
    );

    // Nothing outside its window was touched in moto.
    for name in [&tag_open, &rules_open] {
        assert!(pending(&bed.client, name).await, "{name} started");
    }
    for name in [
        &tag_closed,
        &malformed,
        &rules_closed,
        &both_closed,
        &rules_refused,
        &not_due,
        &never,
    ] {
        assert!(!pending(&bed.client, name).await, "{name} was started");
    }

    // Every due secret is overdue (ten days past due), inside its window or not.
    assert_eq!(report["counts"]["overdue"], 8, "{report}");
    assert_eq!(report["counts"]["skipped_by_reason"]["outside_window"], 3);
    assert_eq!(report["counts"]["skipped_by_reason"]["bad_window"], 3);
    let emitted = await_emitted(&function, 1).await;
    let run_doc = &emitted.docs[0];
    assert_eq!(run_doc["Overdue"], 8.0, "{run_doc}");
    assert_eq!(run_doc["RotationsStarted"], 2.0, "{run_doc}");
    let by_reason: BTreeMap<String, f64> = emitted.docs[1..]
        .iter()
        .map(|d| {
            (
                d["Reason"].as_str().unwrap_or_default().to_owned(),
                d["Skipped"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(by_reason.get("outside_window"), Some(&3.0), "{by_reason:?}");
    assert_eq!(by_reason.get("bad_window"), Some(&3.0), "{by_reason:?}");
    assert_eq!(by_reason.get("not_due"), Some(&1.0), "{by_reason:?}");
}

/// `WINDOW_TAG` names the tag: another tag with the same text is no window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_tag_is_the_deployers_setting() {
    let mut bed = Bed::new();
    let hour = now().rem_euclid(DAY) / HOUR;
    let closed = format!("{}-{}", clock(hour + 3), clock(hour + 5));
    let team = bed
        .secret("team", 40 * DAY, &[("team:window", &closed)], (None, None))
        .await;
    let default_tag = bed
        .secret("default-tag", 40 * DAY, &[(WINDOW, &closed)], (None, None))
        .await;
    let filter = format!("{FLEET}={}", bed.fleet);
    let env = [
        ("TAG_FILTER", filter.as_str()),
        ("ROTATION_FUNCTION_ARNS", NOWHERE),
        ("WINDOW_TAG", "team:window"),
    ];
    let function = start_scheduler(bed.moto.endpoint(), &env).await;
    let report = run(&function, json!({"dry_run": true})).await;
    assert_eq!(
        started(&report, "would_start"),
        vec![default_tag],
        "{report}"
    );
    assert_eq!(
        skipped(&report)[&team]["reason"],
        "outside_window",
        "{report}"
    );
}

/// Runs `rotor status` against the bed's moto; returns stdout.
async fn rotor_status(bed: &Bed, args: &[&str]) -> String {
    let out = tokio::process::Command::new(function_binary("rotor"))
        .arg("status")
        .args(args)
        .args(["--endpoint", bed.moto.endpoint()])
        .env(rotor_core::settings::LOOPBACK_VAR, "true")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run rotor; build it first with cargo build --workspace --bins");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "rotor status {args:?} failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rotor status` shows each secret's next window as the scheduler reads it,
/// in the table and in `--json`, and why a window cannot be used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotor_status_shows_the_next_window() {
    let mut bed = Bed::new();
    let started_at = now();
    let hour = started_at.rem_euclid(DAY) / HOUR;
    let this_hour = started_at - started_at.rem_euclid(HOUR);
    let today = started_at.div_euclid(DAY);
    let closed = format!("{}-{}", clock(hour + 3), clock(hour + 5));
    let sunday_like = format!("cron(0 2 ? * {} *)", cron_weekday(today + 3));
    let none = (None, None);
    let prefix = bed.fleet.clone();
    let tagged = bed
        .secret(&format!("{prefix}-tagged"), DAY, &[(WINDOW, &closed)], none)
        .await;
    let rules = bed
        .secret(
            &format!("{prefix}-rules"),
            DAY,
            &[],
            (Some(&sunday_like), Some("3h")),
        )
        .await;
    let malformed = bed
        .secret(
            &format!("{prefix}-malformed"),
            DAY,
            &[(WINDOW, "soon")],
            none,
        )
        .await;
    let plain = bed.secret(&format!("{prefix}-plain"), DAY, &[], none).await;

    let out = rotor_status(&bed, &["--prefix", &prefix, "--json"]).await;
    let doc: Value = serde_json::from_str(&out).expect("status --json");
    let by_name: BTreeMap<String, Value> = doc["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["window"].clone(),
            )
        })
        .collect();
    assert_eq!(by_name.len(), 4, "{doc}");
    let tag_window = &by_name[&tagged];
    assert_eq!(tag_window["open"], false, "{tag_window}");
    assert_eq!(tag_window["opens_at"], rfc3339(this_hour + 3 * HOUR));
    assert_eq!(tag_window["closes_at"], rfc3339(this_hour + 5 * HOUR));
    assert_eq!(tag_window["window"], format!("tag {WINDOW}={closed}"));
    let rules_window = &by_name[&rules];
    assert_eq!(
        rules_window["opens_at"],
        rfc3339((today + 3) * DAY + 2 * HOUR)
    );
    assert_eq!(
        rules_window["closes_at"],
        rfc3339((today + 3) * DAY + 5 * HOUR)
    );
    assert_eq!(
        rules_window["window"],
        format!("RotationRules {sunday_like} for 3h")
    );
    let error = by_name[&malformed]["error"].as_str().unwrap_or_default();
    assert!(error.contains("tag rotor:window=\"soon\""), "{error}");
    assert_eq!(by_name[&plain], Value::Null);

    let table = rotor_status(&bed, &["--prefix", &prefix]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("WINDOW"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .to_owned()
    };
    let opens = rfc3339(this_hour + 3 * HOUR).replace('T', " ");
    assert!(row(&tagged).contains(&opens[..16]), "{table}");
    assert!(row(&malformed).contains("invalid"), "{table}");
    assert!(
        table.contains(&format!("{malformed}: its rotation window cannot be used")),
        "{table}"
    );
}
