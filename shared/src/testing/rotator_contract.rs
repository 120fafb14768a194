//! The rotator contract: what the driver promises for every rotation function,
//! checked for one [`Rotator`] against its real target. A rotator that passes
//! keeps rotor's first rule: a working credential is stored in the secret at
//! every instant (AWSCURRENT, or AWSPENDING while a rotation is in flight
//! against a target that retires the old credential at once), and every step
//! converges however often it runs and whichever process runs it.
//!
//! The checks drive the four steps themselves through a [`Driver`], as
//! Secrets Manager would: each step twice, a new process after each step, a
//! finished rotation run again, two rotations in a row. After every step they
//! ask the target ([`Subject::accepts`]) whether the stored credential works.
//!
//! The store must stage rotations ([`RotationService`]): the in-memory store
//! for a target that lives in the test process, moto for one a function binary
//! reaches. Each check makes its own secrets ([`Subject::new_secret`]).
//!
//! ```
//! # #![recursion_limit = "256"]
//! use rotor_core::testing::rotator_contract::{NewSecret, Subject, run_all};
//! use rotor_core::testing::unique;
//! use rotor_core::{Error, MemoryStore, Rotator, SecretStore, SecretString, StepContext};
//!
//! /// A rotator with no target: it only makes values.
//! struct Counter;
//!
//! impl Rotator for Counter {
//!     type Secret = rotor_core::value::Opaque;
//!
//!     async fn create_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<SecretString, Error> {
//!         Ok(SecretString::from(rotor_core::testing::token()))
//!     }
//!     async fn set_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
//!         Ok(())
//!     }
//!     async fn test_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
//!         Ok(())
//!     }
//! }
//!
//! struct NoTarget;
//!
//! impl Subject for NoTarget {
//!     type Rotator = Counter;
//!     fn rotator(&self) -> Counter {
//!         Counter
//!     }
//!     async fn new_secret(&self) -> NewSecret {
//!         NewSecret::new(unique("counter"), SecretString::from("first"))
//!     }
//!     async fn accepts(&self, _secret: &str, _value: &SecretString) -> bool {
//!         true
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! run_all(&MemoryStore::new(), &NoTarget).await.unwrap();
//! # }
//! ```

use std::future::Future;

use secrecy::{ExposeSecret, SecretString};

use super::{Failure, Failures, OrFail, RotationService, block_on, ensure, token};
use crate::event::{RotationEvent, Step};
use crate::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::rotation::{Driver, Outcome, Rotator};
use crate::store::{StoredValue, VersionSelector};

/// The function under test, as the checks see it: its rotator and its target.
pub trait Subject: Send + Sync {
    /// The function's rotator.
    type Rotator: Rotator;

    /// The rotator as a newly started process of the function builds it. The
    /// checks call it again to stand for a restarted function: nothing may
    /// carry over from an earlier rotator but what the target and the store
    /// hold.
    fn rotator(&self) -> Self::Rotator;

    /// A secret for one rotation: a name no other secret has, its tags, and a
    /// first value that works at the target now (a user created with that
    /// password, a key registered). Called at the start of each rotation the
    /// checks run.
    fn new_secret(&self) -> impl Future<Output = NewSecret> + Send;

    /// Whether the target accepts `value` as the credential of the secret
    /// named `secret` right now (a login, an API call). A rotator whose values
    /// no system checks answers true.
    fn accepts(&self, secret: &str, value: &SecretString) -> impl Future<Output = bool> + Send;
}

/// A secret to create for a check.
pub struct NewSecret {
    /// Its name, which no other secret in the store has.
    pub name: String,
    /// Its first value, which the target accepts.
    pub value: SecretString,
    /// Its tags (per-secret settings).
    pub tags: Vec<(String, String)>,
}

impl NewSecret {
    /// A secret without tags.
    pub fn new(name: impl Into<String>, value: SecretString) -> NewSecret {
        NewSecret {
            name: name.into(),
            value,
            tags: Vec::new(),
        }
    }

    /// The same, with a tag added.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> NewSecret {
        self.tags.push((key.into(), value.into()));
        self
    }
}

/// One check of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The four steps promote a new value that the target accepts; the old one
    /// becomes AWSPREVIOUS; a working credential is stored after every step.
    ARotationPromotesANewWorkingValue,
    /// Every step run twice in a row succeeds; the second createSecret keeps
    /// the value the first stored.
    EveryStepCanRunTwice,
    /// A new process (a new rotator, nothing cached) picks the rotation up
    /// after each step, running that step again first.
    ANewProcessResumesAfterEachStep,
    /// The four steps run again after the rotation finished change nothing.
    AFinishedRotationRunAgainChangesNothing,
    /// A second rotation promotes yet another value, which the target accepts.
    ASecondRotationPromotesAnotherValue,
}

impl Check {
    /// Every check, in the order [`run_all`] runs them.
    pub const ALL: [Check; 5] = [
        Check::ARotationPromotesANewWorkingValue,
        Check::EveryStepCanRunTwice,
        Check::ANewProcessResumesAfterEachStep,
        Check::AFinishedRotationRunAgainChangesNothing,
        Check::ASecondRotationPromotesAnotherValue,
    ];

    /// The check's name, as
    /// [`rotator_contract_tests!`](crate::rotator_contract_tests) names its test.
    pub fn name(self) -> &'static str {
        match self {
            Check::ARotationPromotesANewWorkingValue => "a_rotation_promotes_a_new_working_value",
            Check::EveryStepCanRunTwice => "every_step_can_run_twice",
            Check::ANewProcessResumesAfterEachStep => "a_new_process_resumes_after_each_step",
            Check::AFinishedRotationRunAgainChangesNothing => {
                "a_finished_rotation_run_again_changes_nothing"
            }
            Check::ASecondRotationPromotesAnotherValue => {
                "a_second_rotation_promotes_another_value"
            }
        }
    }

    /// Runs the check with `subject`'s rotator and target, on `store`.
    pub async fn run<S: RotationService, T: Subject>(
        self,
        store: &S,
        subject: &T,
    ) -> Result<(), Failure> {
        let bench = Bench { store, subject };
        let result = match self {
            Check::ARotationPromotesANewWorkingValue => bench.promotes().await,
            Check::EveryStepCanRunTwice => bench.twice().await,
            Check::ANewProcessResumesAfterEachStep => bench.resumes().await,
            Check::AFinishedRotationRunAgainChangesNothing => bench.run_again().await,
            Check::ASecondRotationPromotesAnotherValue => bench.second().await,
        };
        result.map_err(|problem| Failure {
            check: self.name(),
            problem,
        })
    }
}

/// Runs every check, one after the other; the failures, if any.
pub async fn run_all<S: RotationService, T: Subject>(
    store: &S,
    subject: &T,
) -> Result<(), Failures> {
    let mut failed = Vec::new();
    for check in Check::ALL {
        if let Err(failure) = check.run(store, subject).await {
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

/// Runs one check on a Tokio runtime of its own, with the store and subject
/// `setup` makes there, and panics with the failure: the body of each test
/// that [`rotator_contract_tests!`](crate::rotator_contract_tests) writes.
pub fn run_test<S: RotationService, T: Subject>(check: Check, setup: impl Future<Output = (S, T)>) {
    let result = block_on(async {
        let (store, subject) = setup.await;
        check.run(&store, &subject).await
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Writes one `#[test]` per check of the rotator contract, in the module
/// where it is called: `rotator_contract_tests!(store, subject)`. Both are
/// expressions (they may `.await`) evaluated afresh on each test's own
/// runtime: the store, which must stage rotations
/// ([`RotationService`](crate::store::RotationService)), and the
/// [`Subject`](crate::testing::rotator_contract::Subject).
#[macro_export]
macro_rules! rotator_contract_tests {
    ($store:expr, $subject:expr $(,)?) => {
        $crate::__contract_tests!(
            rotator_contract,
            |check| {
                $crate::testing::rotator_contract::run_test(check, async { ($store, $subject) })
            };
            a_rotation_promotes_a_new_working_value = ARotationPromotesANewWorkingValue,
            every_step_can_run_twice = EveryStepCanRunTwice,
            a_new_process_resumes_after_each_step = ANewProcessResumesAfterEachStep,
            a_finished_rotation_run_again_changes_nothing =
                AFinishedRotationRunAgainChangesNothing,
            a_second_rotation_promotes_another_value = ASecondRotationPromotesAnotherValue,
        );
    };
}

/// What the checks share: the store and the subject.
struct Bench<'a, S, T> {
    store: &'a S,
    subject: &'a T,
}

/// A secret the checks created, staged for a rotation to `token`.
struct Staged {
    arn: String,
    name: String,
    token: String,
    /// The version that was AWSCURRENT when the rotation was staged.
    from: String,
}

impl<S: RotationService, T: Subject> Bench<'_, S, T> {
    /// A driver as a newly started function has it: a new rotator, no cache.
    fn process(&self) -> Driver<&S, T::Rotator> {
        Driver::new(self.store, self.subject.rotator())
    }

    /// A new secret from the subject, created in the store.
    async fn create(&self) -> Result<(String, String), String> {
        let secret = self.subject.new_secret().await;
        let tags: Vec<(&str, &str)> = secret
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let arn = self
            .store
            .create_secret(&secret.name, &secret.value, &tags)
            .await
            .or_fail("CreateSecret")?;
        Ok((arn, secret.name))
    }

    /// Stages a rotation of `arn` (named `name`) to a new version.
    async fn stage(&self, arn: &str, name: &str) -> Result<Staged, String> {
        let from = self
            .store
            .describe(arn)
            .await
            .or_fail("DescribeSecret")?
            .versions
            .current()
            .or_fail("the secret has no AWSCURRENT version")?
            .to_owned();
        let token = token();
        self.store
            .begin_rotation(arn, &token)
            .await
            .or_fail("staging a rotation")?;
        Ok(Staged {
            arn: arn.to_owned(),
            name: name.to_owned(),
            token,
            from,
        })
    }

    /// A new secret with a rotation staged.
    async fn new_rotation(&self) -> Result<Staged, String> {
        let (arn, name) = self.create().await?;
        self.stage(&arn, &name).await
    }

    /// Runs `step` of the staged rotation with `driver`; then checks that a
    /// working credential is stored.
    async fn step(
        &self,
        driver: &Driver<&S, T::Rotator>,
        staged: &Staged,
        step: Step,
    ) -> Result<Outcome, String> {
        let event = RotationEvent {
            secret_id: staged.arn.clone(),
            version_id: staged.token.clone(),
            step,
            rotation_token: None,
        };
        let report = driver.run(&event).await.or_fail(step.as_str())?;
        self.working_credential_stored(staged, step).await?;
        Ok(report.outcome)
    }

    async fn read(&self, arn: &str, label: &str) -> Result<Option<StoredValue>, String> {
        self.store
            .get_value(arn, VersionSelector::Label(label))
            .await
            .or_fail(&format!("GetSecretValue ({label})"))
    }

    /// After `step`: the target accepts AWSCURRENT's value, or AWSPENDING's
    /// while the rotation is in flight.
    async fn working_credential_stored(&self, staged: &Staged, step: Step) -> Result<(), String> {
        for label in [AWSCURRENT, AWSPENDING] {
            if let Some(stored) = self.read(&staged.arn, label).await?
                && self.subject.accepts(&staged.name, &stored.value).await
            {
                return Ok(());
            }
        }
        Err(format!(
            "after {step}, the target accepts neither the AWSCURRENT nor the AWSPENDING value of {}: no working credential is stored",
            staged.arn
        ))
    }

    /// The rotation is finished: AWSCURRENT is the staged version with a new
    /// value the target accepts, AWSPREVIOUS the version it replaced, and no
    /// version is pending.
    async fn promoted(&self, staged: &Staged) -> Result<(), String> {
        let versions = self
            .store
            .describe(&staged.arn)
            .await
            .or_fail("DescribeSecret")?
            .versions;
        ensure(versions.current() == Some(staged.token.as_str()), || {
            format!(
                "AWSCURRENT is on {:?}, expected the rotated version {}",
                versions.current(),
                staged.token
            )
        })?;
        ensure(versions.previous() == Some(staged.from.as_str()), || {
            format!(
                "AWSPREVIOUS is on {:?}, expected the replaced version {}",
                versions.previous(),
                staged.from
            )
        })?;
        ensure(versions.with_label(AWSPENDING).is_none(), || {
            format!(
                "AWSPENDING is still on {:?} after finishSecret",
                versions.with_label(AWSPENDING)
            )
        })?;
        let current = self
            .read(&staged.arn, AWSCURRENT)
            .await?
            .or_fail("AWSCURRENT has no value")?;
        let previous = self
            .read(&staged.arn, AWSPREVIOUS)
            .await?
            .or_fail("AWSPREVIOUS has no value")?;
        ensure(
            current.value.expose_secret() != previous.value.expose_secret(),
            || "the rotation promoted the value it replaced".into(),
        )?;
        ensure(
            self.subject.accepts(&staged.name, &current.value).await,
            || "the target does not accept the promoted value".into(),
        )
    }

    /// The pending value's version and value, compared, never shown.
    async fn pending(&self, staged: &Staged) -> Result<SecretString, String> {
        let stored = self
            .store
            .get_value(
                &staged.arn,
                VersionSelector::Id(&staged.token, Some(AWSPENDING)),
            )
            .await
            .or_fail("GetSecretValue (AWSPENDING)")?
            .or_fail("createSecret stored no pending value")?;
        Ok(stored.value)
    }

    async fn promotes(&self) -> Result<(), String> {
        let staged = self.new_rotation().await?;
        let driver = self.process();
        for step in Step::ALL {
            let outcome = self.step(&driver, &staged, step).await?;
            ensure(outcome == Outcome::Done, || {
                format!("{step} answered {outcome:?} on its first run, expected Done")
            })?;
        }
        self.promoted(&staged).await
    }

    async fn twice(&self) -> Result<(), String> {
        let staged = self.new_rotation().await?;
        let driver = self.process();
        for step in Step::ALL {
            self.step(&driver, &staged, step).await?;
            let before = match step {
                Step::CreateSecret => Some(self.pending(&staged).await?),
                _ => None,
            };
            let again = self.step(&driver, &staged, step).await?;
            if let Some(before) = before {
                ensure(again == Outcome::PendingKept, || {
                    format!("createSecret run again answered {again:?}, expected PendingKept")
                })?;
                let after = self.pending(&staged).await?;
                ensure(before.expose_secret() == after.expose_secret(), || {
                    "createSecret run again replaced the pending value".into()
                })?;
            }
        }
        self.promoted(&staged).await
    }

    async fn resumes(&self) -> Result<(), String> {
        for (stop, stopped_after) in Step::ALL.into_iter().enumerate() {
            let staged = self.new_rotation().await?;
            let first = self.process();
            for step in &Step::ALL[..=stop] {
                self.step(&first, &staged, *step).await?;
            }
            drop(first);
            let restarted = self.process();
            for step in &Step::ALL[stop..] {
                self.step(&restarted, &staged, *step).await?;
            }
            self.promoted(&staged)
                .await
                .map_err(|problem| format!("restarted after {stopped_after}: {problem}"))?;
        }
        Ok(())
    }

    async fn run_again(&self) -> Result<(), String> {
        let staged = self.new_rotation().await?;
        let driver = self.process();
        for step in Step::ALL {
            self.step(&driver, &staged, step).await?;
        }
        let labels = |versions: crate::labels::Versions| {
            versions
                .iter()
                .map(|(id, labels)| (id.to_owned(), labels.to_vec()))
                .collect::<Vec<_>>()
        };
        let before = labels(
            self.store
                .describe(&staged.arn)
                .await
                .or_fail("DescribeSecret")?
                .versions,
        );
        // The same process, then a new one, as the service's retries may.
        for driver in [driver, self.process()] {
            for step in Step::ALL {
                let outcome = self.step(&driver, &staged, step).await?;
                ensure(outcome == Outcome::AlreadyCurrent, || {
                    format!(
                        "{step} of a finished rotation answered {outcome:?}, expected AlreadyCurrent"
                    )
                })?;
            }
        }
        let after = labels(
            self.store
                .describe(&staged.arn)
                .await
                .or_fail("DescribeSecret")?
                .versions,
        );
        ensure(before == after, || {
            format!("running a finished rotation again moved labels: {before:?} became {after:?}")
        })?;
        self.promoted(&staged).await
    }

    async fn second(&self) -> Result<(), String> {
        let first = self.new_rotation().await?;
        let driver = self.process();
        for step in Step::ALL {
            self.step(&driver, &first, step).await?;
        }
        let second = self.stage(&first.arn, &first.name).await?;
        for step in Step::ALL {
            self.step(&driver, &second, step).await?;
        }
        self.promoted(&second).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use secrecy::ExposeSecret;

    use crate::testing::rotator_contract::{Check, NewSecret, Subject, run_all};
    use crate::testing::unique;
    use crate::{
        Cause, Error, MemoryStore, Rotator, SecretStore, SecretString, StepContext, TargetError,
        TargetKind,
    };

    /// Values with no target, made by the OS's random source.
    struct Tokens;

    impl Rotator for Tokens {
        type Secret = crate::value::Opaque;

        async fn create_value<S: SecretStore>(
            &self,
            _: &StepContext<'_, S>,
        ) -> Result<SecretString, Error> {
            Ok(SecretString::from(crate::testing::token()))
        }
        async fn set_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
            Ok(())
        }
        async fn test_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
            Ok(())
        }
    }

    struct NoTarget;

    impl Subject for NoTarget {
        type Rotator = Tokens;
        fn rotator(&self) -> Tokens {
            Tokens
        }
        async fn new_secret(&self) -> NewSecret {
            NewSecret::new(unique("tokens"), SecretString::from("first")).with_tag("team", "a")
        }
        async fn accepts(&self, _: &str, _: &SecretString) -> bool {
            true
        }
    }

    crate::rotator_contract_tests!(MemoryStore::new(), NoTarget);

    /// A target that keeps the values it accepts, and a rotator for it whose
    /// setSecret is not idempotent: a value it already holds is refused.
    #[derive(Clone, Default)]
    struct Registry(Arc<Mutex<Vec<String>>>);

    impl Registry {
        fn holds(&self, value: &SecretString) -> bool {
            let values = self.0.lock().unwrap();
            values.iter().any(|v| v == value.expose_secret())
        }
        fn add(&self, value: &SecretString) {
            self.0
                .lock()
                .unwrap()
                .push(value.expose_secret().to_owned());
        }
    }

    impl Rotator for Registry {
        type Secret = crate::value::Opaque;

        async fn create_value<S: SecretStore>(
            &self,
            _: &StepContext<'_, S>,
        ) -> Result<SecretString, Error> {
            Ok(SecretString::from(crate::testing::token()))
        }
        async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
            let pending = &ctx.pending().await?.value;
            if self.holds(pending) {
                return Err(
                    TargetError::new(Cause::Rejected, "the value is already registered")
                        .at(TargetKind::Service, "the registry"),
                );
            }
            self.add(pending);
            Ok(())
        }
        async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
            match self.holds(&ctx.pending().await?.value) {
                true => Ok(()),
                false => Err(TargetError::new(Cause::Mismatch, "not registered")
                    .at(TargetKind::Service, "the registry")),
            }
        }
    }

    impl Subject for Registry {
        type Rotator = Registry;
        fn rotator(&self) -> Registry {
            self.clone()
        }
        async fn new_secret(&self) -> NewSecret {
            let value = SecretString::from(crate::testing::token());
            self.add(&value);
            NewSecret::new(unique("registry"), value)
        }
        async fn accepts(&self, _: &str, value: &SecretString) -> bool {
            self.holds(value)
        }
    }

    /// A rotator whose setSecret retires every value the target held without
    /// taking the new one on, and whose testSecret checks nothing.
    #[derive(Clone, Default)]
    struct Forgetful(Registry);

    impl Rotator for Forgetful {
        type Secret = crate::value::Opaque;

        async fn create_value<S: SecretStore>(
            &self,
            ctx: &StepContext<'_, S>,
        ) -> Result<SecretString, Error> {
            self.0.create_value(ctx).await
        }
        async fn set_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
            (self.0).0.lock().unwrap().clear();
            Ok(())
        }
        async fn test_value<S: SecretStore>(&self, _: &StepContext<'_, S>) -> Result<(), Error> {
            Ok(())
        }
    }

    impl Subject for Forgetful {
        type Rotator = Forgetful;
        fn rotator(&self) -> Forgetful {
            self.clone()
        }
        async fn new_secret(&self) -> NewSecret {
            self.0.new_secret().await
        }
        async fn accepts(&self, secret: &str, value: &SecretString) -> bool {
            self.0.accepts(secret, value).await
        }
    }

    #[tokio::test]
    async fn a_target_left_without_a_stored_working_credential_fails_every_check() {
        let failures = run_all(&MemoryStore::new(), &Forgetful::default())
            .await
            .unwrap_err();
        assert_eq!(failures.failed.len(), Check::ALL.len(), "{failures}");
        for failure in &failures.failed {
            assert!(
                failure
                    .problem
                    .starts_with("after setSecret, the target accepts neither"),
                "{failure}"
            );
        }
    }

    #[tokio::test]
    async fn a_set_step_that_cannot_run_twice_fails_the_replay_checks() {
        let failures = run_all(&MemoryStore::new(), &Registry::default())
            .await
            .unwrap_err();
        let failed: Vec<_> = failures.failed.iter().map(|f| f.check).collect();
        assert_eq!(
            failed,
            [
                Check::EveryStepCanRunTwice.name(),
                Check::ANewProcessResumesAfterEachStep.name()
            ]
        );
        assert!(
            failures.to_string().contains("ServiceRejected")
                || failures.to_string().contains("already registered"),
            "{failures}"
        );
    }
}
