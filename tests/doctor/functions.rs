//! The rotation function as Lambda describes it: missing, misconfigured, or not the
//! function the secret's value is for.

use rotor_core::labels::AWSPENDING;
use rotor_core::store::RotationService;
use rotor_core::{SecretStore, SecretString};
use rotor_tests::{moto_store, token, unique};
use serde_json::{Value, json};

use super::{
    Vars, codes, deploy, deploy_described, doctor, function_arn, rotates, rotor, secret_for,
    served_by, start_rotation,
};

/// The rotation function was deleted: reported with the command that points
/// the secret at one; the stuck rotation it left can still be cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_function_is_reported() {
    let store = moto_store();
    let arn = store
        .create_secret(&unique("doctor"), &SecretString::from("v"), &[])
        .await
        .expect("create");
    start_rotation(&arn, &function_arn(&unique("gone")), &token()).await;
    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["function-missing", "pending-without-value"]);
    // Against an emulator, the function is set by the local runner (which
    // tests it with the function's binary); RotateSecret would leave the
    // emulator's copy of the value AWSPENDING.
    let fix = doc["findings"][0]["fix"].to_string();
    assert!(
        fix.contains("--rotation-function FUNCTION_ARN --test-only"),
        "{fix}"
    );

    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0", "--fix", "--yes"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["function-missing"]);
    rotates(&store, &arn).await;
}

/// A function Secrets Manager may not invoke, with a short timeout and a
/// setting its own parser refuses.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_metadata_problems_are_findings() {
    let store = moto_store();
    let arn = store
        .create_secret(&unique("doctor"), &SecretString::from("v"), &[])
        .await
        .expect("create");
    let function = unique("fn");
    let pending = token();
    start_rotation(&arn, &function_arn(&function), &pending).await;
    store
        .move_label(
            &arn,
            &rotor_core::labels::LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(pending),
            },
        )
        .await
        .expect("unstage");
    deploy(
        &function,
        "rds-rotation",
        &[("ROTATION_STRATEGY", "sideways")],
        3,
        false,
    )
    .await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    let mut found = codes(&doc);
    found.sort();
    assert_eq!(
        found,
        [
            "current-unparsable",
            "function-settings",
            "not-invocable",
            "short-timeout"
        ]
    );
    let (code, out) = rotor(&["status", "--prefix", &arn_name(&arn)]).await;
    assert_eq!(code, 1);
    assert!(out.contains("misconfigured"), "{out}");
}

fn arn_name(arn: &str) -> String {
    let name = arn.rsplit(':').next().unwrap_or(arn);
    // Secrets Manager appends -XXXXXX to the name in the ARN.
    name[..name.len().saturating_sub(7)].to_owned()
}

/// Which function a secret is for comes from its rotation function: the
/// template's description, else the function's name, else its settings, the
/// value's shape deciding only between the functions those settings fit.
#[tokio::test(flavor = "multi_thread")]
async fn the_function_and_the_value_say_which_function_a_secret_is_for() {
    let store = moto_store();
    let redis_value = r#"{"host":"cache.example","username":"app","password":"pw"}"#;
    let oauth_value = json!({
        "provider": "keycloak", "client_id": "app", "client_secret": "s",
        "token_endpoint": "https://idp.example/realms/r/protocol/openid-connect/token",
        "admin_url": "https://idp.example/admin/realms/r", "management_secret_arn": "m"
    })
    .to_string();
    // (description, name suffix, settings, value, kind)
    let cases: [(&str, &str, Vars, &str, &str); 5] = [
        (
            "caches",
            "-redis-rotation",
            &[],
            redis_value,
            "redis-rotation",
        ),
        (
            "caches",
            "",
            &[("MASTER_SECRET_ARN", "admin")],
            redis_value,
            "redis-rotation",
        ),
        (
            "caches",
            "",
            &[("REVOKE_PREVIOUS", "at-finish")],
            redis_value,
            "redis-rotation",
        ),
        (
            "clients",
            "",
            &[("REVOKE_PREVIOUS", "at-finish")],
            &oauth_value,
            "oauth-rotation",
        ),
        (
            "caches",
            "",
            &[("MANAGED_USER_ARNS", "")],
            redis_value,
            "redis-rotation",
        ),
    ];
    for (description, suffix, env, value, kind) in cases {
        let name = format!("{}{suffix}", unique("fn"));
        let arn = secret_for(&store, &unique("doctor"), value, &[], &name, None).await;
        deploy_described(&name, description, env, 60, true).await;
        let (_, doc) = doctor(&arn, &[]).await;
        assert_eq!(doc["kind"], kind, "{description} {suffix} {env:?}: {doc}");
        assert!(
            !codes(&doc).contains(&"current-unparsable".to_owned()),
            "{kind}: {doc}"
        );
    }
}

/// `rotor status` names the rotor function behind every secret (each one the
/// template deploys) and calls a secret misconfigured when its function's
/// own settings parser refuses the settings, or when it is the scheduler.
#[tokio::test(flavor = "multi_thread")]
async fn status_knows_every_function_the_template_deploys() {
    let store = moto_store();
    let prefix = unique("status");
    let cases: [(&str, Vars, &str); 6] = [
        ("generic-rotation", &[], "ok"),
        ("rds-rotation", &[("ROTATION_STRATEGY", "single")], "ok"),
        ("oauth-rotation", &[], "ok"),
        ("redis-rotation", &[], "ok"),
        (
            "redis-rotation",
            &[("REVOKE_PREVIOUS", "sometimes")],
            "misconfigured",
        ),
        ("rotation-scheduler", &[], "misconfigured"),
    ];
    let mut expected = Vec::new();
    for (n, (kind, env, health)) in cases.iter().enumerate() {
        let name = format!("{prefix}/{n}");
        let (_, function) = served_by(&store, &name, "v", &[]).await;
        deploy(&function, kind, env, 600, true).await;
        expected.push((name, kind.to_string(), health.to_string()));
    }
    let (code, out) = rotor(&["status", "--prefix", &prefix, "--json"]).await;
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).expect("status --json");
    let mut seen: Vec<(String, String, String)> = doc["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["kind"].as_str().unwrap_or_default().to_owned(),
                s["health"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, expected, "{doc}");
    let reasons = doc.to_string();
    assert!(reasons.contains("REVOKE_PREVIOUS"), "{reasons}");
    assert!(reasons.contains("rotation-scheduler"), "{reasons}");
}
