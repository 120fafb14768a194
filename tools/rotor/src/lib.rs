//! The local side of rotor: everything that plays AWS's part on a developer's
//! machine. A minimal Lambda Runtime API ([`runtime_api`]) to run a function
//! binary as a warm local process ([`function`]), Secrets Manager's part of a
//! rotation ([`rotate`]), a throwaway moto server ([`moto`]), a webhook receiver
//! for generic-rotation's registration flow ([`webhook_receiver`]) and the demo
//! that the README's first command runs ([`demo`]), and a benchmark of a function
//! on this machine ([`bench`]).

pub mod bench;
pub mod clients;
pub mod db;
pub mod demo;
pub mod doctor;
pub mod fault_proxy;
pub mod function;
mod local_server;
pub mod moto;
pub mod oauth_server;
pub mod provider_emulator;
pub mod redis_server;
pub mod rotate;
pub mod runtime_api;
pub mod sm_proxy;
pub mod status;
pub mod webhook_receiver;
