//! iam-rotation's test bed for `rotor bench` and `rotor demo`: a second moto
//! server with IAM authentication on (it verifies signatures against the
//! keys it issued and applies the callers' policies), an administrator, the
//! user whose key a secret holds, and the function's own IAM user.

use anyhow::{Context, ensure};
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::moto::{Moto, local_env};
use serde_json::Value;

/// The moto's account.
const ACCOUNT: &str = "123456789012";

/// moto's IAM with authentication on, and the user a secret's key belongs to.
pub struct IamBed {
    _moto: Moto,
    admin: aws_sdk_iam::Client,
    user: String,
    endpoint: String,
}

impl IamBed {
    /// Starts the IAM moto, makes `user` with one key, stores it as `secret`
    /// (in the Secrets Manager at `endpoint`), and returns the function's
    /// environment: its own IAM user's key (allowed the template's actions),
    /// the IAM and STS endpoints, and `IAM_USER_ARNS` naming `user`.
    pub async fn start(
        store: &AwsStore,
        endpoint: &str,
        secret: &str,
        user: &str,
    ) -> anyhow::Result<(IamBed, Vec<(String, String)>)> {
        // Its first three requests (CreateUser, PutUserPolicy,
        // CreateAccessKey of the administrator) need no signature.
        let moto = Moto::start_with_auth(3)?;
        let iam_endpoint = moto.endpoint().to_owned();
        let bootstrap = iam_client(&iam_endpoint, "bootstrap", &SecretString::from("bootstrap"));
        let admin_key = user_with_key(&bootstrap, "rotor-admin", Some(&["*"])).await?;
        let admin = iam_client(&iam_endpoint, &admin_key.0, &admin_key.1);
        let key = user_with_key(&admin, user, None).await?;
        let actions = [
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:CreateAccessKey",
            "iam:DeleteAccessKey",
            "iam:UpdateAccessKey",
            "iam:GetAccessKeyLastUsed",
        ];
        let function_key = user_with_key(&admin, "rotor-function", Some(&actions)).await?;
        let value = serde_json::json!({"Version": 1, "UserName": user, "AccessKeyId": key.0,
            "SecretAccessKey": key.1.expose_secret()});
        store
            .create_secret(secret, &SecretString::from(value.to_string()), &[])
            .await
            .with_context(|| format!("creating {secret}"))?;
        let mut env = local_env(endpoint);
        env.retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY");
        for (k, v) in [
            ("AWS_ENDPOINT_URL_IAM", iam_endpoint.clone()),
            ("AWS_ENDPOINT_URL_STS", iam_endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", function_key.0.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                function_key.1.expose_secret().to_owned(),
            ),
            (
                "IAM_USER_ARNS",
                format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            ),
        ] {
            env.push((k.to_owned(), v));
        }
        let bed = IamBed {
            _moto: moto,
            admin,
            user: user.to_owned(),
            endpoint: iam_endpoint,
        };
        Ok((bed, env))
    }

    /// The user's keys: (id, active).
    pub async fn keys(&self) -> anyhow::Result<Vec<(String, bool)>> {
        let out = self
            .admin
            .list_access_keys()
            .user_name(&self.user)
            .send()
            .await?;
        Ok(out
            .access_key_metadata()
            .iter()
            .map(|k| {
                let active = k.status() == Some(&aws_sdk_iam::types::StatusType::Active);
                (k.access_key_id().unwrap_or_default().to_owned(), active)
            })
            .collect())
    }

    /// Whether the key signs in at STS as the user.
    pub async fn signs_in(&self, id: &str, secret: &SecretString) -> bool {
        let config = rotor_testbed::moto::local_sdk_config(&self.endpoint);
        let who = iam_rotation::api::caller(&config, id, secret, &self.user).await;
        who.is_ok_and(|arn| arn == format!("arn:aws:iam::{ACCOUNT}:user/{}", self.user))
    }

    /// The key id and secret under `label`.
    pub async fn stored_key(
        store: &AwsStore,
        secret: &str,
        label: &str,
    ) -> anyhow::Result<(String, SecretString)> {
        let stored = store
            .get_value(secret, VersionSelector::Label(label))
            .await?
            .with_context(|| format!("{secret} has no {label} value"))?;
        let value: Value = serde_json::from_str(stored.value.expose_secret())
            .map_err(|_| anyhow::anyhow!("{secret}'s {label} value is not JSON"))?;
        let text = |f: &str| value[f].as_str().unwrap_or_default().to_owned();
        Ok((
            text("AccessKeyId"),
            SecretString::from(text("SecretAccessKey")),
        ))
    }

    /// After a rotation: AWSCURRENT's key differs from AWSPREVIOUS's, signs
    /// in at STS as the user, the user holds at most two keys, and no secret
    /// access key is in the function's output.
    pub async fn check(&self, store: &AwsStore, secret: &str, output: &str) -> anyhow::Result<()> {
        let (id, new) = Self::stored_key(store, secret, AWSCURRENT).await?;
        let (old_id, old) = Self::stored_key(store, secret, AWSPREVIOUS).await?;
        ensure!(
            id != old_id,
            "the rotation of {secret} left the key as it was"
        );
        ensure!(
            !output.contains(new.expose_secret()) && !output.contains(old.expose_secret()),
            "the function's output holds a secret access key of {secret}"
        );
        ensure!(
            self.signs_in(&id, &new).await,
            "AWSCURRENT's key of {secret} does not sign in as {}",
            self.user
        );
        ensure!(
            self.keys().await?.len() <= 2,
            "the user holds more than two keys"
        );
        Ok(())
    }
}

/// An IAM client for moto's IAM at `endpoint`, signing with `id` and `secret`.
fn iam_client(endpoint: &str, id: &str, secret: &SecretString) -> aws_sdk_iam::Client {
    use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            id,
            secret.expose_secret(),
            None,
            None,
            "rotor-bench",
        ))
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

/// Creates `user` (allowed `actions` on `*`, if given) and a key for it.
async fn user_with_key(
    iam: &aws_sdk_iam::Client,
    user: &str,
    actions: Option<&[&str]>,
) -> anyhow::Result<(String, SecretString)> {
    iam.create_user()
        .user_name(user)
        .send()
        .await
        .context("CreateUser")?;
    if let Some(actions) = actions {
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}]});
        iam.put_user_policy()
            .user_name(user)
            .policy_name("bench")
            .policy_document(policy.to_string())
            .send()
            .await
            .context("PutUserPolicy")?;
    }
    let out = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .context("CreateAccessKey")?;
    let key = out.access_key.context("CreateAccessKey answered no key")?;
    Ok((key.access_key_id, SecretString::from(key.secret_access_key)))
}
