//! A local receiver for generic-rotation's webhook (and the after-rotation
//! actions' `finished` call), for the demo and the tests:
//! it checks each request's signature, remembers what was registered, and can be
//! told to refuse a step or to hold validation back (multi-call rotation).
//!
//! It is also an issuer (generic-rotation's issuer mode): it mints API keys
//! (`issue`), keeps its own record of which are live and for which version
//! (`list`), says whether a key works (`test`; a revoked one does not) and
//! revokes them (`revoke`). Any action can be told to fail or to answer
//! something hostile ([`Behaviour`]).

use crate::loopback::{self, Loopback};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 (for testSecret: only if the version was registered).
    Accept,
    /// 202: accepted, not validated yet.
    Defer,
    /// This HTTP status.
    Refuse(u16),
    /// `issue`: mints a key, then answers 200 with a body that is no JSON.
    Malformed,
    /// `issue`: mints a key, then answers 200 with a body of 1 MiB.
    Oversized,
    /// `issue`: mints a key, then answers with an extra field, `password`,
    /// that the secret does not give the issuer.
    ForeignField,
    /// 307 to another URL on the same receiver.
    Redirect,
}

/// A key the issuer minted.
#[derive(Clone, Debug)]
pub struct IssuedKey {
    /// The version it was issued for.
    pub version_id: String,
    /// Whether it has been revoked.
    pub revoked: bool,
    /// The field values minted, by field.
    pub fields: BTreeMap<String, String>,
}

/// One request the receiver saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// setSecret or testSecret.
    pub action: String,
    /// The version named.
    pub version_id: String,
    /// Whether the signature verified.
    pub signature_ok: bool,
    /// Whether the body carried a `secretString` field (a value).
    pub carried_value: bool,
    /// The status answered.
    pub status: u16,
    /// Whether the request carried a value the receiver did not issue or
    /// is not to register (`currentSecretString`).
    pub carried_current: bool,
}

#[derive(Default)]
struct State {
    behaviour: BTreeMap<String, Behaviour>,
    registered: BTreeMap<String, SecretString>,
    seen: Vec<Seen>,
    keys: BTreeMap<String, IssuedKey>,
    minted: u32,
}

impl State {
    /// Mints a key for `version` with a random value in each of `fields`.
    fn mint(&mut self, version: &str, fields: &[String]) -> String {
        self.minted += 1;
        let key_id = format!(
            "key-{:04}-{}",
            self.minted,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let fields = fields
            .iter()
            .map(|f| (f.clone(), uuid::Uuid::new_v4().simple().to_string()))
            .collect();
        let key = IssuedKey {
            version_id: version.to_owned(),
            revoked: false,
            fields,
        };
        self.keys.insert(key_id.clone(), key);
        key_id
    }
}

/// A running receiver; dropping it stops the server.
pub struct WebhookReceiver {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: Loopback,
}

impl WebhookReceiver {
    /// Listens on 127.0.0.1 at a free port, verifying signatures with `key`.
    pub async fn start(key: SecretString) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let key = Arc::new(key);
        let shared = state.clone();
        let server = loopback::serve("webhook receiver", move |req| {
            handle(req, shared.clone(), key.clone())
        })
        .await?;
        Ok(WebhookReceiver {
            address: server.address(),
            state,
            _server: server,
        })
    }

    /// The URL to configure as the webhook.
    pub fn url(&self) -> String {
        format!("http://{}/rotor", self.address)
    }

    /// Sets how `action` (setSecret, testSecret) is answered from now on.
    pub fn set_behaviour(&self, action: &str, behaviour: Behaviour) {
        if let Ok(mut state) = self.state.lock() {
            state.behaviour.insert(action.to_owned(), behaviour);
        }
    }

    /// The value registered for a version, if any.
    pub fn registered(&self, version_id: &str) -> Option<SecretString> {
        let state = self.state.lock().ok()?;
        state
            .registered
            .get(version_id)
            .map(|v| SecretString::from(v.expose_secret()))
    }

    /// Issuer role: mints a key outside any rotation (the first one, stored
    /// by hand): its id and its fields as a JSON object.
    pub fn mint(
        &self,
        version_id: &str,
        fields: &[&str],
    ) -> (String, serde_json::Map<String, Value>) {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let Ok(mut state) = self.state.lock() else {
            return (String::new(), serde_json::Map::new());
        };
        let id = state.mint(version_id, &fields);
        let values = state.keys[&id]
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        (id, values)
    }

    /// Issuer role: every key minted, by id.
    pub fn keys(&self) -> BTreeMap<String, IssuedKey> {
        self.state
            .lock()
            .map(|s| s.keys.clone())
            .unwrap_or_default()
    }

    /// Issuer role: the ids of the keys not revoked.
    pub fn live_keys(&self) -> Vec<String> {
        self.keys()
            .into_iter()
            .filter(|(_, key)| !key.revoked)
            .map(|(id, _)| id)
            .collect()
    }

    /// Issuer role: whether a live key has `value` in `field` (an API call
    /// made with it would be accepted).
    pub fn accepts(&self, field: &str, value: &str) -> bool {
        self.keys()
            .values()
            .any(|key| !key.revoked && key.fields.get(field).is_some_and(|v| v == value))
    }

    /// Registers a value for a version by hand (the one in place before the
    /// first rotation).
    pub fn register(&self, version_id: &str, value: SecretString) {
        if let Ok(mut state) = self.state.lock() {
            state.registered.insert(version_id.to_owned(), value);
        }
    }

    /// Every value registered and not revoked, by version.
    pub fn registrations(&self) -> BTreeMap<String, SecretString> {
        self.state
            .lock()
            .map(|s| {
                s.registered
                    .iter()
                    .map(|(k, v)| (k.clone(), SecretString::from(v.expose_secret())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    key: Arc<SecretString>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        loopback::header(request.headers(), name)
            .unwrap_or("")
            .to_owned()
    };
    let (timestamp, signature) = (header("x-rotor-timestamp"), header("x-rotor-signature"));
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(400)),
    };
    let signature_ok = verify(
        key.expose_secret().as_bytes(),
        &timestamp,
        &body,
        &signature,
    );
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let action = parsed["action"].as_str().unwrap_or("").to_owned();
    let version_id = parsed["versionId"].as_str().unwrap_or("").to_owned();
    let Ok(mut state) = state.lock() else {
        return Ok(reply(500));
    };
    let behaviour = state
        .behaviour
        .get(&action)
        .copied()
        .unwrap_or(Behaviour::Accept);
    let mut answer = None;
    let status = match (signature_ok, action.as_str(), behaviour) {
        (false, _, _) => 401,
        (_, _, Behaviour::Refuse(status)) => status,
        (_, _, Behaviour::Redirect) => 307,
        (
            _,
            "issue",
            hostile @ (Behaviour::Malformed | Behaviour::Oversized | Behaviour::ForeignField),
        ) => {
            let (key_id, fields) = issue(&mut state, &parsed, &version_id);
            answer = Some(match hostile {
                Behaviour::Malformed => "{\"keyId\": \"cut short".to_owned(),
                Behaviour::Oversized => format!(
                    "{{\"keyId\":\"{key_id}\",\"pad\":\"{}\"}}",
                    "x".repeat(1 << 20)
                ),
                _ => {
                    let mut fields = fields;
                    fields.insert("password".into(), Value::String("taken-over".into()));
                    serde_json::json!({"keyId": key_id, "fields": fields}).to_string()
                }
            });
            200
        }
        (_, _, Behaviour::Defer) => 202,
        (_, "issue", _) => {
            let (key_id, fields) = issue(&mut state, &parsed, &version_id);
            answer = Some(serde_json::json!({"keyId": key_id, "fields": fields}).to_string());
            200
        }
        (_, "list", _) => {
            let ids: Vec<&String> = state
                .keys
                .iter()
                .filter(|(_, k)| !k.revoked && k.version_id == version_id)
                .map(|(id, _)| id)
                .collect();
            answer = Some(serde_json::json!({ "keyIds": ids }).to_string());
            200
        }
        (_, "test", _) => match parsed["keyId"].as_str().and_then(|id| state.keys.get(id)) {
            Some(key) if !key.revoked && key.version_id == version_id => 200,
            Some(_) => 409,
            None => 404,
        },
        (_, "revoke", _) => match parsed["keyId"].as_str() {
            Some(id) => match state.keys.get_mut(id) {
                Some(key) => {
                    key.revoked = true;
                    200
                }
                None => 404,
            },
            None => {
                state.registered.remove(&version_id);
                200
            }
        },
        (_, "setSecret", Behaviour::Accept) => match parsed["secretString"].as_str() {
            Some(value) => {
                state
                    .registered
                    .insert(version_id.clone(), SecretString::from(value));
                200
            }
            None => 400,
        },
        (_, "testSecret", Behaviour::Accept) if state.registered.contains_key(&version_id) => 200,
        (_, "testSecret", Behaviour::Accept) => 409,
        // After-rotation actions' call: the rotation is over, nothing to register.
        (_, "finished", Behaviour::Accept) => 200,
        _ => 400,
    };
    let carried_value = parsed.get("secretString").is_some();
    state.seen.push(Seen {
        action,
        version_id,
        signature_ok,
        carried_value,
        status,
        carried_current: parsed.get("currentSecretString").is_some(),
    });
    let mut response = reply(status);
    if let Some(answer) = answer {
        *response.body_mut() = Full::new(Bytes::from(answer));
    }
    if status == 307 {
        response.headers_mut().insert(
            hyper::header::LOCATION,
            hyper::header::HeaderValue::from_static("/elsewhere"),
        );
    }
    Ok(response)
}

/// Mints a key for an `issue` request: its id, and its fields as JSON.
fn issue(
    state: &mut State,
    request: &Value,
    version: &str,
) -> (String, serde_json::Map<String, Value>) {
    let fields: Vec<String> = request["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let id = state.mint(version, &fields);
    let values = state.keys[&id]
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    (id, values)
}

/// Checks `v1=hex(HMAC-SHA256(key, timestamp + "." + body))` and that the
/// timestamp is within five minutes, as a real receiver should.
pub fn verify(key: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.abs_diff(sent) > 300 {
        return false;
    }
    let Some(Ok(expected)) = signature.strip_prefix("v1=").map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn reply(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}
