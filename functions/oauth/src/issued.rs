//! RFC 7592's secrets, which the server issues and for which it retires the
//! old one in the same act: the issued value must reach Secrets Manager
//! ([`IssuedValues`]), and the registration access token a server hands out
//! on the way is the only one that manages the client from then on.

use std::sync::{Mutex, PoisonError};

use rotor_core::{
    Cause, Error, ExposeSecret, IssuedValues, SecretStore, SecretString, StepContext,
};

use crate::OAuthRotator;
use crate::providers::{self, rfc7592::IssueError};
use crate::secret::{ClientSecret, Provider};

/// RFC 7592 registration access tokens a server handed out in this process and
/// that are not stored yet, by secret ARN and registration URI. A server may
/// replace the token on a read (RFC 7592 §2.1); if the update that follows
/// fails, the new token is the only one that manages the client, so a retry in
/// this process must use it.
#[derive(Default)]
pub(crate) struct RegistrationTokens(Mutex<Vec<(String, String, SecretString)>>);

impl RegistrationTokens {
    fn get(&self, secret: &str, uri: &str) -> Option<SecretString> {
        let tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .iter()
            .find(|(s, u, _)| s == secret && u == uri)
            .map(|(_, _, t)| SecretString::from(t.expose_secret()))
    }

    fn put(&self, secret: &str, uri: &str, token: &SecretString) {
        self.forget(secret, uri);
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= 32 {
            tokens.remove(0);
        }
        tokens.push((
            secret.to_owned(),
            uri.to_owned(),
            SecretString::from(token.expose_secret()),
        ));
    }

    fn forget(&self, secret: &str, uri: &str) {
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|(s, u, _)| !(s == secret && u == uri));
    }
}

/// Which secret an RFC 7592 server holds for a client, as a read with the
/// token that came with an issued secret tells. The values carry the token
/// the read handed out, if it replaced the old one.
enum Held {
    /// The issued one: the value to store.
    Issued(SecretString),
    /// Another one: the issued secret is retired.
    Another,
    /// The read was refused (or the value is not an RFC 7592 client's).
    Refused,
    /// The read does not show the secret.
    NotShown(SecretString),
}

impl OAuthRotator {
    /// RFC 7592: a new secret from the server, with the freshest registration
    /// access token this process knows for the client.
    pub(crate) async fn rfc7592<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        current: &ClientSecret,
    ) -> Result<SecretString, Error> {
        let arn = ctx.secret_arn();
        let (uri, stored) = providers::rfc7592::registration(current)?;
        let remember = |token: &SecretString| self.tokens.put(arn, uri, token);
        let result = match self.tokens.get(arn, uri) {
            Some(known) => match providers::rfc7592::issue(current, &known, remember).await {
                // Another process stored a newer token since: use the stored one.
                Err(IssueError::TokenRefused { .. }) => {
                    self.tokens.forget(arn, uri);
                    providers::rfc7592::issue(current, stored, remember).await
                }
                other => other,
            },
            None => providers::rfc7592::issue(current, stored, remember).await,
        };
        match result {
            Ok(issued) => {
                // The issued value carries the newest token from here on.
                self.tokens.forget(arn, uri);
                let token = issued.registration_access_token.as_ref();
                Ok(current.with_secret(&issued.secret, &issued.fields, token))
            }
            Err(IssueError::Other(error)) if self.tokens.get(arn, uri).is_some() => {
                let kept = concat!(
                    "The server replaced the registration access token when it was read; ",
                    "this process keeps the new one, so retry this step soon (a restarted ",
                    "function has only the stored token, which the server no longer takes)"
                );
                Err(error.map_target_problem(|problem| format!("{problem}. {kept}")))
            }
            Err(IssueError::Other(error)) => Err(error),
            Err(IssueError::TokenRefused { problem }) => {
                let version = &ctx.current().await?.version_id;
                let problem = format!(
                    "{problem}: the server refused the registration access token in field registration_access_token of AWSCURRENT (version {version}). If an earlier attempt at a rotation failed after the server answered, the server may have replaced the token then (RFC 7592 allows it) and the new one was never stored. If another createSecret for this version ran at the same time (an overlapping retry), its update replaced the token, and it stores the new one with its secret: then AWSPENDING (version {pending}) appears and the rotation goes on, so look first. Otherwise, to recover: have the authorization server's administrator issue a new registration access token (and client secret) for client {client}, store them in a new AWSCURRENT value (aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://client.json), then rotate again",
                    client = current.client_id,
                    pending = ctx.event.version_id,
                );
                Err(providers::failure(
                    Provider::Rfc7592,
                    uri,
                    Cause::Auth,
                    problem,
                ))
            }
        }
    }

    /// Reads the client of an issued value (RFC 7592) with the value's own
    /// registration access token. A token the read hands out is kept in
    /// this process at once, as it is the only one that works from then on.
    async fn server_holds<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        issued: &SecretString,
    ) -> Result<Held, Error> {
        let Ok(client) = ClientSecret::parse(issued) else {
            return Ok(Held::Refused);
        };
        let (Provider::Rfc7592, Ok((uri, token))) = (client.provider, client.registration()) else {
            return Ok(Held::Refused);
        };
        let Some(read) = providers::rfc7592::read(&client, token).await? else {
            return Ok(Held::Refused);
        };
        if let Some(token) = &read.token {
            self.tokens.put(ctx.secret_arn(), uri, token);
        }
        let value = match &read.token {
            Some(token) => client.with_secret(&client.client_secret, &[], Some(token)),
            None => SecretString::from(issued.expose_secret()),
        };
        Ok(match read.secret {
            None => Held::NotShown(value),
            Some(held) if held.expose_secret() != client.client_secret.expose_secret() => {
                Held::Another
            }
            Some(_) => Held::Issued(value),
        })
    }
}

/// RFC 7592's update retires the old secret: the issued one must be stored.
impl IssuedValues for OAuthRotator {
    fn issued_at_target(&self, value: &SecretString) -> bool {
        ClientSecret::parse(value).is_ok_and(|client| client.provider == Provider::Rfc7592)
    }

    /// RFC 7592: before storing a secret kept from an earlier attempt, read
    /// the client with the kept token. Another process may have asked for a
    /// newer secret since (then the kept one is retired: ask for another), and
    /// a server may replace the token on the read (store the new one).
    async fn refresh_issued<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        kept: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        Ok(match self.server_holds(ctx, kept).await? {
            Held::Issued(value) | Held::NotShown(value) => Some(value),
            Held::Another => None,
            // Nothing better is known than the kept value.
            Held::Refused => Some(SecretString::from(kept.expose_secret())),
        })
    }

    /// RFC 7592: another createSecret run stored its secret for this version
    /// first. Read the client with this run's token: if the server holds this
    /// run's secret, the stored one was retired when this one was issued.
    async fn held_at_target<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        ours: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        Ok(match self.server_holds(ctx, ours).await? {
            Held::Issued(value) => Some(value),
            // Refused (a later update replaced the token) or not shown: a
            // later run holds the secret, or nothing tells; the stored stands.
            Held::Another | Held::Refused | Held::NotShown(_) => None,
        })
    }

    async fn recovery<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        value: &SecretString,
    ) -> String {
        let arn = ctx.secret_arn();
        let token = &ctx.event.version_id;
        let retry = format!(
            "aws secretsmanager rotate-secret --secret-id {arn}: while version {token} is pending, Secrets Manager reattempts it"
        );
        let (Ok(issued), Ok(stored)) = (ClientSecret::parse(value), ctx.current().await) else {
            return format!(
                "Fix the cause above, then retry the rotation with the same version ({retry}) while this function's process is warm: it stores the value it keeps"
            );
        };
        let version = &stored.version_id;
        let client = &issued.client_id;
        // Only to choose the words: without a stored token to compare, the
        // server is taken to have kept it.
        let stored_token = ClientSecret::parse(&stored.value)
            .ok()
            .and_then(|c| c.registration_access_token);
        let token_replaced = match (stored_token, &issued.registration_access_token) {
            (Some(old), Some(new)) => old.expose_secret() != new.expose_secret(),
            _ => false,
        };
        if token_replaced {
            format!(
                "The authorization server has retired client {client}'s old secret, so AWSCURRENT's secret is refused, and it also replaced the registration access token: the only token that manages the client now is the new one, kept with the new secret in this function's memory for version {token}, not in Secrets Manager; the one in AWSCURRENT (version {version}) no longer works. Fix the cause above, then retry the rotation with the same version ({retry}) while this function's process is warm: it stores the kept value without asking the server again. If the process has restarted, have the server's administrator issue a new registration access token and secret for client {client}, store them in a new AWSCURRENT value (aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://client.json), then rotate again"
            )
        } else {
            format!(
                "The authorization server has retired client {client}'s old secret, so AWSCURRENT's secret is refused until a new one is stored. The registration access token in field registration_access_token of AWSCURRENT (version {version}) still manages the client. Fix the cause above, then retry the rotation with the same version ({retry}): while this function's process is warm it stores the value it keeps; a restarted one asks the server for another secret with that token"
            )
        }
    }
}
