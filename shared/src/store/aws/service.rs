//! The service's side of a rotation on [`AwsStore`], for tests, the local
//! runner and the demo (the `testing` feature): CreateSecret, and the staging
//! RotateSecret does before it invokes a function, on an emulator.
//!
//! Never in a deployed function: staging points the secret's rotation at a
//! function that exists nowhere, which only an emulator answers usefully.

use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
use secrecy::{ExposeSecret, SecretString};

use super::{AwsStore, classify};
use crate::labels::AWSPENDING;
use crate::store::{RotationService, SecretStore, StoreError};

/// A function ARN that exists nowhere, so RotateSecret stages but invokes nothing.
const STAGING_ONLY_FUNCTION: &str =
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
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
        let staged = self.describe(secret_id).await?;
        if staged.versions.has_label(token, AWSPENDING) {
            Ok(())
        } else {
            Err(StoreError::Rejected(format!(
                "RotateSecret did not stage version {token} as AWSPENDING on this endpoint"
            )))
        }
    }
}
