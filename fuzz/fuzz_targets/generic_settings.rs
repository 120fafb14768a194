//! generic-rotation's settings: `parse_generator` and `parse_duration` on the
//! text, and `Defaults::from_lookup(..).resolve(..)` with the text's lines as
//! `key=value` environment variables and tags. Never panics; what is accepted
//! is usable (a password generator's policy validates, durations are positive).
#![no_main]

use std::collections::BTreeMap;

use generic_rotation::settings::{Defaults, Generator, parse_duration, parse_generator};
use libfuzzer_sys::fuzz_target;
use rotor_core::password::PasswordPolicy;

fn check(generator: &Generator) {
    match generator {
        Generator::Password(policy) => assert!(policy.validate().is_ok()),
        Generator::Hex(n) | Generator::Base64(n) | Generator::Base64Url(n) => {
            assert!((1..=4096).contains(n))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(generator) = parse_generator(&text, &PasswordPolicy::default()) {
        check(&generator);
    }
    if let Ok(duration) = parse_duration(&text) {
        assert!(!duration.is_zero());
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
            "https://hooks.example.com/,http://127.0.0.1:",
        ),
        ("ROTOR_WEBHOOK_KEY_SECRET", "webhook-key"),
    ]
    .into_iter()
    .collect();
    let defaults = Defaults::from_lookup(|name| env.get(name).map(|v| v.to_string()))
        .expect("the fixed environment is valid");
    if let Ok(settings) = defaults.resolve("fuzz", &pairs) {
        check(&settings.generator);
        settings.field_generators.values().for_each(check);
        assert!(!settings.validation_window.is_zero());
        if let Some(webhook) = &settings.webhook {
            assert!(rotor_core::http::require_tls(&webhook.url).is_ok());
        }
        if let Some(fields) = &settings.fields {
            assert!(!fields.is_empty() && fields.iter().all(|f| !f.is_empty()));
        }
    }
});
