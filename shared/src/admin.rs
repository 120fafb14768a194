//! An admin secret (a database master, a Redis admin, a directory admin) that
//! acts on users on behalf of the secrets it serves, and the limits on whom it
//! acts on and where. One place for these rules, so that every function keeps
//! the same ones.
//!
//! Whoever writes a served secret is not the admin's owner. Consent
//! ([`crate::linked`]) lets that writer have the admin rotate *their* user; it
//! must not let them point the admin at something else:
//! * **where**: the served secret's server must be the admin's own, compared
//!   as host *and* port ([`Endpoint`]); otherwise a listener of the writer's on
//!   another port of the same host could answer for the server;
//! * **whom**: never the admin's own user, and only users the admin's owner
//!   allows in its [`MANAGES_TAG`] tag (any user when the tag is absent; each
//!   function also refuses its target's privileged accounts, which it can only
//!   see on the target).
//!
//! Refusals are `NotRetryable.NotManaged` or `NotRetryable.InvalidSettings`
//! and change nothing.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Error;
use crate::linked::{self, Deployer, Link, LinkedSecret};
use crate::store::{SecretDescription, SecretStore};

/// The field of a secret's value that names its admin secret, as AWS's
/// functions call it.
pub const ADMIN_FIELD: &str = "masterarn";

/// The deployer's variable that names the admin secret of every secret
/// without a [`ADMIN_FIELD`] (as AWS's functions call it).
pub const ADMIN_VAR: &str = "MASTER_SECRET_ARN";

/// Which admin secret a secret uses, and which setting named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminChoice<'a> {
    /// [`ADMIN_FIELD`] or [`ADMIN_VAR`], for messages.
    pub setting: &'static str,
    /// The admin secret, as the setting names it (an ARN or a name).
    pub id: &'a str,
}

/// The admin secret of a secret: its own [`ADMIN_FIELD`] (`named`), else the
/// deployer's [`ADMIN_VAR`] (`deployer`); `None` when neither names one.
/// Blank settings name nothing.
pub fn choose<'a>(named: Option<&'a str>, deployer: Option<&'a str>) -> Option<AdminChoice<'a>> {
    let blank = |id: &&str| id.trim().is_empty();
    match (
        named.filter(|id| !blank(id)),
        deployer.filter(|id| !blank(id)),
    ) {
        (Some(id), _) => Some(AdminChoice {
            setting: ADMIN_FIELD,
            id,
        }),
        (None, Some(id)) => Some(AdminChoice {
            setting: ADMIN_VAR,
            id,
        }),
        (None, None) => None,
    }
}

/// An admin secret that agreed to serve the secret being rotated (or that
/// the deployer named), with the limits its owner set.
pub struct Admin {
    /// Its ARN, name, tags and AWSCURRENT value.
    pub secret: LinkedSecret,
    /// The setting that named it ([`ADMIN_FIELD`] or [`ADMIN_VAR`]).
    pub setting: &'static str,
    /// The users its owner lets it manage ([`MANAGES_TAG`]).
    pub manages: Manages,
}

impl Admin {
    /// Refuses `user` unless this admin may act on it: not its own user
    /// (`admin_user`, from its value), and one its [`MANAGES_TAG`] admits.
    pub fn require_manages(
        &self,
        secret: &str,
        admin_user: &str,
        user: &str,
        names: Names,
    ) -> Result<(), Error> {
        require_manages(
            secret,
            &self.secret.arn,
            admin_user,
            &self.manages,
            user,
            names,
        )
    }

    /// Refuses a secret whose server (`user`) is not this admin's (`admin`).
    pub fn require_same_endpoint(
        &self,
        secret: &str,
        admin: &Endpoint,
        user: &Endpoint,
    ) -> Result<(), Error> {
        require_same_endpoint(secret, self.setting, admin, user)
    }
}

/// Reads the admin secret of the secret `pointing`: the one its value names
/// (`named`, its [`ADMIN_FIELD`]), else the deployer's (`deployer`,
/// [`ADMIN_VAR`]'s value); `None` when neither names one. Whoever writes the
/// secret writes `named`: the admin secret is read only after it agreed to
/// serve this secret (its `rotor:serves` tag) or the deployer's variable
/// names it ([`crate::linked::read`]).
pub async fn read<S: SecretStore>(
    store: &S,
    pointing: &SecretDescription,
    named: Option<&str>,
    deployer: Option<&str>,
) -> Result<Option<Admin>, Error> {
    let Some(choice) = choose(named, deployer) else {
        return Ok(None);
    };
    let allowed: Vec<String> = deployer
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .into_iter()
        .collect();
    let secret = linked::read(
        store,
        pointing,
        Link {
            setting: choice.setting,
            target: choice.id,
            deployer: Deployer {
                variable: ADMIN_VAR,
                secrets: &allowed,
            },
        },
    )
    .await?;
    let manages = Manages::from_tags(&secret.tags);
    Ok(Some(Admin {
        secret,
        setting: choice.setting,
        manages,
    }))
}

/// The tag on an admin secret that bounds the users it manages,
/// space-separated: exact user names, or name prefixes written with a final
/// `...` (`app_...` admits `app_orders` and `app_orders_clone`). Tag values
/// cannot hold `*`. Without the tag the admin manages any user but itself and
/// the target's privileged accounts.
pub const MANAGES_TAG: &str = "rotor:manages";

/// Where a target listens: a host and a port, compared as one (`==` is
/// [`Endpoint::is`]).
///
/// ```
/// use rotor_core::admin::{Endpoint, require_same_endpoint};
///
/// let admin = Endpoint::new("db.example.com", 5432);
/// assert!(admin.is(&Endpoint::new("DB.example.com.", 5432)));
/// // Same host, another port: another server, perhaps the secret writer's.
/// let elsewhere = Endpoint::new("db.example.com", 6543);
/// assert!(!admin.is(&elsewhere));
/// let refused = require_same_endpoint("team-a/app", "masterarn", &admin, &elsewhere).unwrap_err();
/// assert_eq!(refused.error_type(), "NotRetryable.InvalidSettings");
/// ```
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// A DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// Whether both name the same server: the same port, and hosts equal as
    /// [`same_host`] compares them.
    pub fn is(&self, other: &Endpoint) -> bool {
        self.port == other.port && same_host(&self.host, &other.host)
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Endpoint) -> bool {
        self.is(other)
    }
}

impl Eq for Endpoint {}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Whether two host names name the same host: DNS names compare without
/// regard to ASCII case or a final dot, IPv6 addresses with or without
/// brackets; anything else must be identical.
pub fn same_host(a: &str, b: &str) -> bool {
    let plain = |h: &str| -> String {
        let h = h.trim();
        let h = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
    };
    let (a, b) = (plain(a), plain(b));
    if a == b {
        return true;
    }
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Refuses a served secret whose server is not the admin's: the served
/// secret's `user` endpoint must be the admin's `admin` endpoint, host and
/// port. `setting` is the field that named the admin (`masterarn`, or the
/// deployer's variable), for the message.
pub fn require_same_endpoint(
    secret: &str,
    setting: &str,
    admin: &Endpoint,
    user: &Endpoint,
) -> Result<(), Error> {
    if admin.is(user) {
        return Ok(());
    }
    Err(Error::InvalidSettings {
        secret: secret.to_owned(),
        setting: setting.to_owned(),
        problem: format!(
            "the admin secret's server is {admin}, but this secret names {user}; an admin acts only for users of its own server, so host and port must both be the admin's. Nothing was changed"
        ),
    })
}

/// How user names compare on a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Names {
    /// Byte for byte (PostgreSQL, MySQL, MariaDB, Redis).
    CaseSensitive,
    /// Without regard to case (Active Directory).
    CaseInsensitive,
}

impl Names {
    fn eq(self, a: &str, b: &str) -> bool {
        match self {
            Names::CaseSensitive => a == b,
            Names::CaseInsensitive => a.to_lowercase() == b.to_lowercase(),
        }
    }

    fn starts_with(self, name: &str, prefix: &str) -> bool {
        match self {
            Names::CaseSensitive => name.starts_with(prefix),
            Names::CaseInsensitive => name.to_lowercase().starts_with(&prefix.to_lowercase()),
        }
    }
}

/// The users an admin's owner lets it manage: its [`MANAGES_TAG`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manages(Option<Vec<Pattern>>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Manages {
    /// Any user (no tag).
    pub const ANY: Manages = Manages(None);

    /// The admin secret's [`MANAGES_TAG`], from its tags. An empty tag
    /// manages nobody.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Manages {
        match tags.get(MANAGES_TAG) {
            None => Manages::ANY,
            Some(value) => Manages(Some(
                value
                    .split_whitespace()
                    .map(|entry| match entry.strip_suffix("...") {
                        Some(prefix) => Pattern::Prefix(prefix.to_owned()),
                        None => Pattern::Exact(entry.to_owned()),
                    })
                    .collect(),
            )),
        }
    }

    /// Whether the tag names `user` itself (an exact entry, not a prefix):
    /// how an owner lets its admin act on an account the function would
    /// otherwise refuse as privileged. `false` without the tag.
    pub fn names_exactly(&self, user: &str, names: Names) -> bool {
        self.0.as_ref().is_some_and(|patterns| {
            patterns
                .iter()
                .any(|p| matches!(p, Pattern::Exact(name) if names.eq(user, name)))
        })
    }

    /// Whether `user` is one of them.
    pub fn admits(&self, user: &str, names: Names) -> bool {
        match &self.0 {
            None => true,
            Some(patterns) => patterns.iter().any(|p| match p {
                Pattern::Exact(name) => names.eq(user, name),
                Pattern::Prefix(prefix) => names.starts_with(user, prefix),
            }),
        }
    }
}

/// An admin about to act on `user` for the secret `secret`: refuses the
/// admin's own user (`admin_user`) and users outside its owner's
/// [`MANAGES_TAG`]. `admin_arn` names the admin secret in messages.
///
/// ```
/// use std::collections::BTreeMap;
///
/// use rotor_core::admin::{MANAGES_TAG, Manages, Names, require_manages};
///
/// let tags = BTreeMap::from([(MANAGES_TAG.to_owned(), "app_... reporting".to_owned())]);
/// let manages = Manages::from_tags(&tags);
/// let check = |user| require_manages("team-a/app", "db/master", "admin", &manages, user, Names::CaseSensitive);
///
/// assert!(check("app_orders").is_ok());
/// assert!(check("reporting").is_ok());
/// // Not listed by the admin's owner, or the admin itself: refused, nothing changed.
/// assert_eq!(check("billing").unwrap_err().error_type(), "NotRetryable.NotManaged");
/// assert_eq!(check("admin").unwrap_err().error_type(), "NotRetryable.NotManaged");
/// ```
pub fn require_manages(
    secret: &str,
    admin_arn: &str,
    admin_user: &str,
    manages: &Manages,
    user: &str,
    names: Names,
) -> Result<(), Error> {
    if names.eq(admin_user, user) {
        return Err(not_managed(
            secret,
            admin_arn,
            user,
            "it is the admin's own user; an admin never changes its own credentials for another secret. Rotate the admin secret with its own rotation",
        ));
    }
    if !manages.admits(user, names) {
        return Err(not_managed(
            secret,
            admin_arn,
            user,
            &format!(
                "the admin secret's {MANAGES_TAG} tag does not list it; the admin's owner adds the user's name (or a prefix ending in ...) to that tag"
            ),
        ));
    }
    Ok(())
}

/// The refusal for an admin asked to act on `user`, with `reason` (which
/// names the fix). Functions use it for the privileged accounts they find.
pub fn not_managed(secret: &str, admin_arn: &str, user: &str, reason: &str) -> Error {
    Error::NotManaged {
        secret: secret.to_owned(),
        admin: admin_arn.to_owned(),
        user: user.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_own_field_comes_before_the_deployers_variable() {
        assert_eq!(
            choose(Some("db/master"), Some("other")),
            Some(AdminChoice {
                setting: ADMIN_FIELD,
                id: "db/master"
            })
        );
        assert_eq!(
            choose(Some("  "), Some("other")),
            Some(AdminChoice {
                setting: ADMIN_VAR,
                id: "other"
            })
        );
        assert_eq!(choose(None, Some("")), None);
    }

    #[test]
    fn endpoints_are_host_and_port() {
        let admin = Endpoint::new("db.example.com", 5432);
        assert!(admin.is(&Endpoint::new("DB.Example.com.", 5432)));
        assert!(!admin.is(&Endpoint::new("db.example.com", 5433)));
        assert!(!admin.is(&Endpoint::new("db.example.org", 5432)));
        assert!(Endpoint::new("::1", 6379).is(&Endpoint::new("[0:0::1]", 6379)));
        assert!(!Endpoint::new("127.0.0.1", 6379).is(&Endpoint::new("127.0.0.2", 6379)));
        assert_eq!(Endpoint::new("::1", 1).to_string(), "[::1]:1");
        let refused = require_same_endpoint(
            "s",
            "masterarn",
            &admin,
            &Endpoint::new("db.example.com", 1),
        )
        .unwrap_err();
        assert_eq!(refused.error_type(), "NotRetryable.InvalidSettings");
        assert!(
            refused.to_string().contains("db.example.com:1"),
            "{refused}"
        );
    }

    #[test]
    fn the_tag_lists_names_and_prefixes() {
        let tags = |v: &str| BTreeMap::from([(MANAGES_TAG.to_owned(), v.to_owned())]);
        let m = Manages::from_tags(&tags("orders app_..."));
        for ok in ["orders", "app_", "app_billing", "app_billing_clone"] {
            assert!(m.admits(ok, Names::CaseSensitive), "{ok}");
        }
        for no in ["order", "orders_clone", "App_x", "ap", "admin"] {
            assert!(!m.admits(no, Names::CaseSensitive), "{no}");
        }
        assert!(m.admits("App_x", Names::CaseInsensitive));
        assert!(!Manages::from_tags(&tags("  ")).admits("orders", Names::CaseSensitive));
        assert!(Manages::from_tags(&BTreeMap::new()).admits("anyone", Names::CaseSensitive));
        assert!(m.names_exactly("Orders", Names::CaseInsensitive));
        assert!(!m.names_exactly("app_x", Names::CaseSensitive));
        assert!(!Manages::ANY.names_exactly("orders", Names::CaseSensitive));
    }

    #[test]
    fn an_admin_never_manages_itself() {
        let own = require_manages(
            "s",
            "m",
            "admin",
            &Manages::ANY,
            "admin",
            Names::CaseSensitive,
        )
        .unwrap_err();
        assert_eq!(own.error_type(), "NotRetryable.NotManaged");
        assert!(own.to_string().contains("own user"), "{own}");
        assert!(
            require_manages(
                "s",
                "m",
                "Admin",
                &Manages::ANY,
                "admin",
                Names::CaseInsensitive
            )
            .is_err()
        );
        assert!(
            require_manages(
                "s",
                "m",
                "Admin",
                &Manages::ANY,
                "admin",
                Names::CaseSensitive
            )
            .is_ok()
        );
        let tags = BTreeMap::from([(MANAGES_TAG.to_owned(), "app_...".to_owned())]);
        let outside = require_manages(
            "s",
            "m",
            "admin",
            &Manages::from_tags(&tags),
            "billing",
            Names::CaseSensitive,
        )
        .unwrap_err();
        assert!(outside.to_string().contains(MANAGES_TAG), "{outside}");
    }
}
