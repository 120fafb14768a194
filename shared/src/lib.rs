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
//! It also owns the target toolkit every function builds on, so that each
//! function says only what its secret looks like and how it talks to its
//! target: typed reads of a version ([`value`], through [`StepContext`]),
//! retries that respect the step's deadline ([`retry`]), the trusted
//! certificates and TLS configuration (`tls`, feature `tls`), HTTPS with
//! rotor's rules (`http`, feature `http`), and settings several functions
//! share ([`settings`]).
//!
//! It must never put a secret value in a log line, an error message or Debug
//! output: values live in [`secrecy::SecretString`] from the moment they are read.

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
pub mod retry;
pub mod rotation;
pub mod settings;
pub mod store;
#[cfg(feature = "tls")]
pub mod tls;
pub mod value;

pub use error::{Cause, Error, TargetError, TargetKind};
pub use event::{RotationEvent, Step};
pub use rotation::{Driver, IssuedValues, Outcome, Rotator, StepContext, StepReport};
pub use secrecy::{ExposeSecret, SecretString};
pub use store::{SecretStore, aws::AwsStore, memory::MemoryStore};
pub use value::SecretValue;
