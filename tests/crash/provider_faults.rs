//! Faults at the provider boundary.
//!
//! For each OAuth adapter, a fault right after each of its calls to the
//! provider: the provider acted and its answer is an error (emulator only:
//! glewlwyd's answers travel inside TLS), the connection is cut as the answer
//! comes back, or the process is killed then. The rotation is then retried with
//! the same token (in the same process after an error or a cut, in a new one
//! after a kill). Afterwards an independent client gets a token with
//! AWSCURRENT's client secret, and the initial secret, which every adapter
//! retires by the end of a rotation, gets none.

use std::collections::BTreeMap;
use std::time::Instant;

use rotor_cli::rotate::rotate;
use rotor_core::labels::AWSCURRENT;
use rotor_testbed::fault_proxy::{CrashPlan, When};
use rotor_testbed::oauth_server::OAuthServer;
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator};
use rotor_tests::{token, value};

use super::emulated;
use super::scenario::{Matrix, Scenario, Target, labels_of, options};

/// What happens right after a provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TargetFault {
    /// The provider acted, then answered 503.
    ErrorAnswer,
    /// The connection is reset as the answer comes back.
    Cut,
    /// The process is killed (SIGKILL) as the answer comes back.
    Kill,
}

/// What a sweep of provider faults found.
#[derive(Default)]
struct FaultTally {
    /// Fault points: provider calls a fault was injected after.
    points: u64,
    /// Faults injected, by kind.
    injected: BTreeMap<TargetFault, u32>,
    /// Rotations that were complete and correct after the retry.
    completed: u32,
    /// Of those, how many needed the administrator's new registration token.
    by_administrator: u32,
}

impl Scenario {
    fn emulator(&self) -> Option<&ProviderEmulator> {
        match &self.target {
            Target::Provider { emulator, .. } => Some(emulator),
            _ => None,
        }
    }

    /// Injects each fault after each provider call, until a rotation makes
    /// fewer calls than the fault point.
    async fn target_faults(&self) -> FaultTally {
        let started = Instant::now();
        let kinds: &[TargetFault] = match self.emulator() {
            Some(_) => &[
                TargetFault::ErrorAnswer,
                TargetFault::Cut,
                TargetFault::Kill,
            ],
            None => &[TargetFault::Cut, TargetFault::Kill],
        };
        let mut tally = FaultTally::default();
        let mut output = String::new();
        for at in 1.. {
            let mut fired = false;
            for &kind in kinds {
                fired |= self.fault_once(at, kind, &mut tally, &mut output).await;
            }
            if !fired {
                break;
            }
            tally.points = at;
        }
        let total: u32 = tally.injected.values().sum();
        eprintln!(
            "provider faults {}: {} fault points, {total} faults ({:?}); {} rotations \
            complete after the retry, {} of them after the administrator's new \
            registration access token; {:.1?}",
            self.name,
            tally.points,
            tally.injected,
            tally.completed,
            tally.by_administrator,
            started.elapsed(),
        );
        assert!(total > 0, "{}: no fault was injected", self.name);
        assert_eq!(tally.completed, total, "{}", self.name);
        tally
    }

    /// One rotation with `kind` after provider call `at`, then the retry;
    /// false if the rotation made fewer provider calls.
    async fn fault_once(
        &self,
        at: u64,
        kind: TargetFault,
        tally: &mut FaultTally,
        output: &mut String,
    ) -> bool {
        let name = &self.name;
        let arn = self.secret(None).await;
        let initial = value(&self.store, &arn, AWSCURRENT).await.unwrap();
        let old_current = labels_of(&self.store, &arn, AWSCURRENT).await;
        let function = self.function().await;
        let plan = CrashPlan::new(at, When::After);
        let seen_before = self.emulator().map_or(0, |e| e.seen().len() as u64);
        match kind {
            TargetFault::ErrorAnswer => {
                if let Some(emulator) = self.emulator() {
                    emulator.lose_answer_of(Some(at), 503);
                }
            }
            TargetFault::Cut => self.target_proxy.set_plan(Some(plan.clone())),
            TargetFault::Kill => {
                plan.set_victim(function.pid().expect("pid"));
                self.target_proxy.set_plan(Some(plan.clone()));
            }
        }
        let t = token();
        let run = rotate(&self.store, &function, &options(&arn, &t))
            .await
            .unwrap();
        self.target_proxy.set_plan(None);
        let fired = match (kind, self.emulator()) {
            (TargetFault::ErrorAnswer, Some(emulator)) => {
                emulator.lose_answer_of(None, 0);
                emulator.seen().len() as u64 - seen_before >= at
            }
            _ => plan.fired().is_some(),
        };
        output.push_str(&function.output());
        output.push_str(&format!("{:?}", run.steps));
        if !fired {
            assert!(
                run.succeeded(),
                "{name}: a rotation without a fault failed: {:?}",
                run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
            );
            return false;
        }
        *tally.injected.entry(kind).or_default() += 1;
        let point = format!("{kind:?} after provider call {at}");
        let retry = match kind {
            TargetFault::Kill => self.function().await,
            _ => function,
        };
        let mut scratch = Matrix::default();
        let recovered = self.retry(&retry, &arn, &t, &point, &mut scratch).await;
        output.push_str(&retry.output());
        output.push_str(&scratch.output);
        self.assert_finished(&arn, &t, &recovered.or(old_current))
            .await;
        assert!(
            !self.works(&initial).await,
            "{name}, {point}: the retired initial secret still gets a token"
        );
        tally.completed += 1;
        tally.by_administrator += scratch.recovered_by_administrator;
        let mut seen = Matrix::default();
        seen.saw(&Some(initial));
        seen.saw(&value(&self.store, &arn, AWSCURRENT).await);
        seen.output = std::mem::take(output);
        assert_eq!(
            seen.leaks(),
            0,
            "{name}, {point}: a credential in the output"
        );
        true
    }
}

#[tokio::test]
async fn provider_faults_oauth_rfc7592_glewlwyd() {
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    Scenario::new("oauth rfc7592 at glewlwyd", Target::OAuth { server })
        .await
        .target_faults()
        .await;
}

async fn provider_faults(provider: Provider) -> FaultTally {
    emulated(provider).await.target_faults().await
}

#[tokio::test]
async fn provider_faults_oauth_rfc7592_replacing_tokens() {
    provider_faults(Provider::Rfc7592).await;
}

#[tokio::test]
async fn provider_faults_oauth_keycloak() {
    provider_faults(Provider::Keycloak).await;
}

#[tokio::test]
async fn provider_faults_oauth_okta() {
    provider_faults(Provider::Okta).await;
}

#[tokio::test]
async fn provider_faults_oauth_entra() {
    provider_faults(Provider::Entra).await;
}

#[tokio::test]
async fn provider_faults_oauth_auth0() {
    provider_faults(Provider::Auth0).await;
}
