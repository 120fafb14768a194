//! The secret-store contract: what every adapter of the store port must do, as
//! Secrets Manager documents it. It keeps the in-memory store honest (rotor's
//! tests run it on [`MemoryStore`](crate::MemoryStore) and on moto), and it
//! lets another store prove itself before a driver relies on it.
//!
//! Where moto differs from AWS's documentation, AWS's is the contract; a store
//! known to differ says so with its [`Reference`], and each such place is
//! named below.
//!
//! Each check creates its own secrets under [`unique`] names, so the checks
//! can share a store and run in any order or at once.
//!
//! In a test crate, one test per check:
//!
//! ```
//! mod memory_store {
//!     rotor_core::store_contract_tests!(
//!         rotor_core::MemoryStore::new(),
//!         rotor_core::testing::store_contract::Reference::Aws,
//!     );
//! }
//! # fn main() {}
//! ```
//!
//! Or all of them at once, with every failure listed:
//!
//! ```
//! use rotor_core::MemoryStore;
//! use rotor_core::testing::store_contract::{Reference, run_all};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! run_all(&MemoryStore::new(), Reference::Aws).await.unwrap();
//! # }
//! ```

use secrecy::{ExposeSecret, SecretString};

use super::{Failure, Failures, OrFail, RotationService, block_on, ensure, token, unique};
use crate::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, LabelMove};
use crate::store::{NewVersion, StoreError, StoredValue, VersionSelector};

/// Which behaviour the store is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reference {
    /// All of AWS's documented behaviour: for AWS itself, the in-memory store
    /// and any new adapter.
    Aws,
    /// moto 5.2, which overwrites a version's value when PutSecretValue repeats
    /// the version id with another value (AWS refuses it: a version's value
    /// never changes). Everything else as [`Reference::Aws`].
    Moto,
}

/// One check of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// DescribeSecret shows the ARN, the name, AWSCURRENT and the tags.
    DescribeShowsCurrentLabelsAndTags,
    /// A missing secret is NotFound to DescribeSecret and has no value.
    UnknownSecretsAreNotFound,
    /// Staging turns rotation on and labels a version with no value AWSPENDING.
    BeginRotationStagesAPendingVersionWithoutValue,
    /// PutSecretValue fills the pending version; the same request again succeeds.
    PutValueFillsThePendingVersionIdempotently,
    /// A version read by id under a label it does not carry finds nothing.
    ReadingAnIdUnderTheWrongLabelFindsNothing,
    /// Moving AWSCURRENT names where it comes from and leaves AWSPREVIOUS behind.
    MovingCurrentLeavesPreviousBehind,
    /// A second rotation moves AWSPREVIOUS on to the version it replaced.
    ASecondRotationMovesPreviousOn,
    /// Moving a label to a version that does not exist is refused.
    UnknownVersionsAreNotFound,
    /// TagResource adds one tag, then replaces its value, and leaves the others.
    SetTagReplacesOneTag,
}

impl Check {
    /// Every check, in the order [`run_all`] runs them.
    pub const ALL: [Check; 9] = [
        Check::DescribeShowsCurrentLabelsAndTags,
        Check::UnknownSecretsAreNotFound,
        Check::BeginRotationStagesAPendingVersionWithoutValue,
        Check::PutValueFillsThePendingVersionIdempotently,
        Check::ReadingAnIdUnderTheWrongLabelFindsNothing,
        Check::MovingCurrentLeavesPreviousBehind,
        Check::ASecondRotationMovesPreviousOn,
        Check::UnknownVersionsAreNotFound,
        Check::SetTagReplacesOneTag,
    ];

    /// The check's name, as [`store_contract_tests!`](crate::store_contract_tests)
    /// names its test.
    pub fn name(self) -> &'static str {
        match self {
            Check::DescribeShowsCurrentLabelsAndTags => "describe_shows_current_labels_and_tags",
            Check::UnknownSecretsAreNotFound => "unknown_secrets_are_not_found",
            Check::BeginRotationStagesAPendingVersionWithoutValue => {
                "begin_rotation_stages_a_pending_version_without_value"
            }
            Check::PutValueFillsThePendingVersionIdempotently => {
                "put_value_fills_the_pending_version_idempotently"
            }
            Check::ReadingAnIdUnderTheWrongLabelFindsNothing => {
                "reading_an_id_under_the_wrong_label_finds_nothing"
            }
            Check::MovingCurrentLeavesPreviousBehind => "moving_current_leaves_previous_behind",
            Check::ASecondRotationMovesPreviousOn => "a_second_rotation_moves_previous_on",
            Check::UnknownVersionsAreNotFound => "unknown_versions_are_not_found",
            Check::SetTagReplacesOneTag => "set_tag_replaces_one_tag",
        }
    }

    /// Runs the check on `store`.
    pub async fn run<S: RotationService>(
        self,
        store: &S,
        reference: Reference,
    ) -> Result<(), Failure> {
        let result = match self {
            Check::DescribeShowsCurrentLabelsAndTags => describe_shows_current(store).await,
            Check::UnknownSecretsAreNotFound => unknown_secrets(store).await,
            Check::BeginRotationStagesAPendingVersionWithoutValue => begin_rotation(store).await,
            Check::PutValueFillsThePendingVersionIdempotently => put_value(store, reference).await,
            Check::ReadingAnIdUnderTheWrongLabelFindsNothing => wrong_label(store).await,
            Check::MovingCurrentLeavesPreviousBehind => moving_current(store).await,
            Check::ASecondRotationMovesPreviousOn => second_rotation(store).await,
            Check::UnknownVersionsAreNotFound => unknown_versions(store).await,
            Check::SetTagReplacesOneTag => set_tag(store).await,
        };
        result.map_err(|problem| Failure {
            check: self.name(),
            problem,
        })
    }
}

/// Runs every check on `store`, one after the other; the failures, if any.
pub async fn run_all<S: RotationService>(store: &S, reference: Reference) -> Result<(), Failures> {
    let mut failed = Vec::new();
    for check in Check::ALL {
        if let Err(failure) = check.run(store, reference).await {
            failed.push(failure);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failures {
            ran: Check::ALL.len(),
            failed,
        })
    }
}

/// Runs one check on a Tokio runtime of its own, with the store `store`
/// makes there, and panics with the failure: the body of each test that
/// [`store_contract_tests!`](crate::store_contract_tests) writes.
pub fn run_test<S: RotationService>(
    check: Check,
    store: impl Future<Output = S>,
    reference: Reference,
) {
    let result = block_on(async {
        let store = store.await;
        check.run(&store, reference).await
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Writes one `#[test]` per check of the store contract, in the module where
/// it is called: `store_contract_tests!(store, reference)`. `store` is an
/// expression that makes the store (it may `.await`), evaluated afresh on
/// each test's own runtime; `reference` a
/// [`Reference`](crate::testing::store_contract::Reference).
#[macro_export]
macro_rules! store_contract_tests {
    ($store:expr, $reference:expr $(,)?) => {
        $crate::__contract_tests!(
            store_contract,
            |check| {
                $crate::testing::store_contract::run_test(check, async { $store }, $reference)
            };
            describe_shows_current_labels_and_tags = DescribeShowsCurrentLabelsAndTags,
            unknown_secrets_are_not_found = UnknownSecretsAreNotFound,
            begin_rotation_stages_a_pending_version_without_value =
                BeginRotationStagesAPendingVersionWithoutValue,
            put_value_fills_the_pending_version_idempotently =
                PutValueFillsThePendingVersionIdempotently,
            reading_an_id_under_the_wrong_label_finds_nothing =
                ReadingAnIdUnderTheWrongLabelFindsNothing,
            moving_current_leaves_previous_behind = MovingCurrentLeavesPreviousBehind,
            a_second_rotation_moves_previous_on = ASecondRotationMovesPreviousOn,
            unknown_versions_are_not_found = UnknownVersionsAreNotFound,
            set_tag_replaces_one_tag = SetTagReplacesOneTag,
        );
    };
}

/// The tests of a suite's macro: one per check, each calling `run` with the
/// check, and a compile-time count that fails the build if the suite gained a
/// check the macro does not list.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($suite:ident, $run:expr; $($test:ident = $check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                ($run)($crate::testing::$suite::Check::$check);
            }
        )+
        const _: () = assert!(
            [$(stringify!($test)),+].len() == $crate::testing::$suite::Check::ALL.len(),
            "the macro's list of checks is out of date"
        );
    };
}

/// A new secret with `value` and two tags; its ARN.
async fn secret<S: RotationService>(store: &S, value: &str) -> Result<String, String> {
    store
        .create_secret(
            &unique("contract"),
            &SecretString::from(value),
            &[("team", "payments"), ("rotor:fields", "password")],
        )
        .await
        .or_fail("CreateSecret")
}

/// Whether a read found `expected` (compared, never shown).
fn holds(value: &Option<StoredValue>, expected: &str) -> bool {
    value
        .as_ref()
        .is_some_and(|v| v.value.expose_secret() == expected)
}

async fn read<S: RotationService>(
    store: &S,
    arn: &str,
    selector: VersionSelector<'_>,
) -> Result<Option<StoredValue>, String> {
    store
        .get_value(arn, selector)
        .await
        .or_fail(&format!("GetSecretValue ({selector:?})"))
}

async fn set_tag<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    for value in ["v1 ok", "v2 ok failed"] {
        store
            .set_tag(&arn, "rotor:after-result", value)
            .await
            .or_fail("TagResource")?;
        let tags = store.describe(&arn).await.or_fail("DescribeSecret")?.tags;
        let read = tags.get("rotor:after-result").map(String::as_str);
        ensure(read == Some(value), || {
            format!("the tag reads {read:?} after TagResource wrote {value:?}")
        })?;
        let team = tags.get("team").map(String::as_str);
        ensure(team == Some("payments"), || {
            format!("TagResource of another key changed tag team to {team:?}")
        })?;
    }
    Ok(())
}

async fn describe_shows_current<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    let described = store.describe(&arn).await.or_fail("DescribeSecret")?;
    ensure(described.arn == arn, || {
        format!(
            "DescribeSecret named ARN {}, CreateSecret {arn}",
            described.arn
        )
    })?;
    ensure(!described.rotation_enabled, || {
        "a new secret has rotation turned on".into()
    })?;
    let versions = described.versions.iter().count();
    ensure(versions == 1, || {
        format!("a new secret lists {versions} versions, expected 1")
    })?;
    ensure(described.versions.current().is_some(), || {
        "a new secret has no AWSCURRENT version".into()
    })?;
    for (key, value) in [("team", "payments"), ("rotor:fields", "password")] {
        ensure(
            described.tags.get(key).map(String::as_str) == Some(value),
            || {
                format!(
                    "tag {key} reads {:?}, expected {value:?}",
                    described.tags.get(key)
                )
            },
        )?;
    }
    let by_name = store
        .describe(&described.name)
        .await
        .or_fail("DescribeSecret by name")?;
    ensure(by_name.arn == arn, || {
        format!(
            "DescribeSecret by name found {}, expected {arn}",
            by_name.arn
        )
    })
}

async fn unknown_secrets<S: RotationService>(store: &S) -> Result<(), String> {
    let missing = unique("missing");
    let described = store.describe(&missing).await;
    ensure(matches!(described, Err(StoreError::NotFound(_))), || {
        format!(
            "DescribeSecret of a missing secret answered {:?}, expected NotFound",
            described.map(|d| d.arn)
        )
    })?;
    let value = read(store, &missing, VersionSelector::Label(AWSCURRENT)).await?;
    ensure(value.is_none(), || {
        "a missing secret has an AWSCURRENT value".into()
    })
}

async fn begin_rotation<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    let t = token();
    store
        .begin_rotation(&arn, &t)
        .await
        .or_fail("staging a rotation")?;
    let described = store.describe(&arn).await.or_fail("DescribeSecret")?;
    ensure(described.rotation_enabled, || {
        "staging a rotation left rotation turned off".into()
    })?;
    ensure(
        described.versions.with_label(AWSPENDING) == Some(t.as_str()),
        || {
            format!(
                "AWSPENDING is on {:?}, expected the staged version {t}",
                described.versions.with_label(AWSPENDING)
            )
        },
    )?;
    let by_label = read(store, &arn, VersionSelector::Label(AWSPENDING)).await?;
    ensure(by_label.is_none(), || {
        "the staged version has a value by its label before PutSecretValue".into()
    })?;
    let by_id = read(store, &arn, VersionSelector::Id(&t, Some(AWSPENDING))).await?;
    ensure(by_id.is_none(), || {
        "the staged version has a value by its id before PutSecretValue".into()
    })?;
    let current = read(store, &arn, VersionSelector::Label(AWSCURRENT)).await?;
    ensure(holds(&current, "v1"), || {
        "AWSCURRENT no longer holds the value the secret was created with".into()
    })
}

async fn put_value<S: RotationService>(store: &S, reference: Reference) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    let t = token();
    store
        .begin_rotation(&arn, &t)
        .await
        .or_fail("staging a rotation")?;
    let new = SecretString::from("v2");
    let put = NewVersion {
        version_id: &t,
        value: &new,
        labels: &[AWSPENDING],
        rotation_token: None,
    };
    store.put_value(&arn, put).await.or_fail("PutSecretValue")?;
    store
        .put_value(&arn, put)
        .await
        .or_fail("the same PutSecretValue again")?;
    let read_back = read(store, &arn, VersionSelector::Id(&t, Some(AWSPENDING)))
        .await?
        .or_fail("the pending version has no value after PutSecretValue")?;
    ensure(read_back.version_id == t, || {
        format!("read version {}, expected {t}", read_back.version_id)
    })?;
    ensure(read_back.value.expose_secret() == "v2", || {
        "the pending version holds another value than was put".into()
    })?;
    ensure(read_back.created.is_some(), || {
        "the pending version has no creation date".into()
    })?;

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
    match reference {
        // AWS refuses a different value under an existing version id
        // (ResourceExistsException): a version's value never changes.
        Reference::Aws => ensure(matches!(conflicting, Err(StoreError::Rejected(_))), || {
            format!(
                "PutSecretValue of another value under an existing version id answered {conflicting:?}, expected Rejected (a version's value never changes)"
            )
        }),
        // moto 5.2 overwrites the value instead; AWS's behaviour is the contract.
        Reference::Moto => Ok(()),
    }
}

async fn wrong_label<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    let current = store
        .describe(&arn)
        .await
        .or_fail("DescribeSecret")?
        .versions
        .current()
        .or_fail("a new secret has no AWSCURRENT version")?
        .to_owned();
    let under_pending = read(store, &arn, VersionSelector::Id(&current, Some(AWSPENDING))).await?;
    ensure(under_pending.is_none(), || {
        "the AWSCURRENT version was found under AWSPENDING".into()
    })?;
    let by_id = read(store, &arn, VersionSelector::Id(&current, None)).await?;
    ensure(by_id.is_some(), || {
        "the AWSCURRENT version was not found by its id alone".into()
    })?;
    let unknown = read(store, &arn, VersionSelector::Id(&token(), None)).await?;
    ensure(unknown.is_none(), || {
        "a version id the secret never had was found".into()
    })
}

async fn moving_current<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    let old = store
        .describe(&arn)
        .await
        .or_fail("DescribeSecret")?
        .versions
        .current()
        .or_fail("a new secret has no AWSCURRENT version")?
        .to_owned();
    let t = token();
    store
        .begin_rotation(&arn, &t)
        .await
        .or_fail("staging a rotation")?;
    let new = SecretString::from("v2");
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &t,
                value: &new,
                labels: &[AWSPENDING],
                rotation_token: None,
            },
        )
        .await
        .or_fail("PutSecretValue")?;

    // Moving AWSCURRENT without naming where it is attached is refused.
    let unnamed = LabelMove {
        label: AWSCURRENT.into(),
        to: Some(t.clone()),
        from: None,
    };
    let moved = store.move_label(&arn, &unnamed).await;
    ensure(matches!(moved, Err(StoreError::Rejected(_))), || {
        format!(
            "moving AWSCURRENT without RemoveFromVersionId answered {moved:?}, expected Rejected"
        )
    })?;
    // So is taking it from a version that does not carry it.
    let wrong = LabelMove {
        label: AWSCURRENT.into(),
        to: Some(t.clone()),
        from: Some(t.clone()),
    };
    let moved = store.move_label(&arn, &wrong).await;
    ensure(matches!(moved, Err(StoreError::Rejected(_))), || {
        format!(
            "moving AWSCURRENT from a version that does not carry it answered {moved:?}, expected Rejected"
        )
    })?;

    let promote = LabelMove {
        label: AWSCURRENT.into(),
        to: Some(t.clone()),
        from: Some(old.clone()),
    };
    store
        .move_label(&arn, &promote)
        .await
        .or_fail("moving AWSCURRENT to the pending version")?;
    let versions = store
        .describe(&arn)
        .await
        .or_fail("DescribeSecret")?
        .versions;
    ensure(versions.current() == Some(t.as_str()), || {
        format!("AWSCURRENT is on {:?}, expected {t}", versions.current())
    })?;
    ensure(versions.previous() == Some(old.as_str()), || {
        format!(
            "AWSPREVIOUS is on {:?}, expected {old}",
            versions.previous()
        )
    })?;
    ensure(versions.has_label(&t, AWSPENDING), || {
        "moving AWSCURRENT took AWSPENDING off the version too".into()
    })?;

    let tidy = LabelMove {
        label: AWSPENDING.into(),
        to: None,
        from: Some(t.clone()),
    };
    store
        .move_label(&arn, &tidy)
        .await
        .or_fail("removing AWSPENDING")?;
    // Removing a label from a version that no longer has it is refused.
    let again = store.move_label(&arn, &tidy).await;
    ensure(matches!(again, Err(StoreError::Rejected(_))), || {
        format!(
            "removing AWSPENDING from a version without it answered {again:?}, expected Rejected"
        )
    })?;
    let versions = store
        .describe(&arn)
        .await
        .or_fail("DescribeSecret")?
        .versions;
    ensure(versions.with_label(AWSPENDING).is_none(), || {
        "AWSPENDING is still on a version after its removal".into()
    })?;
    let previous = read(store, &arn, VersionSelector::Label(AWSPREVIOUS)).await?;
    ensure(holds(&previous, "v1"), || {
        "AWSPREVIOUS does not hold the value AWSCURRENT had".into()
    })?;
    let current = read(store, &arn, VersionSelector::Label(AWSCURRENT)).await?;
    ensure(holds(&current, "v2"), || {
        "AWSCURRENT does not hold the promoted value".into()
    })
}

async fn second_rotation<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    for (i, value) in ["v2", "v3"].into_iter().enumerate() {
        let t = format!("{}{i}", token());
        store
            .begin_rotation(&arn, &t)
            .await
            .or_fail("staging a rotation")?;
        let value = SecretString::from(value);
        store
            .put_value(
                &arn,
                NewVersion {
                    version_id: &t,
                    value: &value,
                    labels: &[AWSPENDING],
                    rotation_token: None,
                },
            )
            .await
            .or_fail("PutSecretValue")?;
        let versions = store
            .describe(&arn)
            .await
            .or_fail("DescribeSecret")?
            .versions;
        let current = versions
            .current()
            .or_fail("the secret has no AWSCURRENT version")?
            .to_owned();
        for change in versions.finish_plan(&t, AWSPENDING) {
            store
                .move_label(&arn, &change)
                .await
                .or_fail(&format!("moving {}", change.label))?;
        }
        let after = store
            .describe(&arn)
            .await
            .or_fail("DescribeSecret")?
            .versions;
        ensure(after.current() == Some(t.as_str()), || {
            format!(
                "rotation {}: AWSCURRENT is on {:?}, expected {t}",
                i + 1,
                after.current()
            )
        })?;
        ensure(after.previous() == Some(current.as_str()), || {
            format!(
                "rotation {}: AWSPREVIOUS is on {:?}, expected {current}",
                i + 1,
                after.previous()
            )
        })?;
        ensure(after.with_label(AWSPENDING).is_none(), || {
            format!("rotation {}: AWSPENDING is still on a version", i + 1)
        })?;
    }
    let previous = read(store, &arn, VersionSelector::Label(AWSPREVIOUS)).await?;
    ensure(holds(&previous, "v2"), || {
        "after two rotations AWSPREVIOUS does not hold the first rotation's value".into()
    })
}

async fn unknown_versions<S: RotationService>(store: &S) -> Result<(), String> {
    let arn = secret(store, "v1").await?;
    let change = LabelMove {
        label: "Custom".into(),
        to: Some(token()),
        from: None,
    };
    let moved = store.move_label(&arn, &change).await;
    ensure(
        matches!(
            moved,
            Err(StoreError::NotFound(_) | StoreError::Rejected(_))
        ),
        || format!("moving a label to a version that does not exist answered {moved:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::{Check, Reference, run_all};
    use crate::MemoryStore;
    use crate::labels::LabelMove;
    use crate::store::{
        NewVersion, RotationService, SecretDescription, SecretStore, StoreError, StoredValue,
        VersionSelector,
    };
    use secrecy::SecretString;

    crate::store_contract_tests!(MemoryStore::new(), Reference::Aws);

    /// The in-memory store with moto's quirk: another value under an existing
    /// version id is accepted (and dropped) instead of refused.
    #[derive(Default)]
    struct Overwriting(MemoryStore);

    impl SecretStore for Overwriting {
        async fn describe(&self, id: &str) -> Result<SecretDescription, StoreError> {
            self.0.describe(id).await
        }
        async fn get_value(
            &self,
            id: &str,
            selector: VersionSelector<'_>,
        ) -> Result<Option<StoredValue>, StoreError> {
            self.0.get_value(id, selector).await
        }
        async fn put_value(&self, id: &str, version: NewVersion<'_>) -> Result<(), StoreError> {
            match self.0.put_value(id, version).await {
                Err(StoreError::Rejected(_)) => Ok(()),
                other => other,
            }
        }
        async fn move_label(&self, id: &str, change: &LabelMove) -> Result<(), StoreError> {
            self.0.move_label(id, change).await
        }
        async fn set_tag(&self, id: &str, key: &str, value: &str) -> Result<(), StoreError> {
            self.0.set_tag(id, key, value).await
        }
    }

    impl RotationService for Overwriting {
        async fn create_secret(
            &self,
            name: &str,
            value: &SecretString,
            tags: &[(&str, &str)],
        ) -> Result<String, StoreError> {
            self.0.create_secret(name, value, tags).await
        }
        async fn begin_rotation(&self, id: &str, token: &str) -> Result<(), StoreError> {
            self.0.begin_rotation(id, token).await
        }
    }

    #[tokio::test]
    async fn a_store_that_changes_a_version_value_fails_the_contract_that_aws_documents() {
        let failures = run_all(&Overwriting::default(), Reference::Aws)
            .await
            .unwrap_err();
        let failed: Vec<_> = failures.failed.iter().map(|f| f.check).collect();
        assert_eq!(
            failed,
            [Check::PutValueFillsThePendingVersionIdempotently.name()]
        );
        assert!(
            failures
                .to_string()
                .contains("a version's value never changes"),
            "{failures}"
        );
        // moto's reference lets exactly this quirk pass.
        run_all(&Overwriting::default(), Reference::Moto)
            .await
            .unwrap();
    }
}
