//! The real `ldap-rotation` binary, over the Lambda Runtime API, against moto,
//! a Samba Active Directory domain controller and OpenLDAP, each started here
//! on 127.0.0.1 with TLS from a test CA. `ldapsearch` (a simple bind) and
//! `kinit`, independent clients, prove which passwords work at each point.
//!
//! The crash and fault matrices at the LDAP boundary are in `ldap_faults.rs`,
//! the secret writer as an attacker in `untrusted_writer/ldap.rs`.

use std::sync::Arc;

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_testbed::directory_service::{DIRECTORY_ID, DirectoryServiceEmulator};
use rotor_testbed::fault_proxy::FaultProxy;
use rotor_testbed::openldap::{ADMIN_DN, OpenLdap};
use rotor_testbed::samba_dc::{DNS_NAME, LDAPS_PORT, NETBIOS, SambaDc};
use rotor_tests::directories::{
    account, ad_password, directory_secret, domain_policy, password_of, samba,
};
use rotor_tests::listener::RecordingListener;
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, staged_secret, staged_secret_named, start_function,
    start_function_resolving, steps, token, unique, value,
};
use serde_json::{Value, json};

/// ldap-rotation trusting `ca`, with extra environment.
pub(crate) async fn start(ca: &std::path::Path, extra: &[(&str, &str)]) -> LocalFunction {
    let ca = ca.display().to_string();
    let mut env = vec![("SSL_CERT_FILE", ca.as_str())];
    env.extend_from_slice(extra);
    start_function("ldap-rotation", &env).await
}

/// The stored value's password under `label`.
pub(crate) async fn stored(store: &AwsStore, arn: &str, label: &str) -> SecretString {
    password_of(&value(store, arn, label).await.expect("a stored value"))
}

/// An admin secret for the DC's Administrator that serves a fresh prefix;
/// returns (its ARN, the prefix).
pub(crate) async fn samba_admin(
    store: &AwsStore,
    dc: &SambaDc,
    extra_tags: &[(&str, &str)],
) -> (String, String) {
    let team = format!("{}/", unique("team"));
    let mut tags = vec![("rotor:serves", team.as_str())];
    tags.extend_from_slice(extra_tags);
    let value = directory_secret(
        "ad",
        json!(dc.ldaps_url()),
        &dc.principal("Administrator"),
        &dc.admin_password(),
        json!({}),
    );
    let arn = store
        .create_secret(&unique("ad-admin"), &SecretString::from(value), &tags)
        .await
        .unwrap();
    (arn, team)
}

/// An account changes its own AD password (unicodePwd delete-old/add-new),
/// twice in a row, every step replayed: after each finish AWSCURRENT binds
/// (ldapsearch) and gets a Kerberos ticket (kinit), the old password is
/// refused (no grace period on this DC), AWSPREVIOUS holds it, and no value
/// reaches the output.
#[tokio::test]
async fn ad_account_changes_its_own_password_twice() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let name = account("svc");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let t = token();
    let secret = directory_secret(
        "ad",
        json!(dc.ldaps_url()),
        &format!("{NETBIOS}\\{name}"),
        &first,
        json!({"note": "kept"}),
    );
    let arn = staged_secret(&store, &secret, &[], &t).await;
    let function = start(dc.ca_path(), &[]).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let second = stored(&store, &arn, AWSCURRENT).await;
    assert!(dc.binds(&dc.principal(&name), &second), "AWSCURRENT binds");
    assert!(dc.kinit(&name, &second), "AWSCURRENT gets a ticket");
    assert!(
        !dc.binds(&dc.principal(&name), &first),
        "the old password is refused"
    );
    assert!(stored(&store, &arn, AWSPREVIOUS).await.expose_secret() == first.expose_secret());
    let current: Value = serde_json::from_str(
        value(&store, &arn, AWSCURRENT)
            .await
            .unwrap()
            .expose_secret(),
    )
    .unwrap();
    assert_eq!(current["note"], "kept");

    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(&function, &arn, &t2, &Step::ALL).await;
    let third = stored(&store, &arn, AWSCURRENT).await;
    assert!(dc.binds(&format!("{NETBIOS}\\{name}"), &third));
    assert!(!dc.binds(&dc.principal(&name), &second));
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

/// AD's minimum password age (one day by default) refuses a second change
/// by the account itself: a NotRetryable error naming the domain's policy
/// and the fix, never the password; nothing changed. An admin secret's
/// reset is not bound by it. A password in the account's history, and one
/// without the classes AD's complexity needs, are refused naming the rule.
#[tokio::test]
async fn policy_refusals_name_the_policy_and_change_nothing() {
    let _policy = domain_policy().write().await;
    let dc = samba();
    let store = moto_store();
    dc.set_min_age(1).unwrap();
    let name = account("young");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let t = token();
    let arn = staged_secret(
        &store,
        &directory_secret(
            "ad",
            json!(dc.ldaps_url()),
            &dc.principal(&name),
            &first,
            json!({}),
        ),
        &[],
        &t,
    )
    .await;
    let function = start(dc.ca_path(), &[]).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();
    let refused = steps::run(&function, &arn, &t, Step::SetSecret).await;
    // Within the same minimum age, an admin's reset of the account works.
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    let by_admin = json!({"masterarn": admin});
    let value = directory_secret(
        "ad",
        json!(dc.ldaps_url()),
        &dc.principal(&name),
        &first,
        by_admin,
    );
    let t0 = token();
    let reset = staged_secret_named(&store, &format!("{team}{name}"), &value, &[], &t0).await;
    let mut admin_steps = Vec::new();
    for s in Step::ALL {
        admin_steps.push(steps::run(&function, &reset, &t0, s).await);
    }
    let reset_to = stored(&store, &reset, AWSCURRENT).await;
    let reset_worked = dc.binds(&dc.principal(&name), &reset_to);
    // The account's password is the admin secret's now: set it back.
    dc.reset_password(&dc.user_dn(&name, None), &first).unwrap();
    dc.set_min_age(0).unwrap();
    assert!(admin_steps.iter().all(Result::is_ok), "{admin_steps:?}");
    assert!(
        reset_worked,
        "the admin's reset is not bound by the minimum age"
    );
    let (kind, message) = refused.unwrap_err();
    assert_eq!(kind, "NotRetryable.ServiceRejected", "{message}");
    assert!(
        message.contains("minimum password age 1 day") && message.contains("masterarn"),
        "{message}"
    );
    assert!(dc.binds(&dc.principal(&name), &first), "nothing changed");
    let pending = stored(&store, &arn, AWSPENDING).await;
    assert!(!message.contains(pending.expose_secret()));

    // The pending password is in the account's history (someone set it and
    // set the current one back): AD's history refuses it, and says so.
    let reused = account("hist");
    dc.create_user(&reused, &first, None).unwrap();
    let t3 = token();
    let value = directory_secret(
        "ad",
        json!(dc.ldaps_url()),
        &dc.principal(&reused),
        &first,
        json!({}),
    );
    let arn3 = staged_secret(&store, &value, &[], &t3).await;
    steps::run(&function, &arn3, &t3, Step::CreateSecret)
        .await
        .unwrap();
    let pending = stored(&store, &arn3, AWSPENDING).await;
    dc.reset_password(&dc.user_dn(&reused, None), &pending)
        .unwrap();
    dc.reset_password(&dc.user_dn(&reused, None), &first)
        .unwrap();
    let (kind, message) = steps::run(&function, &arn3, &t3, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.ServiceRejected", "{message}");
    assert!(message.contains("history of 24 passwords"), "{message}");
    assert!(!message.contains(pending.expose_secret()));
    assert!(dc.binds(&dc.principal(&reused), &first), "nothing changed");

    // Lowercase letters only: AD's complexity refuses it.
    let weak = start(
        dc.ca_path(),
        &[
            ("EXCLUDE_UPPERCASE", "true"),
            ("EXCLUDE_NUMBERS", "true"),
            ("EXCLUDE_PUNCTUATION", "true"),
        ],
    )
    .await;
    let t2 = token();
    let other = account("weak");
    dc.create_user(&other, &first, None).unwrap();
    let arn2 = staged_secret(
        &store,
        &directory_secret(
            "ad",
            json!(dc.ldaps_url()),
            &dc.principal(&other),
            &first,
            json!({}),
        ),
        &[],
        &t2,
    )
    .await;
    steps::run(&weak, &arn2, &t2, Step::CreateSecret)
        .await
        .unwrap();
    let (kind, message) = steps::run(&weak, &arn2, &t2, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.ServiceRejected", "{message}");
    assert!(
        message.contains("complexity required") && message.contains("EXCLUDE_"),
        "{message}"
    );
    assert!(dc.binds(&dc.principal(&other), &first));
    let text = format!("{message}\n{}\n{}", function.output(), weak.output());
    assert_no_stored_secret_in(&store, &arn, &text).await;
    assert_no_stored_secret_in(&store, &arn2, &text).await;
    assert_no_stored_secret_in(&store, &arn3, &text).await;
}

/// An admin secret that serves the account's secret resets its password
/// (the account's DN looked up by its logon name); the admin's password
/// binds only at its own URL and still works afterwards.
#[tokio::test]
async fn an_admin_resets_an_account_it_serves() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    dc.create_ou("Services").unwrap();
    let name = account("app");
    let first = ad_password();
    dc.create_user(&name, &first, Some("Services")).unwrap();
    let t = token();
    let arn = staged_secret_named(
        &store,
        &format!("{team}{name}"),
        &directory_secret(
            "ad",
            json!(dc.ldaps_url()),
            &dc.principal(&name),
            &first,
            json!({"masterarn": admin}),
        ),
        &[],
        &t,
    )
    .await;
    let function = start(dc.ca_path(), &[]).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let new = stored(&store, &arn, AWSCURRENT).await;
    assert!(dc.binds(&dc.user_dn(&name, Some("Services")), &new));
    assert!(!dc.binds(&dc.principal(&name), &first));
    assert!(dc.binds(&dc.principal("Administrator"), &dc.admin_password()));
    let output = function.output();
    assert!(!output.contains(dc.admin_password().expose_secret()));
    assert_no_stored_secret_in(&store, &arn, &output).await;
}

/// A crash after the change: the DC already holds the pending password.
/// setSecret (over StartTLS) converges without a change (the account's current password no
/// longer binds), and the rotation finishes.
#[tokio::test]
async fn a_pending_password_already_set_converges() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let name = account("done");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let t = token();
    let arn = staged_secret(
        &store,
        &directory_secret(
            "ad",
            json!(dc.ldap_url()),
            &dc.principal(&name),
            &first,
            json!({}),
        ),
        &[],
        &t,
    )
    .await;
    let function = start(dc.ca_path(), &[]).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();
    let pending = stored(&store, &arn, AWSPENDING).await;
    dc.reset_password(&dc.user_dn(&name, None), &pending)
        .unwrap();
    steps::replay(
        &function,
        &arn,
        &t,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
    )
    .await;
    assert!(dc.binds(
        &dc.principal(&name),
        &stored(&store, &arn, AWSCURRENT).await
    ));
    assert!(function.output().contains("already binds"));
}

/// testSecret binds at every server the secret lists: a second "domain
/// controller" (a proxy to the DC) that is down at first is asked again
/// until it answers, within the step's deadline.
#[tokio::test]
async fn every_listed_domain_controller_is_tested() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let second = FaultProxy::start("second DC", ([127, 0, 0, 1], LDAPS_PORT).into())
        .await
        .unwrap();
    let name = account("two");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let t = token();
    let urls = json!([
        dc.ldaps_url(),
        format!("ldaps://127.0.0.1:{}", second.port())
    ]);
    let arn = staged_secret(
        &store,
        &directory_secret("ad", urls, &dc.principal(&name), &first, json!({})),
        &[],
        &t,
    )
    .await;
    let function = start(dc.ca_path(), &[]).await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    second.set_mode(rotor_testbed::fault_proxy::Mode::Down);
    // It comes up once the function has found it down.
    let before = second.connections();
    let up = {
        let proxy = &second;
        async move {
            // At most 30 s: a step that fails first must not hang the test.
            for _ in 0..1500 {
                if proxy.connections() > before {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            proxy.set_mode(rotor_testbed::fault_proxy::Mode::Pass);
        }
    };
    let (tested, ()) = tokio::join!(steps::run(&function, &arn, &t, Step::TestSecret), up);
    assert!(tested.is_ok(), "{tested:?}\n{}", function.output());
    assert!(
        second.connections() >= before + 2,
        "the second server was asked again"
    );
    assert!(function.output().contains("does not bind yet"));
    steps::replay(&function, &arn, &t, &[Step::FinishSecret]).await;
}

/// Certificates are verified: another CA, or a host name the certificate
/// does not carry, is refused before any bind; nothing changes. A DC that
/// wants TLS for a plaintext secret's bind says so.
#[tokio::test]
async fn a_wrong_ca_or_host_name_is_refused() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let other = OpenLdap::start().unwrap();
    let name = account("tls");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    // 127.0.0.2 reaches the DC through a proxy; its certificate names 127.0.0.1.
    let elsewhere = FaultProxy::start_on(
        "127.0.0.2".parse().unwrap(),
        "dc",
        ([127, 0, 0, 1], LDAPS_PORT).into(),
    )
    .await
    .unwrap();
    for (url, ca) in [
        (dc.ldaps_url(), other.ca_path().to_owned()),
        (
            format!("ldaps://127.0.0.2:{}", elsewhere.port()),
            dc.ca_path().to_owned(),
        ),
    ] {
        let t = token();
        let arn = staged_secret(
            &store,
            &directory_secret("ad", json!(url), &dc.principal(&name), &first, json!({})),
            &[],
            &t,
        )
        .await;
        let function = start(&ca, &[]).await;
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap();
        let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert_eq!(kind, "NotRetryable.ServiceTls", "{url}: {message}");
        assert!(message.contains("SSL_CERT_FILE"), "{message}");
        assert!(dc.binds(&dc.principal(&name), &first));
        assert_no_stored_secret_in(&store, &arn, &format!("{message}{}", function.output())).await;
    }
    // "ssl": false at the DC, which refuses simple binds in plaintext: the
    // error says to use TLS.
    let t = token();
    let plain = json!({"ssl": false});
    let value = directory_secret(
        "ad",
        json!(dc.ldap_url()),
        &dc.principal(&name),
        &first,
        plain,
    );
    let arn = staged_secret(&store, &value, &[], &t).await;
    let function = start(dc.ca_path(), &[]).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.ServiceTls", "{message}");
    assert!(
        message.contains("ssl") && message.contains("StartTLS"),
        "{message}"
    );
    assert!(dc.binds(&dc.principal(&name), &first));
}

/// Plaintext only where the secret says `"ssl": false`: an `ldap://` URL
/// is upgraded with StartTLS, and a server that does not speak it never
/// sees a password; with `"ssl": false` OpenLDAP's plaintext port works.
#[tokio::test]
async fn plaintext_only_when_the_secret_says_so() {
    let store = moto_store();
    let listener = RecordingListener::start().await;
    let ldap = OpenLdap::start().unwrap();
    let dn = ldap.user_dn("plain", "people");
    let first = ad_password();
    ldap.create_user("plain", "people", &first).unwrap();
    let t = token();
    let url = format!("ldap://127.0.0.1:{}", listener.port());
    let arn = staged_secret(
        &store,
        &directory_secret("ldap", json!(url), &dn, &first, json!({})),
        &[],
        &t,
    )
    .await;
    let function = start(ldap.ca_path(), &[]).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();
    let refused = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(refused.0, "Retryable.ServiceUnreachable", "{}", refused.1);
    let pending = stored(&store, &arn, AWSPENDING).await;
    assert!(
        !listener.received_contains(first.expose_secret())
            && !listener.received_contains(pending.expose_secret())
    );

    let t2 = token();
    let plain = directory_secret(
        "ldap",
        json!(ldap.ldap_url()),
        &dn,
        &first,
        json!({"ssl": false}),
    );
    let arn2 = staged_secret(&store, &plain, &[], &t2).await;
    steps::replay(&function, &arn2, &t2, &Step::ALL).await;
    assert!(ldap.binds(&dn, &stored(&store, &arn2, AWSCURRENT).await));
    assert!(!ldap.binds(&dn, &first));
}

/// OpenLDAP: the account changes its own password with RFC 3062's password
/// modify and its old password (StartTLS), twice; an admin entry that
/// serves another account's secret resets it (LDAPS).
#[tokio::test]
async fn openldap_self_change_and_admin_reset() {
    let store = moto_store();
    let ldap = OpenLdap::start().unwrap();
    let function = start(ldap.ca_path(), &[]).await;
    let dn = ldap.user_dn("svc-app", "people");
    let first = ad_password();
    ldap.create_user("svc-app", "people", &first).unwrap();
    let t = token();
    let arn = staged_secret(
        &store,
        &directory_secret("ldap", json!(ldap.ldap_url()), &dn, &first, json!({})),
        &[],
        &t,
    )
    .await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let second = stored(&store, &arn, AWSCURRENT).await;
    assert!(ldap.binds(&dn, &second) && !ldap.binds(&dn, &first));
    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(&function, &arn, &t2, &Step::ALL).await;
    assert!(ldap.binds(&dn, &stored(&store, &arn, AWSCURRENT).await) && !ldap.binds(&dn, &second));

    let team = format!("{}/", unique("team"));
    let admin = store
        .create_secret(
            &unique("ldap-admin"),
            &SecretString::from(directory_secret(
                "ldap",
                json!(ldap.ldaps_url()),
                ADMIN_DN,
                &ldap.admin_password(),
                json!({}),
            )),
            &[("rotor:serves", team.as_str())],
        )
        .await
        .unwrap();
    let other = ldap.user_dn("svc-b", "people");
    ldap.create_user("svc-b", "people", &first).unwrap();
    let t3 = token();
    let value = directory_secret(
        "ldap",
        json!(ldap.ldaps_url()),
        &other,
        &first,
        json!({"masterarn": admin}),
    );
    let arn3 = staged_secret_named(&store, &format!("{team}svc-b"), &value, &[], &t3).await;
    steps::replay(&function, &arn3, &t3, &Step::ALL).await;
    assert!(
        ldap.binds(&other, &stored(&store, &arn3, AWSCURRENT).await) && !ldap.binds(&other, &first)
    );
    assert!(ldap.binds(ADMIN_DN, &ldap.admin_password()));
    let output = function.output();
    assert!(!output.contains(ldap.admin_password().expose_secret()));
    assert_no_stored_secret_in(&store, &arn, &output).await;
    assert_no_stored_secret_in(&store, &arn3, &output).await;
}

/// AWS Managed Microsoft AD, from a secret in AWS's shape unchanged (and
/// one with fields renamed by DICT_KEY_*): ResetUserPassword on the
/// Directory Service emulator, backed by the DC; binds at the directory's
/// DNS name over LDAPS. A secret whose current password does not bind is
/// refused before any reset.
#[tokio::test]
async fn managed_ad_in_aws_shape() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let ds = DirectoryServiceEmulator::start(Arc::clone(&dc))
        .await
        .unwrap();
    let ca = dc.ca_path().display().to_string();
    let endpoint = ds.url();
    let env = [
        ("SSL_CERT_FILE", ca.as_str()),
        ("AWS_ENDPOINT_URL_DIRECTORY_SERVICE", endpoint.as_str()),
    ];
    let function = start_function_resolving("ldap-rotation", &[DNS_NAME], &env).await;
    let name = account("seam");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let aws = json!({
        "awsSeamlessDomainDirectoryId": DIRECTORY_ID,
        "awsSeamlessDomainUsername": name,
        "awsSeamlessDomainPassword": first.expose_secret(),
    });
    let t = token();
    let arn = staged_secret(&store, &aws.to_string(), &[], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let new = stored(&store, &arn, AWSCURRENT).await;
    assert!(dc.binds(&dc.principal(&name), &new) && dc.kinit(&name, &new));
    assert!(!dc.binds(&dc.principal(&name), &first));
    let resets = ds
        .calls()
        .iter()
        .filter(|c| c.action == "ResetUserPassword")
        .count();
    assert_eq!(resets, 1, "one reset; the replayed setSecret found it done");

    // A current password that does not bind: no reset.
    let t2 = token();
    let mut wrong = aws.clone();
    wrong["awsSeamlessDomainPassword"] = json!(ad_password().expose_secret());
    let arn2 = staged_secret(&store, &wrong.to_string(), &[], &t2).await;
    steps::run(&function, &arn2, &t2, Step::CreateSecret)
        .await
        .unwrap();
    let (kind, message) = steps::run(&function, &arn2, &t2, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.ServiceAuth", "{message}");
    assert_eq!(
        ds.calls()
            .iter()
            .filter(|c| c.action == "ResetUserPassword")
            .count(),
        1
    );

    // Directory Service's own refusals, by their typed errors: the policy's
    // is final and names it, a service fault is retried; nothing changed.
    let other = account("dsf");
    dc.create_user(&other, &first, None).unwrap();
    let t4 = token();
    let mut fresh = aws.clone();
    fresh["awsSeamlessDomainUsername"] = json!(other);
    let arn4 = staged_secret(&store, &fresh.to_string(), &[], &t4).await;
    steps::run(&function, &arn4, &t4, Step::CreateSecret)
        .await
        .unwrap();
    for (code, status, expected) in [
        (
            "InvalidPasswordException",
            400,
            "NotRetryable.ServiceRejected",
        ),
        ("ServiceException", 500, "Retryable.ServiceUnavailable"),
    ] {
        // The SDK itself retries a 500 twice: fail all three attempts.
        for _ in 0..if status == 500 { 3 } else { 1 } {
            ds.fail_next("ResetUserPassword", code, status);
        }
        let refused = steps::run(&function, &arn4, &t4, Step::SetSecret).await;
        let (kind, message) = match refused {
            Err(refused) => refused,
            Ok(ok) => panic!("{code}: {ok}\n{:?}\n{}", ds.calls(), function.output()),
        };
        assert_eq!(kind, expected, "{code}: {message}");
        assert!(message.contains("ResetUserPassword"), "{message}");
        if code == "InvalidPasswordException" {
            assert!(message.contains("password policy"), "{message}");
        }
        assert!(
            dc.binds(&dc.principal(&other), &first),
            "{code}: nothing changed"
        );
    }
    let retried = steps::run(&function, &arn4, &t4, Step::SetSecret).await;
    assert!(retried.is_ok(), "the retry converges: {retried:?}");
    steps::replay(
        &function,
        &arn4,
        &t4,
        &[Step::TestSecret, Step::FinishSecret],
    )
    .await;

    // AWS's function's DICT_KEY_* variables rename the fields.
    let renamed = [
        ("SSL_CERT_FILE", ca.as_str()),
        ("AWS_ENDPOINT_URL_DIRECTORY_SERVICE", endpoint.as_str()),
        ("DICT_KEY_DIRECTORY", "DirectoryId"),
        ("DICT_KEY_USERNAME", "Username"),
        ("DICT_KEY_PASSWORD", "Password"),
    ];
    let function2 = start_function_resolving("ldap-rotation", &[DNS_NAME], &renamed).await;
    let other = account("dict");
    dc.create_user(&other, &first, None).unwrap();
    let t3 = token();
    let value =
        json!({"DirectoryId": DIRECTORY_ID, "Username": other, "Password": first.expose_secret()});
    let arn3 = staged_secret(&store, &value.to_string(), &[], &t3).await;
    steps::replay(&function2, &arn3, &t3, &Step::ALL).await;
    assert!(dc.binds(
        &dc.principal(&other),
        &stored(&store, &arn3, AWSCURRENT).await
    ));
    let text = format!("{message}{}{}", function.output(), function2.output());
    for a in [&arn, &arn2, &arn3, &arn4] {
        assert_no_stored_secret_in(&store, a, &text).await;
    }
}

/// Two accounts that take turns (`alternate`, both made by the directory's
/// admin; rotor never creates accounts): each rotation sets the other
/// account's password and makes it current, so the one before keeps binding
/// until the next rotation. The first rotation uses the alternate's
/// one-time `alternate_password`; later ones find it in AWSPREVIOUS.
#[tokio::test]
async fn alternating_accounts_keep_the_previous_one_working() {
    let _policy = domain_policy().read().await;
    let dc = samba();
    let store = moto_store();
    let (a, b) = (account("alta"), account("altb"));
    let (pa, pb) = (ad_password(), ad_password());
    dc.create_user(&a, &pa, None).unwrap();
    dc.create_user(&b, &pb, None).unwrap();
    let pair = json!({"alternate": dc.principal(&b), "alternate_password": pb.expose_secret()});
    let value = directory_secret("ad", json!(dc.ldaps_url()), &dc.principal(&a), &pa, pair);
    let t = token();
    let arn = staged_secret(&store, &value, &[], &t).await;
    let function = start(dc.ca_path(), &[]).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let current: Value =
        serde_json::from_str(value_of(&store, &arn, AWSCURRENT).await.expose_secret()).unwrap();
    assert_eq!(current["username"], dc.principal(&b));
    assert!(current.get("alternate_password").is_none(), "used once");
    let b_new = stored(&store, &arn, AWSCURRENT).await;
    assert!(dc.binds(&dc.principal(&b), &b_new) && !dc.binds(&dc.principal(&b), &pb));
    assert!(
        dc.binds(&dc.principal(&a), &pa),
        "the previous account still binds"
    );

    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(&function, &arn, &t2, &Step::ALL).await;
    let a_new = stored(&store, &arn, AWSCURRENT).await;
    assert!(dc.binds(&dc.principal(&a), &a_new) && !dc.binds(&dc.principal(&a), &pa));
    assert!(
        dc.binds(&dc.principal(&b), &b_new),
        "AWSPREVIOUS still binds"
    );
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

async fn value_of(store: &AwsStore, arn: &str, label: &str) -> SecretString {
    value(store, arn, label).await.expect("a stored value")
}
