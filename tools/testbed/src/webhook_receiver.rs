//! A local receiver for generic-rotation's webhook (and the after-rotation
//! actions' `finished` call), for the demo and the tests:
//! it checks each request's signature, remembers what was registered, and can be
//! told to refuse a step or to hold validation back (multi-call rotation).

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
}

#[derive(Default)]
struct State {
    behaviour: BTreeMap<String, Behaviour>,
    registered: BTreeMap<String, SecretString>,
    seen: Vec<Seen>,
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
    let status = match (signature_ok, action.as_str(), behaviour) {
        (false, _, _) => 401,
        (_, _, Behaviour::Refuse(status)) => status,
        (_, _, Behaviour::Defer) => 202,
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
    });
    Ok(reply(status))
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
