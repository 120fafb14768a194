//! What must hold for any input to rotor's parsers, one function per fuzz target.
//!
//! The fuzz targets in `fuzz/fuzz_targets/` only hand libFuzzer's bytes to these
//! functions, so the same assertions run in two places: under cargo-fuzz, whose
//! instrumented build is too slow for the test command, and in this crate's replay
//! test, which runs them on the committed inputs (`fuzz/seeds/`, `fuzz/regressions/`)
//! and cheap mutations of them on every `cargo test`.
//!
//! A check returns when the input is refused or everything held, and panics
//! otherwise. It stays a pure function of its bytes: no I/O, no clock, no
//! environment. Its inputs are shaped like secrets, so its panic messages may
//! name what was parsed (an engine, a host, a user name, a policy) but never a
//! password or a client secret; the replay test prints them.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use generic_rotation::keypair::{KeyAlgorithm, RSA_BITS};
use generic_rotation::settings::{Defaults, Generator, parse_duration, parse_generator};
use oauth_rotation::secret::ClientSecret;
use rds_rotation::secret::{DbSecret, alternate_username, base_username};
use redis_rotation::managed::arn::CacheUserArn;
use redis_rotation::secret::UserSecret;
use rotation_scheduler::policy::{MAX_INTERVAL_SECS, MIN_INTERVAL_SECS, Policy, describe_secs};
use rotation_scheduler::window::Window;
use rotor_core::ExposeSecret;
use rotor_core::event::{RotationEvent, Step};
use rotor_core::password::{PUNCTUATION, PasswordPolicy};
use rotor_core::value::SecretValue;
use secrecy::SecretString;

/// `RotationEvent::from_json` on any JSON value: never panics, and an accepted
/// event has the fields the parser promises (non-empty, at most 2048 bytes).
pub fn rotation_event(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(event) = RotationEvent::from_json(&value) {
        for field in [&event.secret_id, &event.version_id] {
            assert!(!field.is_empty() && field.len() <= 2048);
        }
        if let Some(token) = &event.rotation_token {
            assert!(!token.is_empty() && token.len() <= 2048);
        }
        assert_eq!(Step::parse(event.step.as_str()), Some(event.step));
    }
}

/// `DbSecret::parse` on any text, then `alternate_username` on the user it
/// read, at every engine's limit: never panics. An accepted secret written back
/// with new credentials must parse again to the same target.
pub fn rds_secret(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(secret) = DbSecret::parse(&SecretString::from(text.as_ref())) else {
        return;
    };
    assert!(!secret.username.is_empty() && !secret.host.is_empty());
    assert!(secret.port > 0);
    let _ = secret.database();
    let _ = secret.address();
    // MySQL's default and configurable limits, PostgreSQL's 63, MariaDB's 80,
    // and the extremes.
    for limit in [0, 1, 16, 32, 63, 80, usize::MAX] {
        if let Ok(other) = alternate_username(&secret.username, limit, secret.engine) {
            let _ = base_username(&other);
        }
    }
    let rewritten = secret.with_credentials(&secret.username, &SecretString::from("new-password"));
    let again = DbSecret::parse(&rewritten).expect("a parsed secret, written back, parses again");
    assert_eq!(
        (
            again.engine,
            &again.host,
            again.port,
            &again.username,
            again.transport
        ),
        (
            secret.engine,
            &secret.host,
            secret.port,
            &secret.username,
            secret.transport
        )
    );
}

/// redis-rotation's `UserSecret::parse` on any text (a self-managed server's
/// user, or an ElastiCache or MemoryDB user with `user_arn`): never panics. A
/// refusal quotes no field's value (any string field holding `#`, which no
/// message does, stays out of it). An accepted secret written back with a new
/// password parses again, as the same user, with that password.
pub fn redis_secret(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let secret = match UserSecret::parse(&SecretString::from(text.as_ref())) {
        Ok(secret) => secret,
        Err(error) => {
            let message = error.to_string();
            if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&text) {
                let quoted = fields
                    .values()
                    .filter_map(serde_json::Value::as_str)
                    .any(|v| v.contains('#') && message.contains(v));
                assert!(!quoted, "a refusal quotes a field's value");
            }
            return;
        }
    };
    let user = secret.target();
    let _ = user.to_string();
    let rewritten = secret.with_password(&SecretString::from("new-password"));
    let again = UserSecret::parse(&rewritten).expect("a parsed secret, written back, parses again");
    assert!(again.target() == user, "{user} became {}", again.target());
    let password = match &again {
        UserSecret::SelfManaged(s) => {
            assert!(!s.username.is_empty() && !s.host.is_empty() && s.port > 0);
            let _ = (s.address(), s.endpoint());
            Some(&s.password)
        }
        UserSecret::Managed(m) => {
            assert!(!m.username.is_empty() && !m.user.id().is_empty());
            assert_eq!(m.user_arn.cache_user().as_ref(), Ok(&m.user));
            m.password.as_ref()
        }
    };
    assert!(password.is_some_and(|p| p.expose_secret() == "new-password"));
}

/// `ClientSecret::parse` on any text: never panics; an accepted client only ever
/// talks TLS (or loopback), and written back with a new secret parses again.
pub fn oauth_client(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(client) = ClientSecret::parse(&SecretString::from(text.as_ref())) else {
        return;
    };
    assert!(rotor_core::http::require_tls(&client.token_endpoint).is_ok());
    assert!(!client.client_id.is_empty());
    let _ = client.field("realm");
    let _ = client.require("application_id");
    let rewritten = client.with_secret(&SecretString::from("new-secret"), &[], None);
    let again =
        ClientSecret::parse(&rewritten).expect("a parsed client, written back, parses again");
    assert_eq!(
        (again.provider, &again.client_id, &again.token_endpoint),
        (client.provider, &client.client_id, &client.token_endpoint)
    );
}

/// ldap-rotation's secrets (either shape, AWS's field names and renamed
/// ones) on any text: never panics; an accepted self-managed secret only
/// names `ldap://` or `ldaps://` servers with a host and a port, a
/// non-empty password and a bind name, plaintext only where it says
/// `"ssl": false`; written back with a new password, either shape parses
/// again to the same target.
pub fn ldap_secret(data: &[u8]) {
    use ldap_rotation::secret::{AccountSecret, ManagedKeys, Transport};
    use rotor_core::SecretValue;
    let text = String::from_utf8_lossy(data);
    let value = SecretString::from(text.as_ref());
    let renamed = ManagedKeys::from_lookup(|var| match var {
        "DICT_KEY_DIRECTORY" => Some("DirectoryId".into()),
        "DICT_KEY_USERNAME" => Some("Username".into()),
        "DICT_KEY_PASSWORD" => Some("Password".into()),
        _ => None,
    });
    for keys in [ManagedKeys::default(), renamed] {
        let Ok(secret) = AccountSecret::parse_with(&value, &keys) else {
            continue;
        };
        let target = secret.target();
        let rewritten = match &secret {
            AccountSecret::Directory(s) => {
                assert!(!s.servers.is_empty() && !s.username.trim().is_empty());
                assert!(!s.password.expose_secret().is_empty());
                let says_plaintext = text.contains("false");
                for server in &s.servers {
                    assert!(server.endpoint.port > 0 && !server.endpoint.host.is_empty());
                    assert!(server.url().starts_with("ldap"));
                    if server.transport == Transport::Plaintext {
                        assert!(says_plaintext && server.url().starts_with("ldap://"));
                    }
                }
                s.next_value(&SecretString::from("N3w-password!"))
            }
            AccountSecret::Managed(m) => {
                assert!(m.directory_id.starts_with("d-") && m.directory_id.len() == 12);
                m.with_password(&SecretString::from("N3w-password!"))
            }
        };
        let again = AccountSecret::parse_with(&rewritten, &keys)
            .expect("a parsed secret, written back, parses again");
        assert_eq!(again.target(), target);
    }
}

/// iam-rotation's secret on any text: never panics, and never quotes the
/// secret access key in a refusal or in Debug; an accepted secret names an
/// IAM user name and a key id of IAM's shapes and a non-empty key; written
/// back with a new key (and SES password), it parses again to the same user.
pub fn iam_secret(data: &[u8]) {
    use iam_rotation::secret::KeySecret;
    let text = String::from_utf8_lossy(data);
    let value = SecretString::from(text.as_ref());
    let secret = match KeySecret::parse(&value) {
        Ok(secret) => secret,
        Err(refusal) => {
            // A refusal names fields, never a value: no string the input
            // holds under SecretAccessKey appears in it.
            if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&text)
                && let Some(serde_json::Value::String(key)) = fields.get("SecretAccessKey")
                && key.len() >= 8
            {
                assert!(
                    !refusal.0.contains(key.as_str()),
                    "a refusal quotes the key"
                );
            }
            return;
        }
    };
    let key = secret.secret_access_key.expose_secret().to_owned();
    assert!(!key.is_empty());
    assert!((1..=64).contains(&secret.user_name.len()));
    assert!((16..=128).contains(&secret.access_key_id.len()));
    if key.len() >= 8 {
        assert!(!format!("{secret:?}").contains(&key), "Debug shows the key");
    }
    let password = iam_rotation::ses::smtp_password(&SecretString::from("n3w/K3y"), "eu-west-1");
    let rewritten = secret.with_key(
        "AKIANEWKEY0123456789",
        &SecretString::from("n3w/K3y"),
        Some(&password),
    );
    let again = KeySecret::parse(&rewritten).expect("a parsed secret, written back, parses again");
    assert_eq!(again.target(), secret.target());
    assert_eq!(again.access_key_id, "AKIANEWKEY0123456789");
}

/// An accepted generator is usable: a password generator's policy validates,
/// and a byte generator makes 1 to 4096 bytes.
fn check_generator(generator: &Generator) {
    match generator {
        Generator::Password(policy) => assert!(policy.validate().is_ok()),
        Generator::Hex(n) | Generator::Base64(n) | Generator::Base64Url(n) => {
            assert!((1..=4096).contains(n))
        }
        Generator::KeyPair(spec) => {
            if let KeyAlgorithm::Rsa(bits) = spec.algorithm {
                assert!(RSA_BITS.contains(&bits));
            }
            assert!(spec.public_field.as_ref().is_none_or(|f| !f.is_empty()));
        }
    }
}

/// generic-rotation's settings: `parse_generator` and `parse_duration` on the
/// text, and `Defaults::from_lookup(..).resolve(..)` with the text's lines as
/// `key=value` environment variables and tags. Never panics; what is accepted
/// is usable (a password generator's policy validates, durations are positive).
pub fn generic_settings(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(generator) = parse_generator(&text, &PasswordPolicy::default()) {
        check_generator(&generator);
    }
    if let Ok(duration) = parse_duration(&text) {
        assert!(!duration.is_zero());
    }
    // An issuer's answer: accepted only with a valid key id and exactly the
    // fields it owns, each a non-empty string.
    let owned = ["api_key".to_owned(), "api_secret".to_owned()];
    if let Ok(issued) = generic_rotation::issuer::parse_issued(&text, &owned) {
        assert!(generic_rotation::issuer::valid_key_id(&issued.key_id));
        assert_eq!(issued.fields.len(), owned.len());
        assert!(
            owned
                .iter()
                .all(|f| issued.fields[f].as_str().is_some_and(|v| !v.is_empty()))
        );
    }

    let pairs: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // The input as the environment, its tags resolved over it...
    if let Ok(defaults) = Defaults::from_lookup(|name| pairs.get(name).cloned()) {
        let _ = defaults.resolve("fuzz", &pairs);
    }
    // ...and as the tags of a secret under a fixed, valid deployment.
    let env: BTreeMap<&str, &str> = [
        (
            "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
            "https://hooks.example.com/,http://127.0.0.1",
        ),
        ("ROTOR_WEBHOOK_KEY_SECRET", "webhook-key"),
    ]
    .into_iter()
    .collect();
    let defaults = Defaults::from_lookup(|name| env.get(name).map(|v| v.to_string()))
        .expect("the fixed environment is valid");
    if let Ok(settings) = defaults.resolve("fuzz", &pairs) {
        check_generator(&settings.generator);
        settings.field_generators.values().for_each(check_generator);
        assert!(!settings.validation_window.is_zero());
        if let Some(webhook) = &settings.webhook {
            assert!(rotor_core::http::require_tls(&webhook.url).is_ok());
        }
        if let Some(fields) = &settings.fields {
            assert!(!fields.is_empty() && fields.iter().all(|f| !f.is_empty()));
        }
        if settings.mode == generic_rotation::settings::Mode::Issue {
            let fields = settings.fields.as_deref().unwrap_or_default();
            assert!(!fields.is_empty() && settings.webhook.is_some());
            assert!(!fields.contains(&settings.key_id_field));
        }
    }
}

/// `PasswordPolicy::generate` on a policy made from the bytes: length 1..=512
/// from the first two, the six flags from the third, the characters to exclude
/// from the rest (UTF-8, lossily). It must fail exactly when the policy is
/// impossible, and otherwise produce a password that obeys it.
pub fn password_policy(data: &[u8]) {
    let [hi, lo, flags, rest @ ..] = data else {
        return;
    };
    let policy = PasswordPolicy {
        length: usize::from(u16::from_be_bytes([*hi, *lo])) % 512 + 1,
        exclude_characters: String::from_utf8_lossy(rest).into_owned(),
        exclude_numbers: flags & 1 != 0,
        exclude_punctuation: flags & 2 != 0,
        exclude_uppercase: flags & 4 != 0,
        exclude_lowercase: flags & 8 != 0,
        include_space: flags & 16 != 0,
        require_each_included_type: flags & 32 != 0,
    };

    // The policy's classes, worked out here independently of the module.
    let keep = |set: &str, dropped: bool| -> Vec<char> {
        if dropped {
            Vec::new()
        } else {
            set.chars()
                .filter(|c| !policy.exclude_characters.contains(*c))
                .collect()
        }
    };
    let required_classes = [
        keep("ABCDEFGHIJKLMNOPQRSTUVWXYZ", policy.exclude_uppercase),
        keep("abcdefghijklmnopqrstuvwxyz", policy.exclude_lowercase),
        keep("0123456789", policy.exclude_numbers),
        keep(PUNCTUATION, policy.exclude_punctuation),
    ];
    let space = keep(" ", !policy.include_space);
    let alphabet: Vec<char> = required_classes
        .iter()
        .flatten()
        .chain(&space)
        .copied()
        .collect();
    let required = if policy.require_each_included_type {
        required_classes.iter().filter(|c| !c.is_empty()).count()
    } else {
        0
    };
    let possible = !alphabet.is_empty() && policy.length >= required;

    match policy.generate() {
        Err(error) => assert!(
            !possible,
            "a possible policy {policy:?} was refused: {error}"
        ),
        Ok(password) => {
            assert!(possible, "an impossible policy {policy:?} made a password");
            let password: Vec<char> = password.expose_secret().chars().collect();
            assert_eq!(password.len(), policy.length, "wrong length for {policy:?}");
            assert!(
                password.iter().all(|c| alphabet.contains(c)),
                "a character outside the alphabet of {policy:?}"
            );
            if policy.require_each_included_type {
                for class in required_classes.iter().filter(|c| !c.is_empty()) {
                    assert!(
                        password.iter().any(|c| class.contains(c)),
                        "a required class {class:?} is missing under {policy:?}"
                    );
                }
            }
            assert_eq!(alphabet, policy.alphabet());
        }
    }
}

/// The rotation-scheduler's `Policy::parse` on any text: never panics, and an
/// accepted policy is between 7 and 365 days.
pub fn scheduler_policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Policy::parse(&text) {
        Ok(policy) => {
            let secs = policy.interval_secs();
            assert!((7 * 86_400..=365 * 86_400).contains(&secs), "{secs}");
            assert!((MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&secs));
            assert_eq!(policy.as_str(), text.trim());
            assert_eq!(Policy::parse(policy.as_str()), Ok(policy.clone()));
            let _ = policy.due_at(i64::MAX);
            let _ = policy.due_at(i64::MIN);
            let _ = describe_secs(secs);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// A rotation window from any input: its lines are the window tag (an empty line:
/// no tag), `RotationRules.ScheduleExpression` and `Duration` (empty: absent), and
/// the moment, in seconds since the epoch. Never panics; an opening closes after
/// it opens and after the moment, is open at the later of the two, and asking
/// again from there finds an opening that holds it.
pub fn scheduler_window(data: &[u8]) {
    const TAG: &str = "rotor:window";
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut field = || lines.next().filter(|line| !line.is_empty());
    let tags: BTreeMap<String, String> = field()
        .map(|tag| (TAG.to_owned(), tag.to_owned()))
        .into_iter()
        .collect();
    let (expression, duration) = (field(), field());
    let now = field()
        .and_then(|line| line.trim().parse::<i64>().ok())
        .unwrap_or(1_750_000_000);
    let window = match Window::of(TAG, &tags, expression, duration) {
        Ok(Some(window)) => window,
        Ok(None) => return,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let opening = match window.next_opening(now) {
        Ok(opening) => opening,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    assert!(opening.opens < opening.closes, "{opening:?}");
    assert!(opening.closes > now, "{opening:?} at {now}");
    let at = opening.opens.max(now);
    assert!(opening.is_open_at(at), "{opening:?} at {at}");
    let again = window.next_opening(at).expect("open at the moment found");
    assert!(again.is_open_at(at), "{again:?} at {at}");
}
