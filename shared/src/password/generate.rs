//! Drawing a password under a policy, or random bytes as text, from the
//! operating system's CSPRNG (and nothing else). What is drawn leaves only
//! inside a [`SecretString`]; scratch buffers are zeroed.

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use rand::{Rng, TryRngCore};
use secrecy::SecretString;

use super::{PasswordPolicy, PolicyError};

impl PasswordPolicy {
    /// Generates a password (validates first).
    pub fn generate(&self) -> Result<SecretString, PolicyError> {
        self.generate_with(OsRng)
    }

    /// Generation proper, over any fallible RNG so tests can make it fail.
    pub(super) fn generate_with<R: TryRngCore>(
        &self,
        mut source: R,
    ) -> Result<SecretString, PolicyError>
    where
        R::Error: std::fmt::Display,
    {
        self.validate()?;
        // `unwrap_err` panics if the source ever fails. An OS source that
        // works once keeps working (getrandom fails only when unavailable),
        // so one fallible draw up front turns that case into an error.
        source
            .try_next_u32()
            .map_err(|e| PolicyError::RandomSource {
                reason: e.to_string(),
            })?;
        let mut rng = source.unwrap_err();

        let classes = self.classes();
        let alphabet: Vec<char> = classes
            .iter()
            .flat_map(|c| c.chars.iter().copied())
            .collect();
        // `random_range` is unbiased; validate() guarantees that every range
        // below is non-empty, so none of them can panic.
        let mut pick = |chars: &[char]| chars[rng.random_range(..chars.len())];
        let mut scratch: Vec<char> = Vec::with_capacity(self.length);
        if self.require_each_included_type {
            scratch.extend(
                classes
                    .iter()
                    .filter(|c| c.required())
                    .map(|c| pick(&c.chars)),
            );
        }
        while scratch.len() < self.length {
            scratch.push(pick(&alphabet));
        }
        // Fisher-Yates, so the required characters land anywhere.
        scratch.shuffle(&mut rng);

        // Every character is ASCII, so `length` bytes is exact and the String
        // never reallocates (which would leave a stray copy in freed memory),
        // nor does SecretString's `into_boxed_str`.
        let mut password = String::with_capacity(self.length);
        password.extend(scratch.iter());
        scratch.fill('\0');
        // Keeps the zeroing from being optimised away as a dead store.
        std::hint::black_box(&scratch);
        Ok(SecretString::from(password))
    }
}

/// `bytes` random bytes from the operating system's CSPRNG, written as text by
/// `encode` (hex, base64...); the raw bytes are zeroed before they are dropped.
pub fn random_text(
    bytes: usize,
    encode: impl FnOnce(&[u8]) -> String,
) -> Result<SecretString, PolicyError> {
    let mut raw = vec![0u8; bytes];
    OsRng
        .try_fill_bytes(&mut raw)
        .map_err(|e| PolicyError::RandomSource {
            reason: e.to_string(),
        })?;
    let text = encode(&raw);
    raw.fill(0);
    Ok(SecretString::from(text))
}
