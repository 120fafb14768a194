//! The secret writer as an attacker against iam-rotation: a team that may
//! write its own secret tries to make the function change the keys of a user
//! that is not the team's: one outside the deployer's `IAM_USER_ARNS`, one
//! of another account, another team's user that a wide list admits, or its
//! own user with another user's `AccessKeyId`. Each is refused at
//! createSecret before any IAM call that changes something: every user's
//! keys are as they were, nothing is stored as AWSPENDING, and no secret
//! access key appears in the error or the function's output.
//!
//! The function's own IAM user may act on every user here (moto checks
//! policies against `*`), so each refusal is the function's own check, not
//! IAM's.

use rotor_core::labels::AWSPENDING;
use rotor_core::{ExposeSecret, Step};
use rotor_tests::iam::{self, FUNCTION_ACTIONS, Key};
use rotor_tests::{moto, moto_store, staged_secret, steps, token, value};

/// The team's secret naming `user` with `key`, rotated by a function with
/// `env`: the refusal of createSecret, after checking that nothing changed.
async fn attempt(
    user: &str,
    key: &Key,
    env: &[(&str, &str)],
    bystanders: &[&str],
) -> (String, String) {
    let store = moto_store();
    let t = token();
    let arn = staged_secret(&store, &iam::secret_value(user, key), &[], &t).await;
    let mut before = Vec::new();
    for u in bystanders {
        before.push(iam::keys(u).await);
    }
    let fn_key = iam::function_user(&FUNCTION_ACTIONS).await;
    let function = iam::start(moto().endpoint(), iam::iam_moto().endpoint(), &fn_key, env).await;
    let refused = steps::run(&function, &arn, &t, Step::CreateSecret).await;
    let Err(refusal) = refused else {
        panic!("createSecret passed\n{}", function.output());
    };
    for (u, keys) in bystanders.iter().zip(before) {
        assert_eq!(iam::keys(u).await, keys, "the keys of {u} changed");
    }
    assert!(value(&store, &arn, AWSPENDING).await.is_none());
    let secrets = [key.secret.expose_secret().to_owned()];
    let text = format!("{refusal:?}{}", function.output());
    rotor_tests::assert_none_in(&secrets, "the secret access key", &text);
    refusal
}

#[tokio::test]
async fn a_user_outside_the_allow_list_is_refused() {
    let (team, _) = iam::user_with_key("team").await;
    let (victim, victim_key) = iam::user_with_key("victim").await;
    let allowed = iam::user_arn(&team);
    let (kind, message) = attempt(
        &victim,
        &victim_key,
        &[("IAM_USER_ARNS", &allowed)],
        &[&victim, &team],
    )
    .await;
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(
        message.contains("IAM_USER_ARNS") && message.contains(&victim),
        "{message}"
    );
}

#[tokio::test]
async fn another_accounts_user_is_refused() {
    let (victim, victim_key) = iam::user_with_key("victim").await;
    // The deployer lists a user of another account by that name; IAM here
    // answers for the function's own account, whose user it is not.
    let other = format!("arn:aws:iam::210987654321:user/{victim}");
    let (kind, message) = attempt(
        &victim,
        &victim_key,
        &[("IAM_USER_ARNS", &other)],
        &[&victim],
    )
    .await;
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(message.contains(&iam::user_arn(&victim)), "{message}");
}

#[tokio::test]
async fn another_teams_listed_user_needs_its_owners_tag() {
    let (victim, victim_key) = iam::user_with_key("team-b").await;
    let wide = format!("arn:aws:iam::{}:user/team-*", iam::ACCOUNT);
    let (kind, message) = attempt(
        &victim,
        &victim_key,
        &[("IAM_USER_ARNS", &wide)],
        &[&victim],
    )
    .await;
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(
        message.contains("rotor:secret") && message.contains("tag-user"),
        "{message}"
    );
}

#[tokio::test]
async fn an_access_key_of_another_user_is_refused() {
    let (team, _) = iam::user_with_key("team").await;
    let (victim, victim_key) = iam::user_with_key("victim").await;
    let allowed = iam::user_arn(&team);
    // The team's own user, with the victim's key: the function must not
    // treat the victim's key as the team's current one.
    let (kind, message) = attempt(
        &team,
        &victim_key,
        &[("IAM_USER_ARNS", &allowed)],
        &[&victim, &team],
    )
    .await;
    assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
    assert!(
        message.contains("AccessKeyId") && message.contains(&victim_key.id),
        "{message}"
    );
}
