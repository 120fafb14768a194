//! `DbSecret::parse` on any text, then `alternate_username` on the user it
//! read, at every engine's limit: never panics. An accepted secret written back
//! with new credentials must parse again to the same target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_rotation::secret::{DbSecret, alternate_username, base_username};
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
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
});
