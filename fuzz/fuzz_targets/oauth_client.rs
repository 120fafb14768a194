//! `Client::parse` on any text: never panics; an accepted client only ever
//! talks TLS (or loopback), and written back with a new secret parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_rotation::client::Client;
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(client) = Client::parse(&SecretString::from(text.as_ref())) else {
        return;
    };
    assert!(rotor_core::http::require_tls(&client.token_endpoint).is_ok());
    assert!(!client.client_id.is_empty());
    let _ = client.field("realm");
    let _ = client.require("application_id");
    let rewritten = client.with_secret(&SecretString::from("new-secret"), &[], None);
    let again = Client::parse(&rewritten).expect("a parsed client, written back, parses again");
    assert_eq!(
        (again.provider, &again.client_id, &again.token_endpoint),
        (client.provider, &client.client_id, &client.token_endpoint)
    );
});
