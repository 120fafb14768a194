//! rotor's test bed: throwaway servers on 127.0.0.1, started by the demo, the
//! benchmarks and the tests, that stop when their handle is dropped or this
//! process exits.
//!
//! | module | what it is for |
//! | --- | --- |
//! | [`loopback`] | the HTTP/1 server set-up every local server here (and the CLI's Runtime API) shares |
//! | [`moto`] | a moto server: Secrets Manager, and SDK clients and function environments pointed at it |
//! | `db` | PostgreSQL 15 and MariaDB 10.11 with TLS from a test CA |
//! | `oauth_server` | glewlwyd, a real OAuth 2 server with RFC 7591/7592 registration |
//! | `provider_emulator` | Keycloak, Okta, Entra ID, Auth0 and RFC 7592 client-secret APIs |
//! | `webhook_receiver` | the receiving end of generic-rotation's webhooks |
//! | `elasticache` | the ElastiCache user API (DescribeUsers, ModifyUser) over a real Redis's ACL users |
//! | `redis_server` | Redis 7 with ACL users, an ACL file and TLS from a test CA |
//! | `samba_dc` | a Samba Active Directory domain controller (LDAP, LDAPS, Kerberos) |
//! | `openldap` | OpenLDAP's slapd with StartTLS and LDAPS from a test CA |
//! | `directory_service` | the Directory Service API (DescribeDirectories, ResetUserPassword) over a real Samba DC |
//! | `sm_proxy` | an HTTP proxy in front of moto that logs calls and injects faults |
//! | `fault_proxy` | a TCP proxy that cuts, stalls or crashes a connection to a target |
//! | `ca`, `process` | the test CAs, and the wrapper that ties a server's life to this process |
//!
//! Everything but `loopback` and `moto` needs the default feature `bed`.

pub mod loopback;
pub mod moto;

#[cfg(feature = "bed")]
pub mod ca;
#[cfg(feature = "bed")]
pub mod db;
#[cfg(feature = "bed")]
pub mod directory_service;
#[cfg(feature = "bed")]
pub mod elasticache;
#[cfg(feature = "bed")]
pub mod fault_proxy;
#[cfg(feature = "bed")]
pub mod oauth_server;
#[cfg(feature = "bed")]
pub mod openldap;
#[cfg(feature = "bed")]
pub(crate) mod process;
#[cfg(feature = "bed")]
pub mod provider_emulator;
#[cfg(feature = "bed")]
pub mod redis_server;
#[cfg(feature = "bed")]
pub mod samba_dc;
#[cfg(feature = "bed")]
pub mod sm_proxy;
#[cfg(feature = "bed")]
pub mod webhook_receiver;
