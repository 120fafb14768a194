//! The real `rotation-scheduler` binary, over the Lambda Runtime API, against
//! moto: which rotations it starts among hundreds of tagged secrets, the hourly
//! limit per secret, and throttling injected by a proxy in front of moto.
//!
//! What "started" means here: the secrets' rotation is configured (as a
//! deployer configures it, [`Fleet::configure`]) with a function that moto does
//! not know, and that function is in the scheduler's `ROTATION_FUNCTION_ARNS`.
//! moto's RotateSecret then stages the new version as AWSPENDING and answers
//! ResourceNotFoundException, where AWS would invoke the function.
//! The scheduler finds its version staged (DescribeSecret) and reports the
//! rotation as started, with the error in a `note`; there is no test mode in
//! the binary. The ground truth is moto's state: the tests count the AWSPENDING
//! versions staged under the tokens the report names, and check that every
//! other secret is untouched.
//!
//! Where moto differs from AWS, and what the tests do about it:
//! * Due dates need secrets created and rotated in the past, and moto 5 has no
//!   clock control without freezegun. Each test here runs its own moto whose
//!   clock it shifts ([`Moto::set_clock`]); one per test, since the clock is global.
//! * moto's ListSecretVersionIds gives every version the current time as its
//!   CreatedDate. AWS gives the version's creation time, which is what the
//!   hourly limit counts, so the shifted moto answers with the real times.
//! * moto's RotateSecret restages AWSPENDING while another rotation is in
//!   progress (its check is inverted: it refuses only when AWSPENDING sits on the
//!   AWSCURRENT version); AWS refuses. The in-progress skips seen here are the
//!   scheduler's own check, and the tests check the pending version is kept.
//! * moto's RotateSecret without a function promotes a value-less version at
//!   once and sets LastRotatedDate; AWS requires a function. The tests use it
//!   only to give secrets a LastRotatedDate in the past.
//! * moto's RotateSecret without a function forgets the configured one (AWS
//!   uses it); scripts/moto_server.py makes it use it, as AWS does. moto turns
//!   rotation on only when RotateSecret carries a schedule (AWS turns it on for
//!   any RotateSecret), so configuring rotation here sends one.
//! * moto never sets LastRotatedDate for a rotation whose function it could not
//!   invoke, so a rotation finished by hand here leaves the secret due. The
//!   hourly-limit test uses that to start one secret again and again; against
//!   AWS a finished rotation moves LastRotatedDate.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use rotor_cli::function::{LocalFunction, function_binary};
use rotor_cli::runtime_api::Outcome;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, SecretStore, SecretString};
use rotor_testbed::moto::{Moto, configure_rotation, local_env};
use rotor_testbed::sm_proxy::{Fault, SmProxy};
use rotor_tests::{token, unique};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const FLEET: &str = "rotor:fleet";
const POLICY: &str = "rotor:rotation-policy";
/// The function `AwsStore::begin_rotation` configures while it stages a
/// rotation (the secrets that [`Fleet::in_progress`] makes busy).
const LOCAL_RUNNER: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotor-local-runner";
/// A rotation function that exists nowhere (see the module's comment).
const NOWHERE: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-scheduler-test-nowhere";
/// The scheduler's `retry::MAX_ATTEMPTS`.
const MAX_ATTEMPTS: u32 = 6;

/// What a test expects the scheduler to do with a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Start,
    Skip(&'static str),
    Fail,
    /// Not selected by the tag filter: absent from the report, never touched.
    Ignored,
}

struct TestSecret {
    arn: String,
    name: String,
    expect: Expect,
}

/// A moto with a fleet of secrets created at chosen moments in the past.
struct Fleet {
    moto: Moto,
    store: AwsStore,
    client: Client,
    secrets: Vec<TestSecret>,
}

impl Fleet {
    fn new() -> Fleet {
        let moto = Moto::start().expect("cannot start moto");
        let client = moto.client();
        Fleet {
            store: AwsStore::new(client.clone()),
            client,
            moto,
            secrets: Vec::new(),
        }
    }

    /// Creates `count` secrets `age` seconds ago (by moto's clock), tagged into
    /// `fleet` (if any) with the policies in turn (`None`: no policy tag).
    async fn group(
        &mut self,
        name: &str,
        count: usize,
        age: i64,
        fleet: Option<&str>,
        policies: &[Option<&str>],
        expect: Expect,
    ) -> Vec<String> {
        self.moto.set_clock(-age).expect("moto shifts its clock");
        let mut arns = Vec::new();
        for i in 0..count {
            let mut tags: Vec<(&str, &str)> = Vec::new();
            if let Some(fleet) = fleet {
                tags.push((FLEET, fleet));
            }
            if let Some(policy) = policies[i % policies.len()] {
                tags.push((POLICY, policy));
            }
            let name = unique(&format!("{name}-{i:03}"));
            let arn = self
                .store
                .create_secret(&name, &SecretString::from("initial"), &tags)
                .await
                .expect("create secret");
            self.secrets.push(TestSecret {
                arn: arn.clone(),
                name,
                expect,
            });
            arns.push(arn);
        }
        self.moto.set_clock(0).expect("moto shifts its clock");
        arns
    }

    /// Gives secrets a LastRotatedDate `age` seconds ago (a moto-only way: see
    /// the module's comment).
    async fn rotated(&mut self, arns: &[String], age: i64) {
        self.moto.set_clock(-age).expect("moto shifts its clock");
        for arn in arns {
            self.client
                .rotate_secret()
                .secret_id(arn)
                .send()
                .await
                .expect("rotate without a function");
        }
        self.moto.set_clock(0).expect("moto shifts its clock");
    }

    /// Configures each secret's rotation with `function`, `age` seconds ago, as
    /// a deployer does (see [`configure_rotation`] for moto's part in it).
    async fn configure(&mut self, arns: &[String], function: &str, age: i64) {
        self.moto.set_clock(-age).expect("moto shifts its clock");
        for arn in arns {
            configure_rotation(&self.client, arn, function)
                .await
                .expect("configure rotation");
        }
        self.moto.set_clock(0).expect("moto shifts its clock");
    }

    /// Each secret's rotation settings in moto: (RotationEnabled, RotationLambdaARN).
    async fn rotation_settings(&self) -> BTreeMap<String, (bool, Option<String>)> {
        let mut settings = BTreeMap::new();
        for secret in &self.secrets {
            let out = self
                .client
                .describe_secret()
                .secret_id(&secret.arn)
                .send()
                .await
                .expect("describe");
            let function = out
                .rotation_lambda_arn()
                .filter(|f| !f.is_empty())
                .map(str::to_owned);
            settings.insert(
                secret.arn.clone(),
                (out.rotation_enabled().unwrap_or(false), function),
            );
        }
        settings
    }

    /// Stages a rotation on each secret, as RotateSecret does, `age` seconds ago.
    async fn in_progress(&mut self, arns: &[String], age: i64) -> BTreeMap<String, String> {
        self.moto.set_clock(-age).expect("moto shifts its clock");
        let mut pending = BTreeMap::new();
        for arn in arns {
            let t = token();
            self.store.begin_rotation(arn, &t).await.expect("stage");
            pending.insert(arn.clone(), t);
        }
        self.moto.set_clock(0).expect("moto shifts its clock");
        pending
    }

    /// Writes `count` new versions of each secret `age` seconds ago.
    async fn new_versions(&mut self, arns: &[String], count: usize, age: i64) {
        self.moto.set_clock(-age).expect("moto shifts its clock");
        for arn in arns {
            for _ in 0..count {
                let value = SecretString::from(token());
                self.store
                    .put_value(
                        arn,
                        NewVersion {
                            version_id: &token(),
                            value: &value,
                            labels: &[AWSCURRENT],
                            rotation_token: None,
                        },
                    )
                    .await
                    .expect("put value");
            }
        }
        self.moto.set_clock(0).expect("moto shifts its clock");
    }

    /// Every secret's versions and labels, straight from moto.
    async fn state(&self) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let mut state = BTreeMap::new();
        for secret in &self.secrets {
            let described = self.store.describe(&secret.arn).await.expect("describe");
            let versions = described
                .versions
                .iter()
                .map(|(id, labels)| {
                    let mut labels = labels.to_vec();
                    labels.sort();
                    (id.to_owned(), labels)
                })
                .collect();
            state.insert(secret.arn.clone(), versions);
        }
        state
    }

    fn expected(&self, expect: Expect) -> BTreeSet<String> {
        self.secrets
            .iter()
            .filter(|s| s.expect == expect)
            .map(|s| s.name.clone())
            .collect()
    }

    fn name_of(&self, arn: &str) -> &str {
        self.secrets
            .iter()
            .find(|s| s.arn == arn)
            .map_or("?", |s| s.name.as_str())
    }

    async fn scheduler(&self, endpoint: &str, extra: &[(&str, &str)]) -> LocalFunction {
        start_scheduler(endpoint, extra).await
    }
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

/// One run: the report, or a panic with the function's output.
async fn run(function: &LocalFunction, event: Value) -> Value {
    let invocation = function
        .invoke(&event, Duration::from_secs(300))
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

/// One run that must fail: (error type, message).
async fn failed_run(function: &LocalFunction, event: Value) -> (String, String) {
    let invocation = function
        .invoke(&event, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("invocation failed: {e}\n{}", function.output()));
    match invocation.outcome {
        Outcome::Error {
            error_type,
            error_message,
        } => (error_type, error_message),
        Outcome::Response(report) => panic!("the run succeeded: {report}"),
    }
}

fn names(report: &Value, list: &str) -> BTreeSet<String> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {report}"))
        .iter()
        .map(|entry| entry["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn reasons(report: &Value) -> BTreeMap<String, String> {
    report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Checks the report's started and skipped lists against the expectations.
fn check_decisions(fleet: &Fleet, report: &Value, started_list: &str) {
    assert_eq!(
        names(report, started_list),
        fleet.expected(Expect::Start),
        "{started_list}: exactly the due secrets"
    );
    let reasons = reasons(report);
    for secret in &fleet.secrets {
        match secret.expect {
            Expect::Skip(code) => assert_eq!(
                reasons.get(&secret.name).map(String::as_str),
                Some(code),
                "{}",
                secret.name
            ),
            Expect::Ignored => {
                assert!(
                    !report.to_string().contains(&secret.arn),
                    "{} is outside the tag filter but in the report",
                    secret.name
                );
            }
            Expect::Start | Expect::Fail => assert!(!reasons.contains_key(&secret.name)),
        }
    }
    let selected = fleet
        .secrets
        .iter()
        .filter(|s| s.expect != Expect::Ignored)
        .count();
    assert_eq!(report["selected"], selected);
}

/// Checks moto's state after a run: each started secret gained exactly the
/// reported version, staged as AWSPENDING; every other secret is unchanged.
fn check_started_in_moto(
    fleet: &Fleet,
    report: &Value,
    before: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    after: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
) {
    let mut started = BTreeMap::new();
    for entry in report["started"].as_array().expect("started") {
        let arn = entry["secret"].as_str().expect("secret").to_owned();
        let version = entry["version"].as_str().expect("version").to_owned();
        started.insert(arn, version);
    }
    for secret in &fleet.secrets {
        let (old, new) = (&before[&secret.arn], &after[&secret.arn]);
        match started.get(&secret.arn) {
            Some(version) => {
                let added: Vec<&String> = new.keys().filter(|v| !old.contains_key(*v)).collect();
                assert_eq!(added, vec![version], "{}: one new version", secret.name);
                assert_eq!(new[version], vec![AWSPENDING.to_owned()], "{}", secret.name);
                for (id, labels) in old {
                    let mut kept = labels.clone();
                    kept.retain(|l| l != AWSPENDING);
                    let mut now = new[id].clone();
                    now.retain(|l| l != AWSPENDING);
                    assert_eq!(
                        kept, now,
                        "{}: other versions keep their labels",
                        secret.name
                    );
                }
            }
            None => assert_eq!(old, new, "{} must be untouched", secret.name),
        }
    }
}

/// The scheduler starts exactly the due rotations among 300 tagged secrets: a
/// dry run first (which changes nothing), then the run, then a second run that
/// finds every started rotation in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_exactly_the_due_rotations_among_300_secrets() {
    let setup = Instant::now();
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    let skip = Expect::Skip;
    let thirty = [Some("30d"), Some("720h"), Some("43200m"), Some("2592000s")];
    let week = [Some("7d"), Some("168h"), Some("10080m"), Some("604800s")];
    let bad = [
        Some("167h"),
        Some("366d"),
        Some("99999999999999999999d"),
        Some("30x"),
        Some("6d"),
        Some("thirty"),
        Some("-7d"),
        Some("7.5d"),
        Some("30D"),
        Some(""),
    ];
    fleet
        .group("due", 50, 400 * DAY, payments, &thirty, Expect::Start)
        .await;
    // No policy tag: DEFAULT_POLICY (90d) applies.
    fleet
        .group("default", 30, 400 * DAY, payments, &[None], Expect::Start)
        .await;
    fleet
        .group(
            "default-young",
            10,
            80 * DAY,
            payments,
            &[None],
            skip("not_due"),
        )
        .await;
    fleet
        .group("young", 30, 10 * DAY, payments, &thirty, skip("not_due"))
        .await;
    fleet
        .group(
            "week-due",
            10,
            7 * DAY + HOUR,
            payments,
            &week,
            Expect::Start,
        )
        .await;
    fleet
        .group(
            "week-young",
            10,
            7 * DAY - HOUR,
            payments,
            &week,
            skip("not_due"),
        )
        .await;
    let year = [Some("365d"), Some("8760h")];
    fleet
        .group("year-due", 10, 366 * DAY, payments, &year, Expect::Start)
        .await;
    fleet
        .group(
            "year-young",
            10,
            364 * DAY,
            payments,
            &year,
            skip("not_due"),
        )
        .await;
    fleet
        .group("bad", 30, 400 * DAY, payments, &bad, skip("bad_policy"))
        .await;
    let busy = fleet
        .group(
            "busy",
            30,
            400 * DAY,
            payments,
            &thirty,
            skip("in_progress"),
        )
        .await;
    let pending = fleet.in_progress(&busy, 300 * DAY).await;
    let recent = fleet
        .group(
            "rotated-recently",
            20,
            400 * DAY,
            payments,
            &thirty,
            skip("not_due"),
        )
        .await;
    fleet.rotated(&recent, 10 * DAY).await;
    let old = fleet
        .group(
            "rotated-long-ago",
            10,
            400 * DAY,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    fleet.rotated(&old, 40 * DAY).await;
    // MAX_ROTATIONS_PER_SECRET_PER_HOUR=3: three versions in the last hour stop
    // a due secret, two do not.
    let limited = fleet
        .group(
            "limited",
            10,
            400 * DAY,
            payments,
            &thirty,
            skip("hourly_limit"),
        )
        .await;
    fleet.new_versions(&limited, 3, 0).await;
    let below = fleet
        .group(
            "below-limit",
            10,
            400 * DAY,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    fleet.new_versions(&below, 2, 0).await;
    // ListSecrets' tag filters match prefixes: "payments-eu" comes back, and
    // the scheduler must still leave it out.
    fleet
        .group(
            "other-fleet",
            15,
            400 * DAY,
            Some("payments-eu"),
            &thirty,
            Expect::Ignored,
        )
        .await;
    fleet
        .group("untagged", 15, 400 * DAY, None, &thirty, Expect::Ignored)
        .await;
    assert_eq!(fleet.secrets.len(), 300);
    assert_eq!(fleet.expected(Expect::Start).len(), 120);
    // The deployer configured the fleet's rotation (the busy secrets' through
    // the local runner's staging function, see `in_progress`).
    let configured: Vec<String> = fleet
        .secrets
        .iter()
        .filter(|s| s.expect != Expect::Ignored && !busy.contains(&s.arn))
        .map(|s| s.arn.clone())
        .collect();
    fleet.configure(&configured, NOWHERE, 401 * DAY).await;
    let before = fleet.state().await;
    let setup = setup.elapsed();

    let function = fleet
        .scheduler(
            fleet.moto.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("DEFAULT_POLICY", "90d"),
                ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "3"),
                ("RATE_PER_SECOND", "100"),
                (
                    "ROTATION_FUNCTION_ARNS",
                    &format!("{NOWHERE},{LOCAL_RUNNER}"),
                ),
                ("AWS_LAMBDA_LOG_FORMAT", "json"),
                ("AWS_LAMBDA_LOG_LEVEL", "info"),
            ],
        )
        .await;

    let clock = Instant::now();
    let dry = run(&function, json!({"dry_run": true})).await;
    let dry_time = clock.elapsed();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["started"], json!([]));
    check_decisions(&fleet, &dry, "would_start");
    assert_eq!(fleet.state().await, before, "a dry run changes nothing");

    let clock = Instant::now();
    let report = run(&function, json!({"source": "aws.scheduler"})).await;
    let run_time = clock.elapsed();
    assert_eq!(report["dry_run"], false);
    check_decisions(&fleet, &report, "started");
    assert_eq!(report["failed"], json!([]), "{report}");
    assert_eq!(report["retries"], 0);
    assert_eq!(report["counts"]["started"], 120);
    assert_eq!(report["counts"]["skipped"], 150);
    let after = fleet.state().await;
    check_started_in_moto(&fleet, &report, &before, &after);
    // moto answered every RotateSecret with ResourceNotFoundException after
    // staging the version: the scheduler says so in each entry.
    for entry in report["started"].as_array().unwrap() {
        assert!(
            entry["note"]
                .as_str()
                .is_some_and(|n| n.contains("ResourceNotFoundException")),
            "{entry}"
        );
    }
    for (arn, t) in &pending {
        assert_eq!(
            after[arn].get(t),
            Some(&vec![AWSPENDING.to_owned()]),
            "{}: the rotation in progress is kept",
            fleet.name_of(arn)
        );
    }
    for entry in report["skipped"].as_array().unwrap() {
        if entry["reason"] == "bad_policy" {
            let detail = entry["detail"].as_str().unwrap();
            let name = entry["name"].as_str().unwrap();
            assert!(
                detail.contains(&format!("secret {name}")) && detail.contains(POLICY),
                "{detail}"
            );
        }
    }
    let details: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    for expected in [
        "\"167h\" is 6d 23h; a policy must be between 7d and 365d inclusive",
        "\"366d\" is 366d",
        "\"99999999999999999999d\" is far longer than 365d",
        "\"30x\" is not a whole number followed by one unit",
        "the policy is empty",
        "3 rotations of secret limited-",
    ] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "no skip says {expected:?}"
        );
    }

    // Structured logs: one event per decision, with the secret as a field.
    let logs = function.output();
    let events: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    for (arn, _) in after.iter().filter(|(arn, _)| {
        report["started"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["secret"] == **arn)
    }) {
        assert!(
            events.iter().any(|e| {
                e["fields"]["secret"] == json!(arn)
                    && e["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("started rotation"))
            }),
            "no log event for the start of {arn}"
        );
    }
    assert!(events.iter().any(|e| e["fields"]["reason"] == "bad_policy"));
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "run finished" && e["fields"]["started"] == 120)
    );

    // Again: every rotation just started is in progress, and nothing starts.
    let clock = Instant::now();
    let again = run(&function, json!({})).await;
    let again_time = clock.elapsed();
    assert_eq!(again["started"], json!([]));
    let reasons = reasons(&again);
    for name in fleet.expected(Expect::Start) {
        assert_eq!(reasons.get(&name).map(String::as_str), Some("in_progress"));
    }
    assert_eq!(fleet.state().await, after);
    eprintln!(
        "300 secrets: setup {setup:.1?}, dry run {dry_time:.1?}, run {run_time:.1?} (120 started), second run {again_time:.1?}"
    );
}

/// At most MAX_ROTATIONS_PER_SECRET_PER_HOUR rotations of one secret start in an
/// hour, over several runs; versions older than an hour do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_starts_more_than_the_hourly_limit_of_one_secret() {
    let clock = Instant::now();
    let mut fleet = Fleet::new();
    let due = fleet
        .group(
            "hourly",
            3,
            400 * DAY,
            Some("payments"),
            &[Some("30d")],
            Expect::Start,
        )
        .await;
    fleet.configure(&due, NOWHERE, 400 * DAY).await;
    // Five versions 61 minutes ago: outside the window.
    fleet.new_versions(&due[..1], 5, HOUR + 60).await;
    let function = fleet
        .scheduler(
            fleet.moto.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet"),
                ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "2"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    let mut starts: BTreeMap<String, u32> = BTreeMap::new();
    for round in 1..=4 {
        let report = run(&function, json!({})).await;
        for entry in report["started"].as_array().unwrap() {
            let arn = entry["secret"].as_str().unwrap();
            let version = entry["version"].as_str().unwrap();
            *starts.entry(arn.to_owned()).or_default() += 1;
            // Finish the rotation by hand, as a rotation function's finishSecret
            // would; moto leaves LastRotatedDate alone, so the secret stays due.
            let current = fleet
                .store
                .describe(arn)
                .await
                .unwrap()
                .versions
                .current()
                .unwrap()
                .to_owned();
            fleet
                .client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage(AWSCURRENT)
                .move_to_version_id(version)
                .remove_from_version_id(current)
                .send()
                .await
                .unwrap();
            fleet
                .client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage(AWSPENDING)
                .remove_from_version_id(version)
                .send()
                .await
                .unwrap();
        }
        let reasons = reasons(&report);
        match round {
            1 | 2 => assert_eq!(
                names(&report, "started").len(),
                3,
                "round {round}: {report}"
            ),
            _ => {
                assert_eq!(report["started"], json!([]), "round {round}");
                for secret in &fleet.secrets {
                    assert_eq!(reasons[&secret.name], "hourly_limit");
                }
                let detail = report["skipped"][0]["detail"].as_str().unwrap();
                assert!(
                    detail.contains("2 rotations of secret")
                        && detail.contains("MAX_ROTATIONS_PER_SECRET_PER_HOUR allows 2"),
                    "{detail}"
                );
            }
        }
    }
    assert!(starts.values().all(|n| *n == 2), "{starts:?}");
    assert_eq!(starts.len(), 3);
    eprintln!("hourly limit over 4 runs: {:.1?}", clock.elapsed());
}

/// Every due rotation still starts when a proxy in front of moto throttles and
/// fails a share of the requests, each retried a bounded number of times, with
/// concurrency and the RotateSecret rate within their limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_throttling_with_bounded_retries() {
    let clock = Instant::now();
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    fleet
        .group(
            "due",
            40,
            400 * DAY,
            payments,
            &[Some("30d")],
            Expect::Start,
        )
        .await;
    fleet
        .group(
            "young",
            20,
            10 * DAY,
            payments,
            &[Some("30d")],
            Expect::Skip("not_due"),
        )
        .await;
    let hopeless = fleet
        .group(
            "always-throttled",
            1,
            400 * DAY,
            payments,
            &[Some("30d")],
            Expect::Fail,
        )
        .await;
    let all: Vec<String> = fleet.secrets.iter().map(|s| s.arn.clone()).collect();
    fleet.configure(&all, NOWHERE, 400 * DAY).await;
    let before = fleet.state().await;
    let proxy = SmProxy::with_faults(fleet.moto.endpoint(), fault_for)
        .await
        .unwrap();
    let function = fleet
        .scheduler(
            proxy.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("MAX_CONCURRENCY", "4"),
                ("RATE_PER_SECOND", "20"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    let started_at = Instant::now();
    let report = run(&function, json!({})).await;
    let run_time = started_at.elapsed();

    check_decisions(&fleet, &report, "started");
    let after = fleet.state().await;
    check_started_in_moto(&fleet, &report, &before, &after);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["secret"], json!(hopeless[0]));
    assert_eq!(failed[0]["attempts"], MAX_ATTEMPTS);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("RotateSecret failed after 6 attempt(s)")
            && error.contains("ThrottlingException"),
        "{error}"
    );

    let log = proxy.log();
    let hopeless_id = &hopeless[0];
    assert_eq!(
        log.attempts.get(&format!("RotateSecret {hopeless_id}")),
        Some(&MAX_ATTEMPTS),
        "a call that is always throttled is tried exactly {MAX_ATTEMPTS} times"
    );
    // Every injected failure was retried once, except the hopeless call's
    // last: no retry storms, and no hidden retries by the SDK.
    let injected: u32 = log.injected.values().sum();
    assert_eq!(report["retries"], injected - 1, "{:?}", log.injected);
    for fault in [
        Fault::Throttled,
        Fault::TooManyRequests,
        Fault::Unavailable,
        Fault::LostAnswer,
    ] {
        assert!(
            log.injected.get(&fault).is_some_and(|n| *n > 0),
            "{fault:?} was never injected: {:?}",
            log.injected
        );
    }
    assert!(
        log.max_in_flight <= 4,
        "{} requests at once with MAX_CONCURRENCY=4",
        log.max_in_flight
    );
    // RATE_PER_SECOND=20: no second holds more than 20 RotateSecret calls (and
    // the one at its very start), with a little slack for local scheduling.
    let times = &log.rotate_times;
    let busiest = times
        .iter()
        .map(|t| {
            times
                .iter()
                .filter(|u| **u >= *t && **u < *t + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= 22,
        "{busiest} RotateSecret calls within one second"
    );
    eprintln!(
        "throttling: {} secrets, run {run_time:.1?} with {injected} injected failures {:?}, {} RotateSecret calls, busiest second {busiest}, at most {} at once; whole test {:.1?}",
        fleet.secrets.len(),
        log.injected,
        times.len(),
        log.max_in_flight,
        clock.elapsed()
    );
}

/// Near the function's deadline (Lambda-Runtime-Deadline-Ms) the run stops
/// starting rotations, reports the rest as skipped for the next run, and
/// answers in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_starting_rotations_before_the_deadline() {
    let mut fleet = Fleet::new();
    fleet
        .group(
            "due",
            10,
            400 * DAY,
            Some("payments"),
            &[Some("30d")],
            Expect::Start,
        )
        .await;
    let all: Vec<String> = fleet.secrets.iter().map(|s| s.arn.clone()).collect();
    fleet.configure(&all, NOWHERE, 400 * DAY).await;
    let before = fleet.state().await;
    let function = fleet
        .scheduler(
            fleet.moto.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("MAX_CONCURRENCY", "2"),
                ("RATE_PER_SECOND", "2"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    // A 12 s timeout: the scheduler keeps 10 s in hand, so it starts rotations
    // for about 2 s, at 2 a second.
    let clock = Instant::now();
    let invocation = function
        .invoke(&json!({}), Duration::from_secs(12))
        .await
        .unwrap_or_else(|e| panic!("no answer before the deadline: {e}\n{}", function.output()));
    let elapsed = clock.elapsed();
    let Outcome::Response(report) = invocation.outcome else {
        panic!("{:?}", invocation.outcome)
    };
    let started = names(&report, "started").len();
    let late = reasons(&report)
        .values()
        .filter(|r| r.as_str() == "deadline")
        .count();
    assert!(
        started >= 1 && late >= 1,
        "{started} started, {late} left: {report}"
    );
    assert_eq!(started + late, 10, "{report}");
    assert!(
        elapsed < Duration::from_secs(8),
        "answered after {elapsed:?}"
    );
    let detail = report["skipped"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("the next run picks it up"), "{detail}");
    check_started_in_moto(&fleet, &report, &before, &fleet.state().await);
    eprintln!(
        "deadline: {started} started, {late} left for the next run, answered in {elapsed:.1?}"
    );
}

/// Unusable settings and events fail every invocation with an error that names
/// the variable or field, before any call to Secrets Manager.
#[tokio::test]
async fn bad_settings_and_events_are_refused_with_the_variable_named() {
    let endpoint = rotor_tests::moto().endpoint().to_owned();
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[], "TAG_FILTER: it is not set"),
        (
            &[("TAG_FILTER", "a"), ("DEFAULT_POLICY", "167h")],
            "DEFAULT_POLICY",
        ),
        (
            &[("TAG_FILTER", "a"), ("RATE_PER_SECOND", "fast")],
            "RATE_PER_SECOND",
        ),
        (
            &[
                ("TAG_FILTER", "a"),
                ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "0"),
            ],
            "MAX_ROTATIONS_PER_SECRET_PER_HOUR",
        ),
        (
            &[
                ("TAG_FILTER", "a"),
                ("ROTATION_ALLOWED_SECRETS", "prod/app"),
            ],
            "ROTATION_ALLOWED_SECRETS: it is set but ROTATION_LAMBDA_ARN is not",
        ),
        (
            &[
                ("TAG_FILTER", "a"),
                ("ROTATION_FUNCTION_ARNS", "generic-rotation"),
            ],
            "ROTATION_FUNCTION_ARNS: \"generic-rotation\" is not an ARN",
        ),
    ];
    for (env, expected) in cases {
        let function = start_scheduler(&endpoint, env).await;
        for _ in 0..2 {
            let (kind, message) = failed_run(&function, json!({})).await;
            assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
    let function = start_scheduler(&endpoint, &[("TAG_FILTER", &unique("fleet"))]).await;
    let (kind, message) = failed_run(&function, json!({"dry_run": "yes"})).await;
    assert_eq!(kind, "NotRetryable.InvalidEvent");
    assert!(message.contains("dry_run is \"yes\""), "{message}");
    // A fleet with no secrets is an empty report, not an error.
    let report = run(&function, json!({"dry_run": true})).await;
    assert_eq!(report["selected"], 0);
}

/// Which attempt of which call fails, and how: deterministic per call, so
/// that a bounded number of retries always gets through (except for the
/// secret named `always-throttled`, whose RotateSecret never does).
fn fault_for(operation: &str, secret: &str, attempt: u32) -> Option<Fault> {
    if operation == "RotateSecret" && secret.contains("always-throttled") {
        return Some(Fault::Throttled);
    }
    if operation == "ListSecrets" {
        return (attempt <= 2).then_some(Fault::Throttled);
    }
    // FNV-1a: a stable share of the calls per fault.
    let bucket = format!("{operation} {secret}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
        % 4;
    match bucket {
        0 => (attempt <= 2).then_some(Fault::Throttled),
        1 => (attempt == 1).then_some(Fault::TooManyRequests),
        2 if operation == "RotateSecret" => (attempt == 1).then_some(Fault::LostAnswer),
        2 => (attempt == 1).then_some(Fault::Unavailable),
        _ => None,
    }
}

/// One of the deployment's rotation functions (`ROTATION_FUNCTION_ARNS`); like
/// [`NOWHERE`], moto does not know it, so a rotation through it is staged and
/// answered with ResourceNotFoundException.
const DEPLOYED: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-test-generic-rotation";
/// Another of the deployment's functions, that no secret here uses.
const DEPLOYED_RDS: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-test-rds-rotation";
/// Another team's rotation function: not the deployment's.
const OTHER_TEAM: &str = "arn:aws:lambda:us-east-1:123456789012:function:team-b-rotation";

/// Issue 12, item 3. A team that may tag secrets (its own, or another team's)
/// but not configure their rotation puts the fleet's tag on them. The scheduler
/// must start rotation only where the deployer configured it: a secret already
/// rotated by one of the deployment's functions (`ROTATION_FUNCTION_ARNS`,
/// rotated with RotateSecret naming no function), or one the deployer
/// allow-listed (`ROTATION_ALLOWED_SECRETS`, given `ROTATION_LAMBDA_ARN`). It
/// never re-points a secret's rotation to a rotor function, which would give
/// that function read and write on the secret (the template's
/// AllowRotationLambdaArn grant). Checked three ways: the RotateSecret calls
/// that reach the counting proxy, moto's state (no new version, rotation
/// settings unchanged), and the report's reasons.
///
/// moto differs from AWS here: RotateSecret turns rotation on in moto only
/// when it carries a schedule (AWS turns it on for any RotateSecret), so
/// "rotation not enabled" alone would not catch a stray call; the call counts
/// and the unchanged RotationLambdaARN and versions do. moto also forgets the
/// configured function on a RotateSecret that names none (AWS uses it);
/// scripts/moto_server.py makes moto behave as AWS does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_writer_cannot_make_the_scheduler_start_or_re_point_rotation() {
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    let thirty = [Some("30d")];
    let skip = Expect::Skip;
    let age = 400 * DAY;
    // Tagged by the lower-privileged team; rotation never configured.
    let tagged = fleet
        .group(
            "tagged-by-team",
            2,
            age,
            payments,
            &thirty,
            skip("not_configured"),
        )
        .await;
    // Another team's secret, rotated by that team's own function, tagged too.
    let other_team = fleet
        .group(
            "other-team",
            1,
            age,
            payments,
            &thirty,
            skip("foreign_function"),
        )
        .await;
    fleet.configure(&other_team, OTHER_TEAM, age).await;
    // Allow-listed by the deployer, but its rotation points elsewhere: never re-pointed.
    let allowed_elsewhere = fleet
        .group(
            "allowed-elsewhere",
            1,
            age,
            payments,
            &thirty,
            skip("foreign_function"),
        )
        .await;
    fleet.configure(&allowed_elsewhere, OTHER_TEAM, age).await;
    // A version or alias of a deployment function is not the function the deployer named.
    let pinned = fleet
        .group(
            "pinned-version",
            1,
            age,
            payments,
            &thirty,
            skip("foreign_function"),
        )
        .await;
    fleet
        .configure(&pinned, &format!("{DEPLOYED}:7"), age)
        .await;
    // Configured by the deployer: rotated, naming no function.
    let configured = fleet
        .group("configured", 2, age, payments, &thirty, Expect::Start)
        .await;
    fleet.configure(&configured, DEPLOYED, age).await;
    let latest = fleet
        .group(
            "configured-latest",
            1,
            age,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    fleet
        .configure(&latest, &format!("{DEPLOYED}:$LATEST"), age)
        .await;
    // Allow-listed with no rotation: given ROTATION_LAMBDA_ARN.
    let by_name = fleet
        .group("allowed-by-name", 1, age, payments, &thirty, Expect::Start)
        .await;
    let by_arn = fleet
        .group("allowed-by-arn", 1, age, payments, &thirty, Expect::Start)
        .await;
    let allowed_name = fleet.name_of(&by_name[0]).to_owned();
    let allowed_elsewhere_name = fleet.name_of(&allowed_elsewhere[0]).to_owned();
    // Named like an allow-listed secret, but not it.
    fleet.moto.set_clock(-age).expect("moto shifts its clock");
    let lookalike_name = format!("{allowed_name}-copy");
    let lookalike = fleet
        .store
        .create_secret(
            &lookalike_name,
            &SecretString::from("initial"),
            &[(FLEET, "payments"), (POLICY, "30d")],
        )
        .await
        .expect("create secret");
    fleet.moto.set_clock(0).expect("moto shifts its clock");
    fleet.secrets.push(TestSecret {
        arn: lookalike.clone(),
        name: lookalike_name,
        expect: skip("not_configured"),
    });

    let before = fleet.state().await;
    let settings_before = fleet.rotation_settings().await;
    let proxy = SmProxy::start(fleet.moto.endpoint()).await.unwrap();
    let function_arns = format!("{DEPLOYED}, {DEPLOYED_RDS}");
    let allowed = format!("{allowed_name},{},{allowed_elsewhere_name}", by_arn[0]);

    // Without any of the deployer's settings the scheduler rotates only secrets
    // whose rotation is enabled, each with its own function (a dry run: the
    // decisions, nothing started).
    let bare = start_scheduler(proxy.endpoint(), &[("TAG_FILTER", "rotor:fleet=payments")]).await;
    let dry = run(&bare, json!({"dry_run": true})).await;
    let enabled: BTreeSet<String> = [
        &other_team,
        &allowed_elsewhere,
        &pinned,
        &configured,
        &latest,
    ]
    .into_iter()
    .flatten()
    .map(|arn| fleet.name_of(arn).to_owned())
    .collect();
    assert_eq!(names(&dry, "would_start"), enabled, "{dry}");
    for arn in tagged.iter().chain(&by_name).chain(&by_arn) {
        assert_eq!(
            reasons(&dry).get(fleet.name_of(arn)).map(String::as_str),
            Some("not_configured"),
            "{dry}"
        );
    }
    drop(bare);

    let function = start_scheduler(
        proxy.endpoint(),
        &[
            ("TAG_FILTER", "rotor:fleet=payments"),
            ("ROTATION_FUNCTION_ARNS", &function_arns),
            ("ROTATION_LAMBDA_ARN", NOWHERE),
            ("ROTATION_ALLOWED_SECRETS", &allowed),
        ],
    )
    .await;
    let report = run(&function, json!({})).await;
    check_decisions(&fleet, &report, "started");
    assert_eq!(report["failed"], json!([]), "{report}");
    let after = fleet.state().await;
    check_started_in_moto(&fleet, &report, &before, &after);

    // The calls that reached Secrets Manager: RotateSecret only for the
    // started secrets; a function named only for the allow-listed ones
    // without rotation, and then only ROTATION_LAMBDA_ARN.
    let log = proxy.log();
    let mut requests: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (secret, function) in &log.rotate_requests {
        requests
            .entry(secret.clone())
            .or_default()
            .push(function.clone());
    }
    let wanted: BTreeMap<String, Vec<Option<String>>> = configured
        .iter()
        .chain(&latest)
        .map(|arn| (arn.clone(), vec![None]))
        .chain(
            by_name
                .iter()
                .chain(&by_arn)
                .map(|arn| (arn.clone(), vec![Some(NOWHERE.to_owned())])),
        )
        .collect();
    assert_eq!(
        requests, wanted,
        "RotateSecret calls by secret and function"
    );
    for arn in tagged
        .iter()
        .chain(&other_team)
        .chain(&allowed_elsewhere)
        .chain(&pinned)
    {
        assert_eq!(
            log.attempts.get(&format!("RotateSecret {arn}")),
            None,
            "{}: RotateSecret was called",
            fleet.name_of(arn)
        );
    }

    // Rotation settings: unchanged for every skipped secret (moto turns
    // rotation on only with a schedule, so the function is the telling part),
    // and the configured secrets still point at the function they had.
    let settings_after = fleet.rotation_settings().await;
    for secret in &fleet.secrets {
        if matches!(secret.expect, Expect::Skip(_))
            || configured.contains(&secret.arn)
            || latest.contains(&secret.arn)
        {
            assert_eq!(
                settings_after[&secret.arn], settings_before[&secret.arn],
                "{}: rotation settings changed",
                secret.name
            );
        }
    }
    for arn in &tagged {
        assert_eq!(settings_after[arn], (false, None), "{}", fleet.name_of(arn));
    }

    // The report says why, and what the deployer must do.
    for entry in report["skipped"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let detail = entry["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("secret {name}")), "{detail}");
        match entry["reason"].as_str().unwrap() {
            "not_configured" => assert!(
                detail.contains("ROTATION_ALLOWED_SECRETS")
                    && detail.contains(DEPLOYED)
                    && detail.contains("not enabled"),
                "{detail}"
            ),
            "foreign_function" => assert!(
                detail.contains("never re-points")
                    && detail.contains("ROTATION_FUNCTION_ARNS")
                    && (detail.contains(OTHER_TEAM) || detail.contains(&format!("{DEPLOYED}:7"))),
                "{detail}"
            ),
            other => panic!("unexpected skip {other}: {detail}"),
        }
    }
}

/// Issue 11, item 3. A RotateSecret slower than the time left (its request
/// held, or its answer held, by the proxy) does not keep the run past the
/// function's deadline: the run answers in time with a report that says which
/// secrets it did not reach and, for a RotateSecret it stopped waiting for,
/// whether the rotation started or that it is not known. A later run is
/// consistent: each secret gains one version in all, the one the first report
/// named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rotate_secret_does_not_outlast_the_deadline() {
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    let thirty = [Some("30d")];
    // The most overdue first: the two slow secrets take both workers.
    let slow_answer = fleet
        .group(
            "slow-answer",
            1,
            402 * DAY,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    let slow_request = fleet
        .group(
            "slow-request",
            1,
            402 * DAY,
            payments,
            &thirty,
            Expect::Fail,
        )
        .await;
    let rest = fleet
        .group(
            "not-reached",
            3,
            400 * DAY,
            payments,
            &thirty,
            Expect::Skip("deadline"),
        )
        .await;
    let all: Vec<String> = fleet.secrets.iter().map(|s| s.arn.clone()).collect();
    fleet.configure(&all, NOWHERE, 403 * DAY).await;
    let before = fleet.state().await;
    let hold = Duration::from_secs(20);
    let proxy =
        SmProxy::with_faults(
            fleet.moto.endpoint(),
            move |operation, secret, _| match operation {
                "RotateSecret" if secret.contains("slow-answer") => Some(Fault::SlowAnswer(hold)),
                "RotateSecret" if secret.contains("slow-request") => Some(Fault::SlowRequest(hold)),
                _ => None,
            },
        )
        .await
        .unwrap();
    let function = fleet
        .scheduler(
            proxy.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("MAX_CONCURRENCY", "2"),
                ("RATE_PER_SECOND", "50"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    // A 15 s timeout: the run has about 5 s before its 10 s margin, and each
    // slow call would take 20 s.
    let invocation = function
        .invoke(&json!({}), Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("no answer before the deadline: {e}\n{}", function.output()));
    let Outcome::Response(report) = invocation.outcome else {
        panic!("{:?}\n{}", invocation.outcome, function.output())
    };
    // Not reached: skipped for the next run.
    let reasons = reasons(&report);
    for arn in &rest {
        assert_eq!(
            reasons.get(fleet.name_of(arn)).map(String::as_str),
            Some("deadline"),
            "{report}"
        );
    }
    // The held answer: moto staged the version, so the rotation started.
    let started = report["started"].as_array().unwrap();
    assert_eq!(started.len(), 1, "{report}");
    assert_eq!(started[0]["secret"], json!(slow_answer[0]));
    let note = started[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("deadline"), "{note}");
    let first_version = started[0]["version"].as_str().unwrap().to_owned();
    // The held request: not staged when the run looked, but it may still
    // arrive: not known.
    let unknown = report["unknown"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(unknown.len(), 1, "{report}");
    assert_eq!(unknown[0]["secret"], json!(slow_request[0]));
    let detail = unknown[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("not known") && detail.contains("next run"),
        "{detail}"
    );
    let unknown_version = unknown[0]["version"].as_str().unwrap().to_owned();
    assert_eq!(report["counts"]["unknown"], 1);
    assert_eq!(report["failed"], json!([]), "{report}");

    // The held request reaches moto after the run: then the rotation started.
    while proxy.log().in_flight > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let middle = fleet.state().await;
    assert_eq!(
        middle[&slow_request[0]].get(&unknown_version),
        Some(&vec![AWSPENDING.to_owned()]),
        "the held RotateSecret staged the version the report named"
    );

    // The next run finds both rotations in progress and starts the rest.
    let again = run(&function, json!({})).await;
    let reasons = self::reasons(&again);
    for arn in slow_answer.iter().chain(&slow_request) {
        assert_eq!(
            reasons.get(fleet.name_of(arn)).map(String::as_str),
            Some("in_progress"),
            "{again}"
        );
    }
    let mut versions: BTreeMap<String, String> = [
        (slow_answer[0].clone(), first_version),
        (slow_request[0].clone(), unknown_version),
    ]
    .into();
    for entry in again["started"].as_array().unwrap() {
        versions.insert(
            entry["secret"].as_str().unwrap().to_owned(),
            entry["version"].as_str().unwrap().to_owned(),
        );
    }
    assert_eq!(versions.len(), 5, "{again}");
    // No double rotation: one new version per secret over both runs, staged
    // AWSPENDING, under the token a report named.
    let after = fleet.state().await;
    for (arn, version) in &versions {
        let added: Vec<&String> = after[arn]
            .keys()
            .filter(|v| !before[arn].contains_key(*v))
            .collect();
        assert_eq!(added, vec![version], "{}", fleet.name_of(arn));
        assert_eq!(after[arn][version], vec![AWSPENDING.to_owned()]);
    }
}
