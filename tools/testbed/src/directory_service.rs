//! A local stand-in for the AWS Directory Service API that ldap-rotation's
//! Managed Microsoft AD path calls, because moto has no `ResetUserPassword`.
//! Backed by a real [`SambaDc`], as the ElastiCache emulator is by a real
//! Redis: a reset changes the account's password on the DC, and an
//! independent client binds with exactly that password.
//!
//! What is faithful: the AWS JSON 1.1 protocol as the SDK sends it (a POST
//! with `X-Amz-Target: DirectoryService_20150416.<Action>`), answers as JSON
//! and errors as `{"__type": ..., "Message": ...}` with status 400;
//! `DescribeDirectories` (by `DirectoryIds`) answering one Microsoft AD
//! directory (`DirectoryId`, `Name` = the DC's DNS name, `ShortName`,
//! `DnsIpAddrs`, `Stage` `Active`, `Type` `MicrosoftAD`); `ResetUserPassword`
//! (`DirectoryId`, `UserName`, `NewPassword`) with its documented errors:
//! `EntityDoesNotExistException` (another directory), `UserDoesNotExistException`,
//! `InvalidPasswordException` (the DC's policy refused the password).
//!
//! What is not: SigV4 is not verified (an `Authorization` header must be
//! there); AWS resets only users in the OU named after the directory's
//! NetBIOS name: here any user but the domain's Administrator, which is
//! refused with `UnsupportedOperationException` (AWS's exact answer for its
//! `Admin` is not documented); no other action (`InvalidAction`, 400).
//! Knobs: fail the next call of an action with a code and status; the call
//! log (never a password).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::loopback::{self, Loopback, header};
use crate::samba_dc::{ADMINISTRATOR, DNS_NAME, NETBIOS, SambaDc};

/// The directory id the emulator answers for.
pub const DIRECTORY_ID: &str = "d-1234567890";

/// One call, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The action.
    pub action: String,
    /// The user it named, if any.
    pub user: Option<String>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    fail_next: Vec<(String, String, u16)>,
}

struct Shared {
    dc: Arc<SambaDc>,
    state: Mutex<State>,
}

/// A running emulator; dropping it stops the server (the DC stays).
pub struct DirectoryServiceEmulator {
    address: SocketAddr,
    shared: Arc<Shared>,
    _server: Loopback,
}

impl DirectoryServiceEmulator {
    /// Listens on 127.0.0.1 at a free port, resetting passwords on `dc`.
    pub async fn start(dc: Arc<SambaDc>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            dc,
            state: Mutex::new(State::default()),
        });
        let handler = shared.clone();
        let server = loopback::serve("directory service emulator", move |request| {
            handle(request, handler.clone())
        })
        .await?;
        Ok(DirectoryServiceEmulator {
            address: server.address(),
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`: the SDK's endpoint (`AWS_ENDPOINT_URL_DIRECTORY_SERVICE`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Fails the next call of `action` with `code` and `status`.
    pub fn fail_next(&self, action: &str, code: &str, status: u16) {
        self.state()
            .fail_next
            .push((action.to_owned(), code.to_owned(), status));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn reply(status: u16, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(response)
}

fn error(code: &str, status: u16, message: &str) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = reply(status, json!({ "__type": code, "Message": message }))?;
    if let Ok(value) = hyper::header::HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    Ok(response)
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if header(request.headers(), "authorization").is_none() {
        return error(
            "MissingAuthenticationToken",
            403,
            "the request is not signed",
        );
    }
    let action = header(request.headers(), "x-amz-target")
        .and_then(|t| t.strip_prefix("DirectoryService_20150416."))
        .unwrap_or("")
        .to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error("SerializationException", 400, "unreadable body"),
    };
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = input["UserName"].as_str().map(str::to_owned);
    let failure = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.calls.push(Call {
            action: action.clone(),
            user: user.clone(),
        });
        let position = state.fail_next.iter().position(|(a, _, _)| *a == action);
        position.map(|i| state.fail_next.remove(i))
    };
    if let Some((_, code, status)) = failure {
        return error(&code, status, "injected by the test");
    }
    match action.as_str() {
        "DescribeDirectories" => {
            let ids: Vec<&str> = input["DirectoryIds"]
                .as_array()
                .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !ids.is_empty() && !ids.contains(&DIRECTORY_ID) {
                return error("EntityDoesNotExistException", 400, "no such directory");
            }
            reply(
                200,
                json!({ "DirectoryDescriptions": [{
                    "DirectoryId": DIRECTORY_ID,
                    "Name": DNS_NAME,
                    "ShortName": NETBIOS,
                    "DnsIpAddrs": ["127.0.0.1"],
                    "Stage": "Active",
                    "Type": "MicrosoftAD",
                    "Edition": "Standard",
                }]}),
            )
        }
        "ResetUserPassword" => {
            if input["DirectoryId"].as_str() != Some(DIRECTORY_ID) {
                return error("EntityDoesNotExistException", 400, "no such directory");
            }
            let (Some(user), Some(password)) = (user, input["NewPassword"].as_str()) else {
                return error(
                    "InvalidParameterException",
                    400,
                    "UserName and NewPassword are required",
                );
            };
            if user.eq_ignore_ascii_case(ADMINISTRATOR) {
                return error(
                    "UnsupportedOperationException",
                    400,
                    "the admin account cannot be reset",
                );
            }
            let dc = shared.dc.clone();
            let password = SecretString::from(password);
            let outcome = tokio::task::spawn_blocking(move || {
                let dn = dc.find_dn(&user)?;
                Ok::<_, anyhow::Error>(match dn {
                    None => Err(("UserDoesNotExistException", "no such user")),
                    Some(dn) => match dc.reset_password(&dn, &password) {
                        Ok(()) => Ok(()),
                        Err(_) => Err((
                            "InvalidPasswordException",
                            "the password does not meet the directory's requirements",
                        )),
                    },
                })
            })
            .await;
            match outcome {
                Ok(Ok(Ok(()))) => reply(200, json!({})),
                Ok(Ok(Err((code, message)))) => error(code, 400, message),
                _ => error("ServiceException", 500, "the DC did not answer"),
            }
        }
        _ => error(
            "InvalidAction",
            400,
            "the emulator does not know this action",
        ),
    }
}
