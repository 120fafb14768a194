//! A rotation function of your own on rotor-core: it rotates API keys that a
//! service accepts when its key file lists them.
//!
//! The target is a file (on a volume the function and the service share) in
//! which each line is a secret's name and the SHA-256 digest of a key the
//! service accepts for it. Keys are never written there, only their digests.
//! A real service would take keys through its API; a file keeps the example
//! short, and it expects one rotation at a time (two function instances
//! rewriting the file at once could lose a line).
//!
//! The driver does what every function needs (the service's checks, storing
//! the new key as AWSPENDING once, promoting it); the rotator says only how
//! the key file changes:
//! * createSecret: a new key of 40 letters and digits;
//! * setSecret: the file lists the pending key too, so both keys work;
//! * testSecret: the file lists the pending key, as the service checks it;
//! * finishSecret, once the key is AWSCURRENT: the file drops the secret's
//!   keys that no label holds any more, so AWSPREVIOUS keeps working until the
//!   next rotation.
//!
//! Run it:
//! * with no argument, it serves rotation steps over the Lambda Runtime API as
//!   a deployed function does (`KEY_FILE` names the file);
//! * with `check`, against an emulator that `AWS_ENDPOINT_URL_SECRETS_MANAGER`
//!   names (moto), it runs rotor-core's store contract on that endpoint and
//!   the rotator contract on this rotator, with a key file of its own, and
//!   exits non-zero if a check fails.
//!
//! rotor's test command runs both (tests/example.rs).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::password::PasswordPolicy;
use rotor_core::settings::EnvSettings;
use rotor_core::testing::rotator_contract::{self, NewSecret, Subject};
use rotor_core::testing::{store_contract, unique};
use rotor_core::{
    AwsStore, Cause, Driver, Error, ExposeSecret, Rotator, SecretStore, SecretString, StepContext,
    TargetError, TargetKind, lambda,
};
use sha2::{Digest, Sha256};

/// The variable that names the key file.
const KEY_FILE_VAR: &str = "KEY_FILE";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    match std::env::args().nth(1).as_deref() {
        None => {
            lambda::init_logging();
            let store = AwsStore::from_env().await;
            lambda::serve(Driver::new(store, KeyFileRotator::from_env())).await
        }
        Some("check") => check().await,
        Some(other) => Err(format!(
            "unknown mode {other:?}: run without an argument to serve rotation steps, or with `check` against an emulator"
        )
        .into()),
    }
}

/// Rotates keys listed in a key file.
struct KeyFileRotator {
    /// The key file, or why the environment does not name one (every step
    /// then fails saying so, rather than the process exiting).
    file: EnvSettings<PathBuf>,
}

impl KeyFileRotator {
    fn new(file: PathBuf) -> Self {
        KeyFileRotator {
            file: EnvSettings::ready(file),
        }
    }

    fn from_env() -> Self {
        let file = match std::env::var_os(KEY_FILE_VAR) {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(format!(
                "{KEY_FILE_VAR} is not set; set it to the path of the service's key file"
            )),
        };
        KeyFileRotator {
            file: EnvSettings::new(file),
        }
    }
}

impl Rotator for KeyFileRotator {
    type Secret = rotor_core::value::Opaque;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        new_key().map_err(|source| Error::PasswordPolicy {
            secret: ctx.secret_arn().to_owned(),
            source,
        })
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let path = self.file.get(ctx.secret_arn())?;
        let pending = digest(&ctx.pending().await?.value);
        let mut file = KeyFile::read(path)?;
        // Idempotent: a key already listed is not listed twice.
        if !file.lists(&ctx.secret.name, &pending) {
            file.entries.push((ctx.secret.name.clone(), pending));
            file.write()?;
        }
        Ok(())
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let path = self.file.get(ctx.secret_arn())?;
        let pending = digest(&ctx.pending().await?.value);
        if KeyFile::read(path)?.lists(&ctx.secret.name, &pending) {
            Ok(())
        } else {
            Err(TargetError::new(
                Cause::Mismatch,
                "the key file does not list the pending key; setSecret must run first",
            )
            .at(TargetKind::Service, path.display().to_string()))
        }
    }

    /// Drops the secret's keys that no label holds any more. The labels have
    /// moved: read them afresh from the store, not from the step's cache.
    async fn after_finish<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let path = self.file.get(ctx.secret_arn())?;
        let mut kept = Vec::new();
        for label in [AWSCURRENT, AWSPREVIOUS, AWSPENDING] {
            if let Some(stored) = ctx.read_label(label).await? {
                kept.push(digest(&stored.value));
            }
        }
        let mut file = KeyFile::read(path)?;
        let before = file.entries.len();
        file.entries
            .retain(|(name, key)| *name != ctx.secret.name || kept.contains(key));
        if file.entries.len() != before {
            file.write()?;
        }
        Ok(())
    }
}

/// A new key: 40 letters and digits from the OS's random source.
fn new_key() -> Result<SecretString, rotor_core::password::PolicyError> {
    PasswordPolicy {
        length: 40,
        exclude_punctuation: true,
        ..PasswordPolicy::default()
    }
    .generate()
}

/// What the key file holds for a key: its SHA-256 digest, in hex.
fn digest(key: &SecretString) -> String {
    hex::encode(Sha256::digest(key.expose_secret().as_bytes()))
}

/// The key file's lines: a secret's name and a key's digest.
struct KeyFile<'a> {
    path: &'a Path,
    entries: Vec<(String, String)>,
}

impl<'a> KeyFile<'a> {
    /// The file's entries; none when it does not exist yet.
    fn read(path: &'a Path) -> Result<Self, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error(path, "read", &e)),
        };
        let entries = text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, key)| (name.to_owned(), key.to_owned()))
            .collect();
        Ok(KeyFile { path, entries })
    }

    fn lists(&self, secret: &str, key: &str) -> bool {
        self.entries.iter().any(|(n, k)| n == secret && k == key)
    }

    /// Replaces the file as a whole (a new file renamed over it), so that a
    /// crash mid-write leaves the old file, never half of the new one.
    fn write(&self) -> Result<(), Error> {
        let text: String = self
            .entries
            .iter()
            .map(|(name, key)| format!("{name} {key}\n"))
            .collect();
        let partial = self.path.with_extension("partial");
        std::fs::write(&partial, text).map_err(|e| io_error(self.path, "write", &e))?;
        std::fs::rename(&partial, self.path).map_err(|e| io_error(self.path, "replace", &e))
    }
}

/// A failure at the key file, its cause from the I/O error's kind.
fn io_error(path: &Path, doing: &str, error: &std::io::Error) -> Error {
    let cause = match error.kind() {
        ErrorKind::PermissionDenied => Cause::Permission,
        ErrorKind::NotFound => Cause::NotFound,
        _ => Cause::Unavailable,
    };
    TargetError::new(cause, format!("could not {doing} the key file: {error}"))
        .at(TargetKind::Service, path.display().to_string())
}

/// `check`: rotor-core's contract suites against the emulator the
/// environment names.
async fn check() -> Result<(), lambda_runtime::Error> {
    // Staging a rotation points the secret at a function that exists nowhere:
    // never against AWS.
    if std::env::var_os("AWS_ENDPOINT_URL_SECRETS_MANAGER").is_none_or(|v| v.is_empty()) {
        return Err(
            "check runs against an emulator only: set AWS_ENDPOINT_URL_SECRETS_MANAGER to its endpoint (moto's)"
                .into(),
        );
    }
    let store = AwsStore::from_env().await;
    let dir = std::env::temp_dir().join(unique("key-file-rotation"));
    std::fs::create_dir_all(&dir)?;
    let subject = KeyFileTarget {
        file: dir.join("keys"),
    };

    let mut failed = 0;
    let mut report =
        |suite: &str, name: &str, result: Result<(), rotor_core::testing::Failure>| match result {
            Ok(()) => println!("ok   {suite}::{name}"),
            Err(failure) => {
                failed += 1;
                println!("FAIL {suite}::{failure}");
            }
        };
    // moto differs from AWS in one documented place; the suite knows which.
    for check in store_contract::Check::ALL {
        let result = check.run(&store, store_contract::Reference::Moto).await;
        report("store_contract", check.name(), result);
    }
    for check in rotator_contract::Check::ALL {
        let result = check.run(&store, &subject).await;
        report("rotator_contract", check.name(), result);
    }
    std::fs::remove_dir_all(&dir)?;
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} checks failed").into())
    }
}

/// The key file as the rotator contract sees it.
struct KeyFileTarget {
    file: PathBuf,
}

impl Subject for KeyFileTarget {
    type Rotator = KeyFileRotator;

    fn rotator(&self) -> KeyFileRotator {
        KeyFileRotator::new(self.file.clone())
    }

    /// A secret whose first key the file already lists.
    async fn new_secret(&self) -> NewSecret {
        let name = unique("key-file-rotation");
        let key = new_key().expect("the OS's random source");
        let mut file = KeyFile::read(&self.file).expect("the check's key file");
        file.entries.push((name.clone(), digest(&key)));
        file.write().expect("the check's key file");
        NewSecret::new(name, key)
    }

    async fn accepts(&self, secret: &str, key: &SecretString) -> bool {
        KeyFile::read(&self.file).is_ok_and(|file| file.lists(secret, &digest(key)))
    }
}
