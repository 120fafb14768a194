//! The `rotor` CLI: what plays AWS's part on a developer's machine. A minimal
//! Lambda Runtime API ([`runtime_api`]) to run a function binary as a warm local
//! process ([`function`]), and one module per subcommand: Secrets Manager's part
//! of a rotation ([`rotate`]), and, with the `testbed` feature, the demo that the
//! README's first command runs (`demo`) and a benchmark of a function on this
//! machine (`bench`). The throwaway servers those two start live in the
//! `rotor-testbed` crate.

#[cfg(feature = "testbed")]
pub mod bench;
pub mod clients;
pub mod commands;
#[cfg(feature = "testbed")]
pub mod demo;
pub mod doctor;
pub mod endpoint;
pub mod function;
#[cfg(feature = "testbed")]
pub mod iam_bed;
pub mod rotate;
pub mod runtime_api;
pub mod status;
