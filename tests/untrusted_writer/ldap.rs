//! The secret writer as an attacker against ldap-rotation: a team whose
//! secret a shared directory admin serves tries to make that admin reset an
//! account that is not the team's (the admin's own, a Domain Admins member,
//! another team's), or to send the admin's password to a server of its own.
//! Each attempt is refused, changes nothing, and the admin's password goes
//! nowhere but the admin secret's own URL.

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_testbed::samba_dc::SambaDc;
use rotor_tests::directories::{account, ad_password, directory_secret, domain_policy, samba};
use rotor_tests::listener::RecordingListener;
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, staged_secret_named, steps, token, unique, value,
};
use serde_json::json;

use crate::ldap::{samba_admin, start};

/// The writer's attempt: its own secret (under the prefix the admin
/// serves) naming `username` with `password`, at `url`. Returns the
/// refusal of the first step that fails, the function and the secret.
async fn attempt(
    store: &AwsStore,
    dc: &SambaDc,
    (admin, team): (&str, &str),
    url: String,
    username: &str,
    password: &SecretString,
) -> ((String, String), LocalFunction, String) {
    let t = token();
    let value = directory_secret(
        "ad",
        json!(url),
        username,
        password,
        json!({"masterarn": admin}),
    );
    let arn = staged_secret_named(store, &format!("{team}{}", unique("w")), &value, &[], &t).await;
    let function = start(dc.ca_path(), &[]).await;
    for s in Step::ALL {
        if let Err(refused) = steps::run(&function, &arn, &t, s).await {
            return (refused, function, arn);
        }
    }
    panic!(
        "the writer's rotation of {username} completed\n{}",
        function.output()
    );
}

/// Nothing changed for the account, the admin still binds, no pending value
/// stayed on the DC, and no value of either secret is in the output.
async fn nothing_changed(
    store: &AwsStore,
    dc: &SambaDc,
    arn: &str,
    bind: &str,
    password: &SecretString,
    text: &str,
) {
    assert!(dc.binds(bind, password), "{bind}'s password was changed");
    assert!(
        dc.binds(&dc.principal("Administrator"), &dc.admin_password()),
        "the admin's password was changed"
    );
    if let Some(pending) = value(store, arn, AWSPENDING).await {
        let pending = rotor_tests::directories::password_of(&pending);
        assert!(!dc.binds(bind, &pending), "the pending password was set");
    }
    assert!(
        !text.contains(dc.admin_password().expose_secret()),
        "the admin's password is in the output"
    );
    assert_no_stored_secret_in(store, arn, text).await;
}

/// The writer names the admin's own account (knowing nothing of its
/// password, and then with it too): NotManaged, nothing changed.
#[tokio::test]
async fn a_served_writer_cannot_name_the_admins_account() {
    let _policy = domain_policy().read().await;
    let (dc, store) = (samba(), moto_store());
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    // With the admin's password (a writer who learnt it) the pending bind
    // fails and the proof binds: only the core's own-account rule stands.
    let who = dc.principal("Administrator");
    let ((kind, message), function, arn) = attempt(
        &store,
        &dc,
        (&admin, &team),
        dc.ldaps_url(),
        &who,
        &dc.admin_password(),
    )
    .await;
    assert_eq!(kind, "NotRetryable.NotManaged", "{message}");
    assert!(
        message.contains("own account") && message.contains(&admin),
        "{message}"
    );
    let text = format!("{message}\n{}", function.output());
    nothing_changed(&store, &dc, &arn, &who, &dc.admin_password(), &text).await;
}

/// The writer knows the password of a Domain Admins member and names it:
/// the admin never resets a privileged account unless its owner names the
/// account itself in rotor:manages; with that tag, it does.
#[tokio::test]
async fn a_served_writer_cannot_have_a_domain_admin_reset() {
    let _policy = domain_policy().read().await;
    let (dc, store) = (samba(), moto_store());
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    let name = account("da");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    dc.add_to_group("Domain Admins", &name).unwrap();
    let who = dc.principal(&name);
    let ((kind, message), function, arn) =
        attempt(&store, &dc, (&admin, &team), dc.ldaps_url(), &who, &first).await;
    assert_eq!(kind, "NotRetryable.NotManaged", "{message}");
    assert!(
        message.contains("Domain Admins") && message.contains("rotor:manages"),
        "{message}"
    );
    let text = format!("{message}\n{}", function.output());
    nothing_changed(&store, &dc, &arn, &who, &first, &text).await;

    // Its owner names the account exactly: the reset is allowed.
    let (allowed, team2) = samba_admin(&store, &dc, &[("rotor:manages", name.as_str())]).await;
    let t = token();
    let value = directory_secret(
        "ad",
        json!(dc.ldaps_url()),
        &who,
        &first,
        json!({"masterarn": allowed}),
    );
    let arn2 = staged_secret_named(&store, &format!("{team2}{name}"), &value, &[], &t).await;
    for s in Step::ALL {
        let result = steps::run(&function, &arn2, &t, s).await;
        assert!(result.is_ok(), "{s:?}: {result:?}");
    }
    let new = rotor_tests::directories::password_of(&value_of(&store, &arn2).await);
    assert!(dc.binds(&who, &new) && !dc.binds(&who, &first));
}

async fn value_of(store: &AwsStore, arn: &str) -> SecretString {
    value(store, arn, AWSCURRENT)
        .await
        .expect("a current value")
}

/// The writer names another team's account in another OU, whose password it
/// does not hold: no password of its secret binds as that account, so the
/// admin resets nothing. A rotor:manages prefix refuses it by name too.
#[tokio::test]
async fn a_served_writer_cannot_have_another_ous_account_reset() {
    let _policy = domain_policy().read().await;
    let (dc, store) = (samba(), moto_store());
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    dc.create_ou("OtherTeam").unwrap();
    let name = account("oth");
    let theirs = ad_password();
    dc.create_user(&name, &theirs, Some("OtherTeam")).unwrap();
    let who = dc.principal(&name);
    let guess = ad_password();
    let ((kind, message), function, arn) =
        attempt(&store, &dc, (&admin, &team), dc.ldaps_url(), &who, &guess).await;
    assert_eq!(kind, "NotRetryable.ServiceMismatch", "{message}");
    assert!(
        message.contains("refused every password of this secret"),
        "{message}"
    );
    let text = format!("{message}\n{}", function.output());
    nothing_changed(&store, &dc, &arn, &who, &theirs, &text).await;

    let (limited, team2) = samba_admin(&store, &dc, &[("rotor:manages", "app...")]).await;
    let ((kind, message), function, arn) = attempt(
        &store,
        &dc,
        (&limited, &team2),
        dc.ldaps_url(),
        &who,
        &theirs,
    )
    .await;
    assert_eq!(kind, "NotRetryable.NotManaged", "{message}");
    assert!(message.contains("rotor:manages"), "{message}");
    let text = format!("{message}\n{}", function.output());
    nothing_changed(&store, &dc, &arn, &who, &theirs, &text).await;
}

/// The writer points its secret at a server of its own (another port of
/// the admin's host, and another host name) with the admin named: refused
/// before the admin binds anywhere; the writer's server never sees the
/// admin's password, only the writer's own pending bind attempt.
#[tokio::test]
async fn a_served_writer_cannot_send_the_admins_password_elsewhere() {
    let _policy = domain_policy().read().await;
    let (dc, store) = (samba(), moto_store());
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    let name = account("own");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let who = dc.principal(&name);
    let listener = RecordingListener::start().await;
    for url in [
        format!("ldap://127.0.0.1:{}", listener.port()),
        format!("ldaps://localhost:{}", listener.port()),
    ] {
        let t = token();
        let value = directory_secret("ad", json!(url), &who, &first, json!({"masterarn": admin}));
        let arn =
            staged_secret_named(&store, &format!("{team}{}", unique("w")), &value, &[], &t).await;
        let function = start(dc.ca_path(), &[]).await;
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap();
        let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert!(
            kind.starts_with("Retryable.Service") || kind == "NotRetryable.InvalidSettings",
            "{kind}: {message}"
        );
        assert!(!listener.received_contains(dc.admin_password().expose_secret()));
        let text = format!("{message}\n{}", function.output());
        nothing_changed(&store, &dc, &arn, &who, &first, &text).await;
    }
}

/// The admin secret names a host the writer's secret does not: even with
/// the writer's server answering like the DC (a proxy to it on another
/// port), the admin refuses, naming masterarn and both endpoints.
#[tokio::test]
async fn the_admin_acts_only_at_its_own_endpoint() {
    let _policy = domain_policy().read().await;
    let (dc, store) = (samba(), moto_store());
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    let proxy = rotor_testbed::fault_proxy::FaultProxy::start(
        "writer's DC",
        ([127, 0, 0, 1], rotor_testbed::samba_dc::LDAPS_PORT).into(),
    )
    .await
    .unwrap();
    let name = account("prx");
    let first = ad_password();
    dc.create_user(&name, &first, None).unwrap();
    let who = dc.principal(&name);
    let before = proxy.chunks();
    let ((kind, message), function, arn) = attempt(
        &store,
        &dc,
        (&admin, &team),
        format!("ldaps://127.0.0.1:{}", proxy.port()),
        &who,
        &first,
    )
    .await;
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(
        message.contains("masterarn") && message.contains(&format!("127.0.0.1:{}", proxy.port())),
        "{message}"
    );
    assert!(
        proxy.chunks() > before,
        "only the writer's own pending bind went there"
    );
    let text = format!("{message}\n{}", function.output());
    nothing_changed(&store, &dc, &arn, &who, &first, &text).await;
}

/// The writer names the admin's account, or another team's, as the
/// `alternate` of its own pair (with a guessed `alternate_password`): the
/// admin acts on the account the pending value names under the same rules,
/// so nothing is reset and the accounts keep their passwords.
#[tokio::test]
async fn a_served_writer_cannot_name_another_account_as_its_alternate() {
    let _policy = domain_policy().read().await;
    let (dc, store) = (samba(), moto_store());
    let (admin, team) = samba_admin(&store, &dc, &[]).await;
    let own = account("pair");
    let first = ad_password();
    dc.create_user(&own, &first, None).unwrap();
    let theirs = account("oth");
    let their_password = ad_password();
    dc.create_user(&theirs, &their_password, None).unwrap();
    let function = start(dc.ca_path(), &[]).await;
    for (target, guess, expected) in [
        (
            "Administrator",
            dc.admin_password(),
            "NotRetryable.NotManaged",
        ),
        (
            theirs.as_str(),
            ad_password(),
            "NotRetryable.ServiceMismatch",
        ),
    ] {
        let pair = json!({
            "masterarn": admin,
            "alternate": dc.principal(target),
            "alternate_password": guess.expose_secret(),
        });
        let value = directory_secret(
            "ad",
            json!(dc.ldaps_url()),
            &dc.principal(&own),
            &first,
            pair,
        );
        let t = token();
        let arn =
            staged_secret_named(&store, &format!("{team}{}", unique("w")), &value, &[], &t).await;
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap();
        let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert_eq!(kind, expected, "{target}: {message}");
        let text = format!("{message}\n{}", function.output());
        nothing_changed(&store, &dc, &arn, &dc.principal(&own), &first, &text).await;
    }
    assert!(dc.binds(&dc.principal(&theirs), &their_password));
}
