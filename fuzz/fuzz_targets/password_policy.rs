//! `PasswordPolicy::generate` on a policy made from the bytes: length 1..=512
//! from the first two, the six flags from the third, the characters to exclude
//! from the rest (UTF-8, lossily). It must fail exactly when the policy is
//! impossible, and otherwise produce a password that obeys it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor_core::ExposeSecret;
use rotor_core::password::{PUNCTUATION, PasswordPolicy};

fuzz_target!(|data: &[u8]| {
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
});
