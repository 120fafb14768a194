//! rotor's integration tests, against real components started here: moto's
//! Secrets Manager, the real function binaries over the Lambda Runtime API, and
//! a local webhook receiver. Build the binaries first (`cargo build --workspace`);
//! `scripts/test.sh` does.

mod after;
mod contract;
mod crash;
mod demo;
mod doctor;
mod faults;
mod generic;
mod hostile;
mod iam;
mod iam_faults;
mod issuer;
mod keypairs;
mod ldap;
mod ldap_cli;
mod ldap_faults;
mod library;
mod metrics;
mod oauth;
mod oauth_providers;
mod races;
mod rds;
mod redis;
mod redis_elasticache;
mod redis_managed;
mod runner;
mod scheduler;
mod scheduler_windows;
mod trace_logs;
mod untrusted_writer;
