//! rotor's rotation core: everything the rotation functions share.
//!
//! Secrets Manager drives a rotation in four steps (createSecret, setSecret,
//! testSecret, finishSecret). This crate owns the parts that must be right for
//! every target: parsing the event ([`event`]), the staging-label rules
//! ([`labels`]), the secret store port and its adapters ([`store`]), the step
//! driver ([`rotation`]), the rule for reading a secret that another secret
//! points at ([`linked`]) and the limits on an admin secret that acts for
//! others ([`admin`]), password generation ([`password`]), errors ([`error`])
//! and the Lambda edge ([`lambda`]). It knows no database or identity provider.
//!
//! It must never put a secret value in a log line, an error message or Debug
//! output: values live in [`secrecy::SecretString`] from the moment they are read.
//!
//! # Features
//! * `http`: the `http` module, one HTTPS client per process with rotor's TLS
//!   and URL rules, for functions that call web APIs.
//! * `testing`: for tests, local runners and emulators, never for a deployed
//!   function: the in-memory store `MemoryStore`, the service's side of a
//!   rotation (`store::RotationService`) and the contract suites that prove a
//!   store or a rotator (`testing`).

#![deny(missing_docs)]

pub mod admin;
pub mod error;
pub mod event;
#[cfg(feature = "http")]
pub mod http;
pub mod labels;
pub mod lambda;
pub mod linked;
pub mod password;
pub mod progress;
pub mod rotation;
pub mod settings;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Cause, Error, System, TargetError};
pub use event::{RotationEvent, Step};
pub use rotation::{Driver, Outcome, Rotator, StepContext, StepReport};
pub use secrecy::{ExposeSecret, SecretString};
#[cfg(feature = "testing")]
pub use store::memory::MemoryStore;
pub use store::{SecretStore, aws::AwsStore};
