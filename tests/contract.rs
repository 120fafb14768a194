//! One contract suite for every adapter of the secret-store port: the in-memory
//! store must behave as moto does wherever moto behaves as AWS documents, and
//! where moto does not, AWS's documented behaviour is what the in-memory store
//! does and what the test asserts (each such place says so).

use rotor_core::ExposeSecret;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, LabelMove};
use rotor_core::store::{NewVersion, RotationService, StoreError, VersionSelector};
use rotor_core::{MemoryStore, SecretString};
use rotor_tests::{moto_store, token, unique};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Moto,
}

async fn secret<S: RotationService>(store: &S, value: &str) -> String {
    store
        .create_secret(
            &unique("contract"),
            &SecretString::from(value),
            &[("team", "payments"), ("rotor:fields", "password")],
        )
        .await
        .unwrap()
}

fn text(value: Option<rotor_core::store::StoredValue>) -> Option<String> {
    value.map(|v| v.value.expose_secret().to_owned())
}

async fn describe_shows_current_labels_and_tags<S: RotationService>(store: S, _: Backend) {
    let arn = secret(&store, "v1").await;
    let described = store.describe(&arn).await.unwrap();
    assert_eq!(described.arn, arn);
    assert!(!described.rotation_enabled);
    assert_eq!(described.versions.iter().count(), 1);
    assert!(described.versions.current().is_some());
    assert_eq!(
        described.tags.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(
        described.tags.get("rotor:fields").map(String::as_str),
        Some("password")
    );
    let by_name = store.describe(&described.name).await.unwrap();
    assert_eq!(by_name.arn, arn);
}

async fn unknown_secrets_are_not_found<S: RotationService>(store: S, _: Backend) {
    let missing = unique("missing");
    assert!(matches!(
        store.describe(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .get_value(&missing, VersionSelector::Label(AWSCURRENT))
            .await
            .unwrap()
            .is_none()
    );
}

async fn begin_rotation_stages_a_pending_version_without_value<S: RotationService>(
    store: S,
    _: Backend,
) {
    let arn = secret(&store, "v1").await;
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    let described = store.describe(&arn).await.unwrap();
    assert!(described.rotation_enabled);
    assert_eq!(described.versions.with_label(AWSPENDING), Some(t.as_str()));
    assert!(
        store
            .get_value(&arn, VersionSelector::Label(AWSPENDING))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_value(&arn, VersionSelector::Id(&t, Some(AWSPENDING)))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        text(
            store
                .get_value(&arn, VersionSelector::Label(AWSCURRENT))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("v1")
    );
}

async fn put_value_fills_the_pending_version_idempotently<S: RotationService>(
    store: S,
    backend: Backend,
) {
    let arn = secret(&store, "v1").await;
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    let new = SecretString::from("v2");
    let put = NewVersion {
        token: &t,
        value: &new,
        labels: &[AWSPENDING],
        rotation_token: None,
    };
    store.put_value(&arn, put).await.unwrap();
    store.put_value(&arn, put).await.unwrap(); // the same request again succeeds
    let read = store
        .get_value(&arn, VersionSelector::Id(&t, Some(AWSPENDING)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.version_id, t);
    assert_eq!(read.value.expose_secret(), "v2");
    assert!(read.created.is_some());

    let other = SecretString::from("v3");
    let conflicting = store
        .put_value(
            &arn,
            NewVersion {
                value: &other,
                ..put
            },
        )
        .await;
    match backend {
        // AWS refuses a different value under an existing version id
        // (ResourceExistsException): a version's value never changes.
        Backend::Memory => assert!(matches!(conflicting, Err(StoreError::Rejected(_)))),
        // moto 5.2 overwrites the value instead; AWS's behaviour is the contract.
        Backend::Moto => {}
    }
}

async fn reading_an_id_under_the_wrong_label_finds_nothing<S: RotationService>(
    store: S,
    _: Backend,
) {
    let arn = secret(&store, "v1").await;
    let current = store
        .describe(&arn)
        .await
        .unwrap()
        .versions
        .current()
        .unwrap()
        .to_owned();
    assert!(
        store
            .get_value(&arn, VersionSelector::Id(&current, Some(AWSPENDING)))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_value(&arn, VersionSelector::Id(&current, None))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_value(&arn, VersionSelector::Id(&token(), None))
            .await
            .unwrap()
            .is_none()
    );
}

async fn moving_current_leaves_previous_behind<S: RotationService>(store: S, _: Backend) {
    let arn = secret(&store, "v1").await;
    let old = store
        .describe(&arn)
        .await
        .unwrap()
        .versions
        .current()
        .unwrap()
        .to_owned();
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    let new = SecretString::from("v2");
    store
        .put_value(
            &arn,
            NewVersion {
                token: &t,
                value: &new,
                labels: &[AWSPENDING],
                rotation_token: None,
            },
        )
        .await
        .unwrap();

    // Moving AWSCURRENT without naming where it is attached is refused.
    let unnamed = LabelMove {
        label: AWSCURRENT.into(),
        to: Some(t.clone()),
        from: None,
    };
    assert!(matches!(
        store.move_label(&arn, &unnamed).await,
        Err(StoreError::Rejected(_))
    ));
    // So is taking it from a version that does not carry it.
    let wrong = LabelMove {
        label: AWSCURRENT.into(),
        to: Some(t.clone()),
        from: Some(t.clone()),
    };
    assert!(matches!(
        store.move_label(&arn, &wrong).await,
        Err(StoreError::Rejected(_))
    ));

    let promote = LabelMove {
        label: AWSCURRENT.into(),
        to: Some(t.clone()),
        from: Some(old.clone()),
    };
    store.move_label(&arn, &promote).await.unwrap();
    let versions = store.describe(&arn).await.unwrap().versions;
    assert_eq!(versions.current(), Some(t.as_str()));
    assert_eq!(versions.previous(), Some(old.as_str()));
    assert!(versions.has_label(&t, AWSPENDING));

    let tidy = LabelMove {
        label: AWSPENDING.into(),
        to: None,
        from: Some(t.clone()),
    };
    store.move_label(&arn, &tidy).await.unwrap();
    // Removing a label from a version that no longer has it is refused.
    assert!(matches!(
        store.move_label(&arn, &tidy).await,
        Err(StoreError::Rejected(_))
    ));
    let versions = store.describe(&arn).await.unwrap().versions;
    assert_eq!(versions.with_label(AWSPENDING), None);
    assert_eq!(
        text(
            store
                .get_value(&arn, VersionSelector::Label(AWSPREVIOUS))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("v1")
    );
    assert_eq!(
        text(
            store
                .get_value(&arn, VersionSelector::Label(AWSCURRENT))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("v2")
    );
}

async fn a_second_rotation_moves_previous_on<S: RotationService>(store: S, _: Backend) {
    let arn = secret(&store, "v1").await;
    for (i, value) in ["v2", "v3"].into_iter().enumerate() {
        let t = format!("{}{i}", token());
        store.begin_rotation(&arn, &t).await.unwrap();
        let value = SecretString::from(value);
        store
            .put_value(
                &arn,
                NewVersion {
                    token: &t,
                    value: &value,
                    labels: &[AWSPENDING],
                    rotation_token: None,
                },
            )
            .await
            .unwrap();
        let versions = store.describe(&arn).await.unwrap().versions;
        let current = versions.current().unwrap().to_owned();
        for change in versions.finish_plan(&t, AWSPENDING) {
            store.move_label(&arn, &change).await.unwrap();
        }
        let after = store.describe(&arn).await.unwrap().versions;
        assert_eq!(after.current(), Some(t.as_str()));
        assert_eq!(after.previous(), Some(current.as_str()));
        assert_eq!(after.with_label(AWSPENDING), None);
    }
    assert_eq!(
        text(
            store
                .get_value(&arn, VersionSelector::Label(AWSPREVIOUS))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("v2")
    );
}

async fn unknown_versions_are_not_found<S: RotationService>(store: S, _: Backend) {
    let arn = secret(&store, "v1").await;
    let change = LabelMove {
        label: "Custom".into(),
        to: Some(token()),
        from: None,
    };
    assert!(matches!(
        store.move_label(&arn, &change).await,
        Err(StoreError::NotFound(_) | StoreError::Rejected(_))
    ));
}

/// Runs each check against both adapters, as separate tests.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $check() { super::$check(super::MemoryStore::new(), super::Backend::Memory).await }) *
        }
        mod moto {
            $(#[tokio::test] async fn $check() { super::$check(super::moto_store(), super::Backend::Moto).await }) *
        }
    };
}

contract!(
    describe_shows_current_labels_and_tags,
    unknown_secrets_are_not_found,
    begin_rotation_stages_a_pending_version_without_value,
    put_value_fills_the_pending_version_idempotently,
    reading_an_id_under_the_wrong_label_finds_nothing,
    moving_current_leaves_previous_behind,
    a_second_rotation_moves_previous_on,
    unknown_versions_are_not_found,
);
