//! The crash and fault matrices at ldap-rotation's LDAP boundary: every
//! LDAP exchange of setSecret goes through a fault-injecting proxy, which
//! cuts the link as the function sends its n-th chunk, or kills the function
//! (SIGKILL) once the directory has acted on that chunk. After each fault a
//! stored credential binds (ldapsearch); a fresh process then retries the
//! rotation with the same token, as Secrets Manager does, and it completes:
//! AWSCURRENT binds, the password before it does not.

use std::time::Duration;

use rotor_cli::runtime_api::Outcome;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, SecretString, Step};
use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, When};
use rotor_testbed::openldap::OpenLdap;
use rotor_testbed::samba_dc::LDAPS_PORT;
use rotor_tests::directories::{
    account, ad_password, directory_secret, domain_policy, password_of, samba,
};
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, staged_secret_named, steps, token, unique, value,
};
use serde_json::json;

use crate::ldap::start;

/// The prefix of the matrices' secrets, which the admin secret serves.
const TEAM: &str = "ldap-faults/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Cut,
    Kill,
}

/// The directory under test: how to make an account and check a password.
trait Directory {
    fn ca(&self) -> std::path::PathBuf;
    /// Makes an account with `password`; returns its bind name.
    fn account(&self, password: &SecretString) -> String;
    fn binds(&self, name: &str, password: &SecretString) -> bool;
    fn kind(&self) -> &'static str;
}

struct Ad;

impl Directory for Ad {
    fn ca(&self) -> std::path::PathBuf {
        samba().ca_path().to_owned()
    }
    fn account(&self, password: &SecretString) -> String {
        let dc = samba();
        let name = account("flt");
        dc.create_user(&name, password, None).unwrap();
        dc.principal(&name)
    }
    fn binds(&self, name: &str, password: &SecretString) -> bool {
        samba().binds(name, password)
    }
    fn kind(&self) -> &'static str {
        "ad"
    }
}

impl Directory for OpenLdap {
    fn ca(&self) -> std::path::PathBuf {
        self.ca_path().to_owned()
    }
    fn account(&self, password: &SecretString) -> String {
        let uid = account("flt");
        self.create_user(&uid, "people", password).unwrap();
        self.user_dn(&uid, "people")
    }
    fn binds(&self, name: &str, password: &SecretString) -> bool {
        OpenLdap::binds(self, name, password)
    }
    fn kind(&self) -> &'static str {
        "ldap"
    }
}

/// Counts of one matrix, for the report line.
#[derive(Default, Debug)]
struct Matrix {
    chunks: u64,
    cut: u32,
    killed: u32,
    failed_clearly: u32,
    completed_anyway: u32,
}

/// Runs the matrix for `directory` through `proxy` (to its LDAPS port);
/// `admin` is an admin secret (at the proxy too) to name in masterarn.
async fn matrix(directory: &dyn Directory, proxy: &FaultProxy, admin: Option<&str>) -> Matrix {
    let store = moto_store();
    let url = format!("ldaps://127.0.0.1:{}", proxy.port());
    let ca = directory.ca();
    let mut result = Matrix::default();
    let started = std::time::Instant::now();
    for fault in [Fault::Cut, Fault::Kill] {
        let mut at = 1;
        loop {
            if fault == Fault::Kill && at > result.chunks + 2 {
                break;
            }
            let old = ad_password();
            let name = directory.account(&old);
            let extra = admin.map_or(json!({}), |a| json!({ "masterarn": a }));
            let t = token();
            let secret = directory_secret(directory.kind(), json!(url), &name, &old, extra);
            let arn = staged_secret_named(&store, &unique(TEAM), &secret, &[], &t).await;
            let function = start(&ca, &[]).await;
            steps::run(&function, &arn, &t, Step::CreateSecret)
                .await
                .unwrap();
            let before = proxy.chunks();
            let plan = CrashPlan::new(at, When::After);
            match fault {
                Fault::Cut => proxy.cut_after(at),
                Fault::Kill => {
                    plan.set_victim(function.pid().expect("pid"));
                    proxy.set_plan(Some(plan.clone()));
                }
            }
            let payload = bytes::Bytes::from(steps::event(&arn, &t, Step::SetSecret).to_string());
            let invoked = function.invoke_raw(payload, Duration::from_secs(30)).await;
            let sent = proxy.chunks() - before;
            proxy.cancel_cut();
            proxy.set_plan(None);
            let fired = match fault {
                Fault::Cut => sent >= at,
                Fault::Kill => plan.fired().is_some(),
            };
            let point = format!("{} {fault:?} at chunk {at}", directory.kind());
            let mut output = function.output();
            match invoked {
                Ok(invocation) => match invocation.outcome {
                    Outcome::Response(_) => result.completed_anyway += u32::from(fired),
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => {
                        assert!(fired, "{point}: failed without a fault: {error_message}");
                        assert!(
                            error_type.starts_with("Retryable.")
                                && error_message.contains(&format!("127.0.0.1:{}", proxy.port())),
                            "{point}: {error_type}: {error_message}"
                        );
                        output.push_str(&error_message);
                        result.failed_clearly += 1;
                    }
                },
                Err(_) => assert!(
                    fault == Fault::Kill && fired,
                    "{point}: died unkilled\n{output}"
                ),
            }
            match (fired, fault) {
                (true, Fault::Cut) => result.cut += 1,
                (true, Fault::Kill) => result.killed += 1,
                (false, Fault::Cut) => result.chunks = sent,
                (false, Fault::Kill) => {}
            }
            let mut working = false;
            for label in [AWSCURRENT, AWSPENDING] {
                if let Some(stored) = value(&store, &arn, label).await {
                    working = working || directory.binds(&name, &password_of(&stored));
                }
            }
            assert!(working, "{point}: neither AWSCURRENT nor AWSPENDING binds");

            let retry = start(&ca, &[]).await;
            for s in [Step::SetSecret, Step::TestSecret, Step::FinishSecret] {
                let done = steps::run(&retry, &arn, &t, s).await;
                assert!(
                    done.is_ok(),
                    "{point}: the retried {s:?} failed: {done:?}\n{}",
                    retry.output()
                );
            }
            output.push_str(&retry.output());
            let current = password_of(&value(&store, &arn, AWSCURRENT).await.unwrap());
            let previous = password_of(&value(&store, &arn, AWSPREVIOUS).await.unwrap());
            assert!(
                directory.binds(&name, &current),
                "{point}: AWSCURRENT does not bind"
            );
            assert!(
                !directory.binds(&name, &previous),
                "{point}: the old password still binds"
            );
            assert_no_stored_secret_in(&store, &arn, &output).await;
            if !fired && fault == Fault::Cut {
                break;
            }
            at += 1;
        }
    }
    eprintln!(
        "ldap fault matrix {} {}: {} chunks in setSecret; {} cuts, {} kills: {} failed \
        clearly (retryable), {} came after the work; every retry completed; {:.1?}",
        directory.kind(),
        if admin.is_some() {
            "admin reset"
        } else {
            "self-change"
        },
        result.chunks,
        result.cut,
        result.killed,
        result.failed_clearly,
        result.completed_anyway,
        started.elapsed()
    );
    assert!(result.cut > 0 && result.killed > 0, "no fault happened");
    result
}

#[tokio::test]
async fn ad_self_change_survives_a_fault_at_every_ldap_exchange() {
    let _policy = domain_policy().read().await;
    samba();
    let proxy = FaultProxy::start("samba", ([127, 0, 0, 1], LDAPS_PORT).into())
        .await
        .unwrap();
    matrix(&Ad, &proxy, None).await;
}

#[tokio::test]
async fn ad_admin_reset_survives_a_fault_at_every_ldap_exchange() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store: AwsStore = moto_store();
    let proxy = FaultProxy::start("samba", ([127, 0, 0, 1], LDAPS_PORT).into())
        .await
        .unwrap();
    let url = format!("ldaps://127.0.0.1:{}", proxy.port());
    let admin = store
        .create_secret(
            &unique("ad-admin"),
            &SecretString::from(directory_secret(
                "ad",
                json!(url),
                &dc.principal("Administrator"),
                &dc.admin_password(),
                json!({}),
            )),
            &[("rotor:serves", TEAM)],
        )
        .await
        .unwrap();
    matrix(&Ad, &proxy, Some(&admin)).await;
}

#[tokio::test]
async fn openldap_self_change_survives_a_fault_at_every_ldap_exchange() {
    let ldap = OpenLdap::start().unwrap();
    let proxy = FaultProxy::start("slapd", ([127, 0, 0, 1], ldap.ldaps_port()).into())
        .await
        .unwrap();
    matrix(&ldap, &proxy, None).await;
}
