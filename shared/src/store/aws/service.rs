//! The service's side of a rotation on [`AwsStore`], for tests, the local
//! runner and the demo (the `testing` feature): CreateSecret, and the staging
//! RotateSecret does before it invokes a function, on an emulator.
//!
//! Never in a deployed function: staging points the secret's rotation at a
//! function that exists nowhere, which only an emulator answers usefully.
//!
//! [`AwsStore::stage_rotation`] and [`AwsStore::point_rotation_at`] are the
//! local runner's: they stage, and put back, while changing no more of the
//! secret's rotation settings than an emulator's RotateSecret must.

use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
use secrecy::{ExposeSecret, SecretString};

use super::{AwsStore, classify};
use crate::labels::AWSPENDING;
use crate::store::{RotationService, SecretStore, StoreError};

/// The schedule [`AwsStore::stage_rotation`] gives a secret that has none:
/// an emulator turns rotation on only with one (AWS turns it on for any
/// RotateSecret).
pub const EMULATOR_SCHEDULE_DAYS: i64 = 30;

/// A function ARN that exists nowhere, so RotateSecret stages but invokes nothing.
pub const STAGING_ONLY_FUNCTION: &str =
    "arn:aws:lambda:us-east-1:000000000000:function:rotor-local-runner";

impl RotationService for AwsStore {
    async fn create_secret(
        &self,
        name: &str,
        value: &SecretString,
        tags: &[(&str, &str)],
    ) -> Result<String, StoreError> {
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect();
        let out = self
            .client()
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(classify)?;
        Ok(out.arn().unwrap_or(name).to_owned())
    }

    /// RotateSecret with a function ARN that the endpoint cannot invoke: moto then
    /// stages the value-less AWSPENDING version, turns rotation on, and answers
    /// that the function is not found, which here is the expected outcome. The
    /// version is checked afterwards, so an endpoint that does not stage it gives
    /// an error rather than a silent half-start. For emulators only: against AWS
    /// it would point the secret's rotation at a function that does not exist.
    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<(), StoreError> {
        let result = self
            .client()
            .rotate_secret()
            .secret_id(secret_id)
            .client_request_token(token)
            .rotation_lambda_arn(STAGING_ONLY_FUNCTION)
            // moto turns rotation on only when a schedule comes with the request
            // (AWS turns it on for any RotateSecret); the schedule is moto's only.
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(EMULATOR_SCHEDULE_DAYS)
                    .build(),
            )
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
        self.require_staged(secret_id, token).await
    }
}

impl AwsStore {
    /// After RotateSecret on an emulator: the version `token` must now be
    /// AWSPENDING, else the emulator did not stage it (an error, not a silent
    /// half-start).
    async fn require_staged(&self, secret_id: &str, token: &str) -> Result<(), StoreError> {
        let staged = self.describe(secret_id).await?;
        if staged.versions.has_label(token, AWSPENDING) {
            Ok(())
        } else {
            Err(StoreError::Rejected(format!(
                "RotateSecret did not stage version {token} as AWSPENDING on this endpoint"
            )))
        }
    }

    /// RotateSecret's staging on an emulator, naming `function`: the emulator
    /// stages the value-less AWSPENDING version `token`, records `function` as
    /// the secret's rotation function (name the secret's own, so that nothing
    /// changes, unless the emulator would run it itself, as it does a
    /// function deployed in it) and turns rotation on, which the functions
    /// require of every step. The schedule stays as it was; only a secret
    /// without one gets [`EMULATOR_SCHEDULE_DAYS`], since the emulator turns
    /// rotation on only with a schedule. The caller turns rotation back off
    /// when the rotation ends, if it was off. A function that exists nowhere
    /// in the emulator is the expected outcome (ResourceNotFoundException);
    /// the version is checked afterwards.
    pub async fn stage_rotation(
        &self,
        secret_id: &str,
        token: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        let described = self
            .client()
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(classify)?;
        let scheduled = described.rotation_rules().is_some_and(|rules| {
            rules
                .automatically_after_days()
                .is_some_and(|days| days > 0)
                || rules.schedule_expression().is_some()
        });
        let schedule = (!scheduled).then(|| {
            RotationRulesType::builder()
                .automatically_after_days(EMULATOR_SCHEDULE_DAYS)
                .build()
        });
        self.rotate_secret_naming(secret_id, token, function, true, schedule)
            .await?;
        self.require_staged(secret_id, token).await
    }

    /// Makes `function` the secret's rotation function on an emulator, without
    /// a rotation and without touching the schedule: RotateSecret with
    /// RotateImmediately=false (the emulator stages a copy of AWSCURRENT as
    /// AWSPENDING, and may run `function`'s testSecret), then the copy loses
    /// AWSPENDING, and rotation is turned back off if the call turned it on.
    /// Only while no rotation is in flight: the emulator would refuse, or move
    /// AWSPENDING off the version in flight. `token` names the copy, a
    /// version no one reads.
    pub async fn point_rotation_at(
        &self,
        secret_id: &str,
        token: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        let before = self.describe(secret_id).await?;
        if let Some(pending) = before.versions.rotation_in_progress("", AWSPENDING) {
            return Err(StoreError::Rejected(format!(
                "version {pending} of {secret_id} is AWSPENDING: the rotation function changes only between rotations"
            )));
        }
        self.rotate_secret_naming(secret_id, token, function, false, None)
            .await?;
        let after = self.describe(secret_id).await?;
        if after.versions.has_label(token, AWSPENDING) {
            let unstage = crate::labels::LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(token.to_owned()),
            };
            self.move_label(secret_id, &unstage).await?;
        }
        self.keep_rotation_off(secret_id, before.rotation_enabled, after.rotation_enabled)
            .await
    }

    /// RotateSecret naming `function`, with `schedule` or none; a function
    /// the endpoint cannot find is no error here.
    async fn rotate_secret_naming(
        &self,
        secret_id: &str,
        token: &str,
        function: &str,
        immediately: bool,
        schedule: Option<RotationRulesType>,
    ) -> Result<(), StoreError> {
        let result = self
            .client()
            .rotate_secret()
            .secret_id(secret_id)
            .client_request_token(token)
            .rotation_lambda_arn(function)
            .rotate_immediately(immediately)
            .set_rotation_rules(schedule)
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// CancelRotateSecret when a call turned on a rotation that was off.
    async fn keep_rotation_off(
        &self,
        secret_id: &str,
        was_on: bool,
        is_on: bool,
    ) -> Result<(), StoreError> {
        if was_on || !is_on {
            return Ok(());
        }
        self.client()
            .cancel_rotate_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
