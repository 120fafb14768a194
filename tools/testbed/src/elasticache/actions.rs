//! The hyper handler and the actions: DescribeUsers, ModifyUser, and a
//! user's tags (ListTagsForResource, AddTagsToResource).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use super::Shared;
use super::protocol::{Fault, Params, VERSION, response_xml};
use super::state::{AuthType, Call};

/// The documented password length, in characters.
const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 16..=128;

pub(super) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let signed = request.headers().contains_key(hyper::header::AUTHORIZATION);
    let post = request.method() == Method::POST;
    let params = match request.into_body().collect().await {
        Ok(body) => Params::parse(&body.to_bytes()),
        Err(_) => Params::parse(b""),
    };
    let action = params.get("Action").unwrap_or("").to_owned();
    let answer = if !signed {
        Err(Fault::new(
            "MissingAuthenticationToken",
            403,
            "Request is missing Authentication Token",
        ))
    } else if !post {
        Err(Fault::new("InvalidAction", 400, "Only POST is emulated."))
    } else {
        answer(&shared, &action, &params).await
    };
    let call = Call {
        action: action.clone(),
        user_id: params.get("UserId").map(str::to_owned),
        password_count: params.list_len("Passwords")
            + params.list_len("AuthenticationMode.Passwords"),
        status: answer.as_ref().map_or_else(|f| f.status, |_| 200),
        error_code: answer.as_ref().err().map(|f| f.code.clone()),
    };
    shared.with_state(|s| s.calls.push(call));
    let (status, body) = match answer {
        Ok(result) => (200, response_xml(&action, &result, &request_id)),
        Err(fault) => (fault.status, fault.to_xml(&request_id)),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    Ok(response)
}

/// The `…Result` element's content, or the fault to answer.
async fn answer(shared: &Shared, action: &str, params: &Params) -> Result<String, Fault> {
    if action.is_empty() {
        return Err(Fault::new("MissingAction", 400, "Action is missing."));
    }
    if params.get("Version") != Some(VERSION) {
        return Err(Fault::invalid_value(format!(
            "Version must be {VERSION} for ElastiCache."
        )));
    }
    let injected = shared.with_state(|s| s.take_injected(action));
    if let Some(injected) = &injected
        && !injected.after_applying
    {
        return Err(injected.fault.clone());
    }
    let answer = match action {
        "DescribeUsers" => describe_users(shared, params),
        "ModifyUser" => modify_user(shared, params).await,
        "ListTagsForResource" => list_tags(shared, params),
        "AddTagsToResource" => add_tags(shared, params),
        _ => Err(Fault::new(
            "InvalidAction",
            400,
            format!("The action {action} is not valid for this web service."),
        )),
    };
    match injected {
        Some(injected) if answer.is_ok() => Err(injected.fault),
        _ => answer,
    }
}

/// One user by `UserId`, or every user; each answer counts down a modifying
/// user's remaining `modifying` answers. `Engine`, `Filters`, `MaxRecords`
/// and `Marker` are accepted and ignored (one page, no marker).
fn describe_users(shared: &Shared, params: &Params) -> Result<String, Fault> {
    let wanted = params.get("UserId");
    shared.with_state(|s| {
        if let Some(id) = wanted
            && s.user(id).is_none()
        {
            return Err(Fault::user_not_found(id));
        }
        let mut members = String::new();
        for user in s.users.iter_mut() {
            if wanted.is_some_and(|id| id != user.id) {
                continue;
            }
            members.push_str(&format!("<member>{}</member>", user.to_xml(user.status())));
            user.modifying_left = user.modifying_left.saturating_sub(1);
        }
        Ok(format!("<Users>{members}</Users>"))
    })
}

/// What a ModifyUser request asks for, checked.
struct Change {
    /// `Some`: the new authentication and its passwords.
    auth: Option<(AuthType, Vec<SecretString>)>,
    access: Option<Access>,
}

enum Access {
    Replace(String),
    Append(String),
}

fn parse_change(params: &Params) -> Result<Change, Fault> {
    let passwords = params.secret_list("Passwords")?;
    let no_password = params.boolean("NoPasswordRequired")?;
    let mode = params.get("AuthenticationMode.Type");
    let mode_passwords = params.secret_list("AuthenticationMode.Passwords")?;
    if mode.is_some() && (!passwords.is_empty() || no_password.is_some()) {
        return Err(Fault::combination(
            "AuthenticationMode cannot be combined with Passwords or NoPasswordRequired.",
        ));
    }
    if mode.is_none() && !mode_passwords.is_empty() {
        return Err(Fault::invalid_value(
            "AuthenticationMode.Passwords needs AuthenticationMode.Type password.",
        ));
    }
    let auth = match (mode, no_password) {
        (Some("password"), _) if mode_passwords.is_empty() => {
            return Err(Fault::invalid_value(
                "AuthenticationMode.Type password needs AuthenticationMode.Passwords.",
            ));
        }
        (Some("password"), _) => Some((AuthType::Password, mode_passwords)),
        (Some("no-password-required"), _) if !mode_passwords.is_empty() => {
            return Err(Fault::combination(
                "AuthenticationMode.Type no-password-required takes no passwords.",
            ));
        }
        (Some("no-password-required"), _) => Some((AuthType::NoPassword, Vec::new())),
        (Some("iam"), _) if !mode_passwords.is_empty() => {
            return Err(Fault::combination(
                "AuthenticationMode.Type iam takes no passwords.",
            ));
        }
        (Some("iam"), _) => Some((AuthType::Iam, Vec::new())),
        (Some(_), _) => {
            return Err(Fault::invalid_value(
                "AuthenticationMode.Type must be password, no-password-required or iam.",
            ));
        }
        (None, Some(true)) if !passwords.is_empty() => {
            return Err(Fault::combination(
                "Passwords cannot be combined with NoPasswordRequired true.",
            ));
        }
        (None, Some(true)) => Some((AuthType::NoPassword, Vec::new())),
        (None, _) if passwords.is_empty() => None,
        (None, _) => Some((AuthType::Password, passwords)),
    };
    if let Some((_, list)) = &auth {
        check_passwords(list)?;
    }
    let access = match (params.get("AccessString"), params.get("AppendAccessString")) {
        (Some(_), Some(_)) => {
            return Err(Fault::combination(
                "AccessString and AppendAccessString cannot be combined.",
            ));
        }
        (Some(text), None) => Some(Access::Replace(non_blank("AccessString", text)?)),
        (None, Some(text)) => Some(Access::Append(non_blank("AppendAccessString", text)?)),
        (None, None) => None,
    };
    if auth.is_none() && access.is_none() {
        return Err(Fault::combination("No modifications were requested."));
    }
    Ok(Change { auth, access })
}

/// At most two, each 16 to 128 characters; the message names the member,
/// never its value.
fn check_passwords(list: &[SecretString]) -> Result<(), Fault> {
    if list.len() > 2 {
        return Err(Fault::invalid_value(
            "Passwords: a user has at most two passwords.",
        ));
    }
    for (i, password) in list.iter().enumerate() {
        let length = password.expose_secret().chars().count();
        if !PASSWORD_LENGTH.contains(&length) {
            return Err(Fault::invalid_value(format!(
                "Passwords.member.{}: passwords must be between 16 and 128 characters long.",
                i + 1
            )));
        }
    }
    Ok(())
}

fn non_blank(name: &str, text: &str) -> Result<String, Fault> {
    if text.trim().is_empty() {
        return Err(Fault::invalid_value(format!("{name} must not be blank.")));
    }
    Ok(text.to_owned())
}

async fn modify_user(shared: &Shared, params: &Params) -> Result<String, Fault> {
    let id = params
        .get("UserId")
        .ok_or_else(|| Fault::new("MissingParameter", 400, "UserId is required."))?;
    let change = parse_change(params)?;
    let (name, old_access) = shared.with_state(|s| {
        let user = s.user(id).ok_or_else(|| Fault::user_not_found(id))?;
        if user.modifying_left > 0 {
            return Err(Fault::new(
                "InvalidUserState",
                400,
                format!("User {id} is not in active state."),
            ));
        }
        Ok((user.name.clone(), user.access_string.clone()))
    })?;
    let new_access = match &change.access {
        None => None,
        Some(Access::Replace(text)) => Some(text.clone()),
        Some(Access::Append(text)) => Some(format!("{old_access} {text}")),
    };
    let mut args: Vec<String> = vec!["ACL".into(), "SETUSER".into(), name];
    if let Some(Access::Replace(text)) = &change.access {
        args.extend(["resetkeys", "resetchannels", "-@all"].map(String::from));
        args.extend(text.split_whitespace().map(String::from));
    }
    if let Some(Access::Append(text)) = &change.access {
        args.extend(text.split_whitespace().map(String::from));
    }
    match &change.auth {
        None => {}
        Some((AuthType::NoPassword, _)) => args.push("nopass".into()),
        Some((_, passwords)) => {
            args.push("resetpass".into());
            args.extend(passwords.iter().map(|p| format!(">{}", p.expose_secret())));
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    match shared.redis.run(&refs).await {
        Ok(()) => {}
        Err(super::RedisAdminError::Refused { .. }) => {
            return Err(Fault::invalid_value(
                "The access string is not a valid list of Redis ACL rules.",
            ));
        }
        Err(error) => {
            tracing::warn!(%error, "the emulator's Redis change failed");
            return Err(Fault::new(
                "InternalFailure",
                500,
                "The backing Redis could not be changed.",
            ));
        }
    }
    shared.with_state(|s| {
        let describes = s.modifying_describes;
        let user = s.user_mut(id).ok_or_else(|| Fault::user_not_found(id))?;
        if let Some(access) = new_access {
            user.access_string = access;
        }
        if let Some((auth, passwords)) = &change.auth {
            user.auth = *auth;
            user.password_count = passwords.len();
        }
        user.modifying_left = describes;
        // The answer shows the change under way, as AWS's does.
        Ok(user.to_xml("modifying"))
    })
}

/// The most tags a resource holds (AWS's documented quota).
const MAX_TAGS: usize = 50;

/// The user that `ResourceName` names. Only users are emulated: an ARN of
/// anything else, or a text that is no ElastiCache ARN of this emulator's
/// region and account, is `InvalidARN`.
fn tagged_user<'a>(
    state: &'a mut super::state::State,
    params: &Params,
) -> Result<&'a mut super::state::UserRecord, Fault> {
    let name = params
        .get("ResourceName")
        .ok_or_else(|| Fault::new("MissingParameter", 400, "ResourceName is required."))?;
    let user_prefix = format!(
        "arn:aws:elasticache:{}:{}:user:",
        super::REGION,
        super::ACCOUNT
    );
    let Some(id) = name.strip_prefix(&user_prefix).filter(|id| !id.is_empty()) else {
        return Err(Fault::new(
            "InvalidARN",
            400,
            format!("{name} is not the ARN of a user of this emulator (users only are emulated)."),
        ));
    };
    let id = id.to_owned();
    state
        .user_by_arn_mut(name)
        .ok_or_else(|| Fault::user_not_found(&id))
}

/// `ListTagsForResource`: the user's `TagList`.
fn list_tags(shared: &Shared, params: &Params) -> Result<String, Fault> {
    shared.with_state(|s| Ok(tagged_user(s, params)?.tags_xml()))
}

/// `AddTagsToResource`: sets each of `Tags` (a key already there gets the new
/// value), answers the user's whole `TagList`.
fn add_tags(shared: &Shared, params: &Params) -> Result<String, Fault> {
    let tags = params.tag_list("Tags")?;
    if tags.is_empty() {
        return Err(Fault::new("MissingParameter", 400, "Tags is required."));
    }
    for (key, value) in &tags {
        if key.is_empty() || key.chars().count() > 128 || key.starts_with("aws:") {
            return Err(Fault::invalid_value(
                "A tag key must be 1 to 128 characters and not start with aws:.",
            ));
        }
        if value.chars().count() > 256 {
            return Err(Fault::invalid_value(
                "A tag value must be at most 256 characters.",
            ));
        }
    }
    shared.with_state(|s| {
        let user = tagged_user(s, params)?;
        let mut tagged = user.tags.clone();
        for (key, value) in &tags {
            match tagged.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => v.clone_from(value),
                None => tagged.push((key.clone(), value.clone())),
            }
        }
        if tagged.len() > MAX_TAGS {
            return Err(Fault::new(
                "TagQuotaPerResourceExceeded",
                400,
                format!("A resource holds at most {MAX_TAGS} tags."),
            ));
        }
        user.tags = tagged;
        Ok(user.tags_xml())
    })
}
