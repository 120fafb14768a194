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

mod due;
mod faults;
mod refusals;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use rotor_cli::function::{LocalFunction, function_binary};
use rotor_cli::runtime_api::Outcome;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, SecretStore, SecretString};
use rotor_testbed::moto::{Moto, configure_rotation, local_env};
use rotor_tests::{token, unique};
use serde_json::Value;

const DAY: i64 = 86_400;

const FLEET: &str = "rotor:fleet";

const POLICY: &str = "rotor:rotation-policy";

/// A rotation function that exists nowhere (see the module's comment).
const NOWHERE: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-scheduler-test-nowhere";

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
