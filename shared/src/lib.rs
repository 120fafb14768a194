//! rotor's rotation core: everything the rotation functions share.
//!
//! Secrets Manager drives a rotation in four steps (createSecret, setSecret,
//! testSecret, finishSecret). This crate owns the parts that must be right for
//! every target: parsing the event ([`event`]), the staging-label rules
//! ([`labels`]), the secret store port and its adapters ([`store`]), the step
//! driver ([`rotation`]), the rule for reading a secret that another secret
//! points at ([`linked`]) and the limits on an admin secret that acts for
//! others ([`admin`]), password generation ([`password`]), errors ([`error`]),
//! the Lambda edge ([`lambda`]) and the metrics it prints after every step
//! ([`metrics`]). It knows no database or identity provider.
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
//!
//! A rotation function is a [`Rotator`] (what happens at the target) given to
//! a [`Driver`] (the four steps and everything that keeps a working credential
//! stored), served by [`lambda::serve`]. The crate's README shows a whole
//! function, and `examples/key_file_rotation.rs` a runnable one.
//!
//! # A rotation, step by step
//!
//! The driver runs each step the event names; the rotator sees the step
//! through a [`StepContext`] (the event, the secret, its current and pending
//! values, each read at most once). Here a target that keeps every password
//! it was given, in the in-memory store (the `testing` feature):
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
//! use rotor_core::password::PasswordPolicy;
//! use rotor_core::store::{RotationService, VersionSelector};
//! use rotor_core::{
//!     Driver, Error, ExposeSecret, MemoryStore, Outcome, RotationEvent, Rotator, SecretStore,
//!     SecretString, Step, StepContext,
//! };
//!
//! /// The passwords a (toy) server accepts; its clones share them.
//! #[derive(Clone, Default)]
//! struct Server(Arc<Mutex<Vec<String>>>);
//!
//! impl Server {
//!     fn accepts(&self, password: &SecretString) -> bool {
//!         self.0.lock().unwrap().iter().any(|p| p == password.expose_secret())
//!     }
//! }
//!
//! impl Rotator for Server {
//!     type Secret = rotor_core::value::Opaque;
//!
//!     async fn create_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<SecretString, Error> {
//!         let secret = ctx.secret_arn().to_owned();
//!         PasswordPolicy::default().generate().map_err(|source| Error::PasswordPolicy { secret, source })
//!     }
//!     async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
//!         let pending = &ctx.pending().await?.value;
//!         if !self.accepts(pending) {
//!             self.0.lock().unwrap().push(pending.expose_secret().to_owned());
//!         }
//!         Ok(())
//!     }
//!     async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
//!         assert!(self.accepts(&ctx.pending().await?.value));
//!         assert!(self.accepts(&ctx.current().await?.value), "the old password works until finishSecret");
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let store = MemoryStore::new();
//! let arn = store.create_secret("db/app", &SecretString::from("first"), &[]).await.unwrap();
//! store.begin_rotation(&arn, "v2").await.unwrap(); // as RotateSecret does
//!
//! let server = Server::default();
//! server.0.lock().unwrap().push("first".into());
//! let driver = Driver::new(&store, server.clone());
//! for step in Step::ALL {
//!     let event = RotationEvent { secret_id: arn.clone(), version_id: "v2".into(), step, rotation_token: None };
//!     assert_eq!(driver.run(&event).await?.outcome, Outcome::Done);
//!     // Secrets Manager may send any step again: each converges. A second
//!     // createSecret keeps the value the first stored.
//!     let again = driver.run(&event).await?.outcome;
//!     if step == Step::CreateSecret {
//!         assert_eq!(again, Outcome::PendingKept);
//!     }
//! }
//!
//! let versions = store.describe(&arn).await.unwrap().versions;
//! assert_eq!((versions.current(), versions.previous().is_some()), (Some("v2"), true));
//! let current = store.get_value(&arn, VersionSelector::Label(AWSCURRENT)).await.unwrap().unwrap();
//! let previous = store.get_value(&arn, VersionSelector::Label(AWSPREVIOUS)).await.unwrap().unwrap();
//! assert!(server.accepts(&current.value) && previous.value.expose_secret() == "first");
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! * `http`: the `http` module, one HTTPS client per process with rotor's TLS
//!   and URL rules, for functions that call web APIs, and the webhook
//!   signature (`signature`).
//! * `after`: after-rotation actions at finishSecret ([`after`]: ECS, SNS,
//!   signed webhooks), which [`lambda::serve`] sets up from the environment.
//! * `testing`: for tests, local runners and emulators, never for a deployed
//!   function: the in-memory store `MemoryStore`, the service's side of a
//!   rotation (`store::RotationService`) and the contract suites that prove a
//!   store or a rotator (`testing`).

#![deny(missing_docs)]

pub mod admin;
pub mod after;
pub mod arn;
pub mod error;
pub mod event;
#[cfg(feature = "http")]
pub mod http;
pub mod labels;
pub mod lambda;
pub mod linked;
pub mod metrics;
pub mod password;
pub mod progress;
pub mod retry;
pub mod rotation;
pub mod sdk;
pub mod settings;
#[cfg(feature = "http")]
pub mod signature;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
pub mod value;

pub use error::{Cause, Error, TargetError, TargetKind};
pub use event::{RotationEvent, Step};
pub use rotation::{Driver, IssuedValues, Outcome, Rotator, StepContext, StepReport};
pub use secrecy::{ExposeSecret, SecretString};
#[cfg(feature = "testing")]
pub use store::memory::MemoryStore;
pub use store::{SecretStore, aws::AwsStore};

// The README's code blocks run as doc tests, so the minimal function it shows
// keeps compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub use value::SecretValue;
