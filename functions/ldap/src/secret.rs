//! The two secret shapes ldap-rotation reads, parsed once.
//!
//! * A self-managed directory's account ([`DirectorySecret`]): `directory`
//!   (`ad` or `ldap`), `url` (one URL, or a list: the first is where
//!   passwords change, every one is tested), `username`, `password`, and
//!   optional `dn`, `ssl` and `masterarn`.
//! * An AWS Managed Microsoft AD account ([`ManagedSecret`]), in the shape
//!   AWS's Active Directory rotation function reads, unchanged:
//!   `awsSeamlessDomainDirectoryId`, `awsSeamlessDomainUsername`,
//!   `awsSeamlessDomainPassword`, under other names where the deployer's
//!   `DICT_KEY_*` variables say so.
//!
//! Every other field is kept as it is. Parsing names the field at fault and
//! the fix, never a value.

use std::fmt;
use std::sync::OnceLock;

use rotor_core::admin::Endpoint;
use rotor_core::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// What is wrong with a secret's value: names the field and the fix, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<&str> for Invalid {
    fn from(problem: &str) -> Self {
        Invalid(problem.to_owned())
    }
}

/// The kind of directory server, which decides how a password changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directory {
    /// Active Directory (Windows, Samba): `unicodePwd`.
    ActiveDirectory,
    /// An LDAP server with RFC 3062's password modify operation (OpenLDAP).
    Ldap,
}

impl fmt::Display for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Directory::ActiveDirectory => "Active Directory",
            Directory::Ldap => "LDAP",
        })
    }
}

/// How a connection is protected. There is no "try TLS, then plaintext".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before anything else is sent.
    StartTls,
    /// `ldap://` without TLS, only because the secret says `"ssl": false`.
    Plaintext,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Ldaps => "over LDAPS",
            Transport::StartTls => "with StartTLS",
            Transport::Plaintext => "in plaintext",
        })
    }
}

/// One server of the directory, parsed from an `ldap://` or `ldaps://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Host and port.
    pub endpoint: Endpoint,
    /// How the connection is protected.
    pub transport: Transport,
}

impl Server {
    /// The URL the LDAP client connects to (`ldaps://` or `ldap://`).
    pub fn url(&self) -> String {
        let scheme = match self.transport {
            Transport::Ldaps => "ldaps",
            Transport::StartTls | Transport::Plaintext => "ldap",
        };
        format!("{scheme}://{}", self.endpoint)
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.endpoint, self.transport)
    }
}

/// Parses one `url` entry; `plaintext` is the secret's `"ssl": false`.
pub fn parse_url(text: &str, plaintext: bool) -> Result<Server, Invalid> {
    let bad = |why: &str| {
        Invalid(format!(
            "field url {why}; write ldaps://host:636, or ldap://host:389 (StartTLS)"
        ))
    };
    let url = url::Url::parse(text.trim()).map_err(|_| bad("is not a URL"))?;
    let (transport, default_port) = match (url.scheme(), plaintext) {
        ("ldaps", false) => (Transport::Ldaps, 636),
        ("ldaps", true) => {
            return Err(Invalid(
                "says ldaps:// in field url but \"ssl\": false; remove ssl, or use ldap:// for plaintext"
                    .into(),
            ));
        }
        ("ldap", false) => (Transport::StartTls, 389),
        ("ldap", true) => (Transport::Plaintext, 389),
        _ => return Err(bad("must start with ldaps:// or ldap://")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold a user or password"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must name a server only (no base DN, attributes or filter)",
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(_)) => return Err(bad("names an IPv6 address; use a host name")),
        _ => return Err(bad("has no host")),
    };
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err(bad("has port 0"));
    }
    Ok(Server {
        endpoint: Endpoint::new(host, port),
        transport,
    })
}

/// A secret's fields as JSON; the error says the value is no JSON object.
pub fn fields(value: &SecretString, expected: &str) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_str(value.expose_secret()) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Invalid(format!(
            "is JSON but not an object; store a JSON object with {expected}"
        ))),
        Err(e) => Err(Invalid(format!(
            "is not JSON (line {}, column {}); store a JSON object with {expected}",
            e.line(),
            e.column()
        ))),
    }
}

/// A string field, `None` when absent or null.
fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, Invalid> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid(format!("field {name} must be a string"))),
    }
}

/// A password field: present, a string and not empty (an empty password is
/// an anonymous bind to most servers, never a login).
fn password(fields: &Map<String, Value>, name: &str) -> Result<SecretString, Invalid> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(SecretString::from(s.as_str())),
        Some(Value::String(_)) => Err(Invalid(format!(
            "field {name} is empty; store the account's password"
        ))),
        None | Some(Value::Null) => Err(Invalid(format!(
            "has no {name} field; add the account's password"
        ))),
        Some(_) => Err(Invalid(format!("field {name} must be a string"))),
    }
}

/// A name the function agrees to send: not empty, at most 1024 bytes,
/// without control characters.
fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    if name.trim().is_empty() {
        return Err(Invalid(format!("field {field} is empty; name the account")));
    }
    if name.len() > 1024 {
        return Err(Invalid(format!("field {field} is longer than 1024 bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "field {field} holds control characters, which no directory name can"
        )));
    }
    Ok(())
}

/// How an Active Directory account is named in `username`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdName {
    /// `user@realm`: a user principal name.
    Principal {
        /// The part before the last `@`.
        user: String,
        /// The part after it.
        realm: String,
    },
    /// `DOMAIN\user`: a down-level logon name.
    DownLevel {
        /// The NetBIOS domain.
        domain: String,
        /// The account's sAMAccountName.
        user: String,
    },
}

impl AdName {
    /// Parses `username` for Active Directory.
    pub fn parse(username: &str) -> Result<AdName, Invalid> {
        if let Some((domain, user)) = username.split_once('\\') {
            if domain.is_empty() || user.is_empty() || user.contains('\\') {
                return Err("field username must be user@realm or DOMAIN\\user".into());
            }
            return Ok(AdName::DownLevel {
                domain: domain.to_owned(),
                user: user.to_owned(),
            });
        }
        match username.rsplit_once('@') {
            Some((user, realm)) if !user.is_empty() && !realm.is_empty() => Ok(AdName::Principal {
                user: user.to_owned(),
                realm: realm.to_owned(),
            }),
            _ => Err("field username must be user@realm or DOMAIN\\user for Active Directory; add the realm".into()),
        }
    }

    /// The account part (before `@`, after `\`).
    pub fn user(&self) -> &str {
        match self {
            AdName::Principal { user, .. } | AdName::DownLevel { user, .. } => user,
        }
    }
}

/// A self-managed directory account's secret.
pub struct DirectorySecret {
    /// AD or LDAP.
    pub directory: Directory,
    /// The servers: the first is where passwords change; each is tested.
    pub servers: Vec<Server>,
    /// The bind name: `user@realm` or `DOMAIN\user` (AD), a DN (LDAP).
    pub username: String,
    /// The password.
    pub password: SecretString,
    /// The account's DN, when the secret gives it.
    pub dn: Option<String>,
    /// The admin secret that resets the password, if any.
    pub masterarn: Option<String>,
    /// The second account of an alternating pair (`alternate`): each
    /// rotation sets the other account's password and makes it current, so
    /// the one before keeps working until the next rotation.
    pub alternate: Option<String>,
    /// The alternate account's password, needed once: for the first rotation
    /// to it (`alternate_password`; later ones find it in AWSPREVIOUS).
    pub alternate_password: Option<SecretString>,
    fields: Map<String, Value>,
}

const EXPECTED: &str = "directory, url, username and password";

impl DirectorySecret {
    /// Parses a secret value; the error names the field and the fix.
    pub fn parse(value: &SecretString) -> Result<DirectorySecret, Invalid> {
        let fields = fields(value, EXPECTED)?;
        let directory = match text(&fields, "directory")?.as_deref().map(str::trim) {
            Some(d) if d.eq_ignore_ascii_case("ad") => Directory::ActiveDirectory,
            Some(d) if d.eq_ignore_ascii_case("ldap") => Directory::Ldap,
            Some(_) => return Err("field directory must be \"ad\" or \"ldap\"".into()),
            None => return Err("has no directory field; add \"ad\" or \"ldap\"".into()),
        };
        let plaintext = match fields.get("ssl") {
            None | Some(Value::Null) | Some(Value::Bool(true)) => false,
            Some(Value::Bool(false)) => true,
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => false,
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => true,
            Some(_) => return Err("field ssl must be true or false".into()),
        };
        let urls: Vec<String> = match fields.get("url") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|u| u.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or("field url must be a URL or a list of URLs")?,
            None | Some(Value::Null) => {
                return Err(
                    "has no url field; add ldaps://host:636 (or ldap://host:389 for StartTLS)"
                        .into(),
                );
            }
            Some(_) => return Err("field url must be a URL or a list of URLs".into()),
        };
        if urls.is_empty() || urls.len() > 16 {
            return Err("field url must list 1 to 16 servers".into());
        }
        let servers = urls
            .iter()
            .map(|u| parse_url(u, plaintext))
            .collect::<Result<Vec<_>, _>>()?;
        let username = text(&fields, "username")?
            .ok_or("has no username field; add the account's bind name")?;
        check_name("username", &username)?;
        match directory {
            Directory::ActiveDirectory => {
                AdName::parse(&username)?;
            }
            Directory::Ldap => {
                if !username.contains('=') {
                    return Err("field username must be the account's DN for LDAP (uid=svc-app,ou=people,dc=example,dc=com)".into());
                }
            }
        }
        let password = password(&fields, "password")?;
        let dn = text(&fields, "dn")?.filter(|d| !d.trim().is_empty());
        if let Some(dn) = &dn {
            check_name("dn", dn)?;
            if !dn.contains('=') {
                return Err(
                    "field dn must be a DN (CN=svc-app,OU=Services,DC=example,DC=com)".into(),
                );
            }
        }
        let masterarn = text(&fields, "masterarn")?.filter(|m| !m.trim().is_empty());
        let alternate = text(&fields, "alternate")?.filter(|a| !a.trim().is_empty());
        if let Some(alternate) = &alternate {
            check_name("alternate", alternate)?;
            let valid = match directory {
                Directory::ActiveDirectory => AdName::parse(alternate).is_ok(),
                Directory::Ldap => alternate.contains('='),
            };
            if !valid {
                return Err("field alternate must name the second account as username does".into());
            }
            if alternate.eq_ignore_ascii_case(&username) {
                return Err(
                    "field alternate names the same account as username; name the second account"
                        .into(),
                );
            }
        }
        let alternate_password = match fields.get("alternate_password") {
            None | Some(Value::Null) => None,
            Some(_) => Some(self::password(&fields, "alternate_password")?),
        };
        Ok(DirectorySecret {
            directory,
            servers,
            username,
            password,
            dn,
            masterarn,
            alternate,
            alternate_password,
            fields,
        })
    }

    /// The next value: the same account with `password`, or, for an
    /// alternating pair, the other account with it (its `dn` and the
    /// one-time `alternate_password` left out).
    pub fn next_value(&self, password: &SecretString) -> SecretString {
        let Some(alternate) = &self.alternate else {
            return self.with_password(password);
        };
        let mut fields = self.fields.clone();
        fields.insert("username".into(), Value::String(alternate.clone()));
        fields.insert("alternate".into(), Value::String(self.username.clone()));
        fields.remove("dn");
        fields.remove("alternate_password");
        with_field(&fields, "password", password)
    }

    /// The accounts the secret names, compared without regard to case:
    /// `username`, and `alternate` in a pair, in a stable order.
    pub fn accounts(&self) -> String {
        let mut names = vec![self.username.to_lowercase()];
        if let Some(a) = &self.alternate {
            names.push(a.to_lowercase());
        }
        names.sort();
        names.join(" and ")
    }

    /// The server where passwords change.
    pub fn primary(&self) -> &Server {
        &self.servers[0]
    }

    /// This secret's value with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        with_field(&self.fields, "password", password)
    }
}

fn with_field(fields: &Map<String, Value>, name: &str, password: &SecretString) -> SecretString {
    let mut fields = fields.clone();
    fields.insert(
        name.into(),
        Value::String(password.expose_secret().to_owned()),
    );
    SecretString::from(serde_json::to_string(&Value::Object(fields)).unwrap_or_default())
}

/// The field names of AWS's Active Directory function, and the deployer's
/// variables that rename them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedKeys {
    /// The directory id (`DICT_KEY_DIRECTORY`).
    pub directory: String,
    /// The user name (`DICT_KEY_USERNAME`).
    pub username: String,
    /// The password (`DICT_KEY_PASSWORD`).
    pub password: String,
}

/// The variables AWS's function reads to rename its fields.
pub const KEY_VARS: [&str; 3] = [
    "DICT_KEY_DIRECTORY",
    "DICT_KEY_USERNAME",
    "DICT_KEY_PASSWORD",
];

impl Default for ManagedKeys {
    fn default() -> Self {
        ManagedKeys {
            directory: "awsSeamlessDomainDirectoryId".into(),
            username: "awsSeamlessDomainUsername".into(),
            password: "awsSeamlessDomainPassword".into(),
        }
    }
}

impl ManagedKeys {
    /// The names from a lookup (unset or blank variables keep AWS's names).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ManagedKeys {
        let pick = |var: &str, default: String| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
        };
        let d = ManagedKeys::default();
        ManagedKeys {
            directory: pick(KEY_VARS[0], d.directory),
            username: pick(KEY_VARS[1], d.username),
            password: pick(KEY_VARS[2], d.password),
        }
    }

    /// The process's names, read once from its environment.
    pub fn from_env() -> &'static ManagedKeys {
        static KEYS: OnceLock<ManagedKeys> = OnceLock::new();
        KEYS.get_or_init(|| ManagedKeys::from_lookup(|v| std::env::var(v).ok()))
    }
}

/// An AWS Managed Microsoft AD account's secret, in AWS's shape.
pub struct ManagedSecret {
    /// The directory id (`d-` and ten hexadecimal digits).
    pub directory_id: String,
    /// The account's sAMAccountName, as `ResetUserPassword` takes it.
    pub username: String,
    /// The password.
    pub password: SecretString,
    keys: ManagedKeys,
    fields: Map<String, Value>,
}

impl ManagedSecret {
    /// Parses a secret value with the field names `keys`.
    pub fn parse_with(value: &SecretString, keys: &ManagedKeys) -> Result<ManagedSecret, Invalid> {
        let expected = format!(
            "{}, {} and {}",
            keys.directory, keys.username, keys.password
        );
        let fields = fields(value, &expected)?;
        let directory_id = text(&fields, &keys.directory)?.ok_or_else(|| {
            Invalid(format!(
                "has no {} field; add the directory id",
                keys.directory
            ))
        })?;
        let id = directory_id.trim();
        let valid = id.len() == 12
            && id.starts_with("d-")
            && id[2..].chars().all(|c| c.is_ascii_hexdigit());
        if !valid {
            return Err(Invalid(format!(
                "field {} must be a directory id (d- and ten hexadecimal digits)",
                keys.directory
            )));
        }
        let username = text(&fields, &keys.username)?.ok_or_else(|| {
            Invalid(format!(
                "has no {} field; add the account's name",
                keys.username
            ))
        })?;
        check_name(&keys.username, &username)?;
        if username.contains(['@', '\\', '=', ',']) {
            return Err(Invalid(format!(
                "field {} must be the account's name (its sAMAccountName), as ResetUserPassword takes it",
                keys.username
            )));
        }
        let password = password(&fields, &keys.password)?;
        Ok(ManagedSecret {
            directory_id: id.to_owned(),
            username,
            password,
            keys: keys.clone(),
            fields,
        })
    }

    /// This secret's value with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        with_field(&self.fields, &self.keys.password, password)
    }
}

/// Whether `value` is in AWS's Managed AD shape (it has the directory id field).
pub fn is_managed(value: &SecretString, keys: &ManagedKeys) -> bool {
    fields(value, "").is_ok_and(|f| f.contains_key(&keys.directory))
}

/// An ldap-rotation secret of either shape.
pub enum AccountSecret {
    /// A self-managed directory's account.
    Directory(DirectorySecret),
    /// An AWS Managed Microsoft AD account.
    Managed(ManagedSecret),
}

impl AccountSecret {
    /// Parses either shape, the Managed AD field names being `keys`.
    pub fn parse_with(value: &SecretString, keys: &ManagedKeys) -> Result<AccountSecret, Invalid> {
        if is_managed(value, keys) {
            ManagedSecret::parse_with(value, keys).map(AccountSecret::Managed)
        } else {
            DirectorySecret::parse(value).map(AccountSecret::Directory)
        }
    }
}

/// Whose password a secret rotates, and where: what a rotation never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    /// An account of a self-managed directory.
    Directory {
        /// AD or LDAP.
        directory: Directory,
        /// The server where its password changes.
        server: Server,
        /// Its bind name (a pair's two, sorted), compared without regard to case.
        username: String,
    },
    /// An AWS Managed Microsoft AD account.
    Managed {
        /// The directory id.
        directory_id: String,
        /// The account's name, compared without regard to case.
        username: String,
    },
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Directory {
                directory,
                server,
                username,
            } => write!(f, "{directory} account {username:?} at {server}"),
            Account::Managed {
                directory_id,
                username,
            } => write!(f, "account {username:?} of directory {directory_id}"),
        }
    }
}

impl rotor_core::SecretValue for AccountSecret {
    type Invalid = Invalid;
    type Target = Account;

    fn parse(value: &SecretString) -> Result<Self, Invalid> {
        AccountSecret::parse_with(value, ManagedKeys::from_env())
    }

    fn target(&self) -> Account {
        match self {
            AccountSecret::Directory(s) => Account::Directory {
                directory: s.directory,
                server: s.primary().clone(),
                username: s.accounts(),
            },
            AccountSecret::Managed(m) => Account::Managed {
                directory_id: m.directory_id.to_lowercase(),
                username: m.username.to_lowercase(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DirectorySecret, Invalid> {
        DirectorySecret::parse(&SecretString::from(text))
    }

    /// A secret with `url` and `directory`, and the other fields of `more`.
    fn with(directory: &str, url: serde_json::Value, more: serde_json::Value) -> String {
        let mut value = serde_json::json!({
            "directory": directory,
            "url": url,
            "username": "u@r",
            "password": "hunter2",
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut value, more) {
            map.extend(more);
        }
        value.to_string()
    }

    #[test]
    fn urls_say_how_the_connection_is_protected() {
        let ad = with(
            "ad",
            "ldaps://dc1.corp.example".into(),
            serde_json::json!({"x": 1}),
        );
        let s = parse(&ad).unwrap();
        assert_eq!(s.primary().transport, Transport::Ldaps);
        assert_eq!(s.primary().endpoint.port, 636);
        let dn = serde_json::json!({"username": "uid=x,dc=e"});
        let two = with(
            "ldap",
            serde_json::json!(["ldap://a:3389", "ldap://b"]),
            dn.clone(),
        );
        let s = parse(&two).unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.primary().transport, Transport::StartTls);
        assert_eq!(s.servers[1].endpoint.port, 389);
        let plain_dn = serde_json::json!({"username": "uid=x,dc=e", "ssl": false});
        let s = parse(&with("ldap", "ldap://a".into(), plain_dn)).unwrap();
        assert_eq!(s.primary().transport, Transport::Plaintext);
        assert_eq!(s.primary().url(), "ldap://a:389");
        let again = DirectorySecret::parse(&s.with_password(&SecretString::from("new"))).unwrap();
        assert_eq!(again.password.expose_secret(), "new");
    }

    #[test]
    fn a_pair_alternates_and_keeps_its_target() {
        let pair = serde_json::json!({"alternate": "svc-b@r", "alternate_password": "b", "dn": "CN=a,DC=r"});
        let first = with("ad", "ldaps://dc".into(), pair);
        let s = parse(&first).unwrap();
        assert_eq!(s.alternate.as_deref(), Some("svc-b@r"));
        let next = parse(s.next_value(&SecretString::from("n")).expose_secret()).unwrap();
        assert_eq!(
            (next.username.as_str(), next.alternate.as_deref()),
            ("svc-b@r", Some("u@r"))
        );
        assert!(next.dn.is_none() && next.alternate_password.is_none());
        assert_eq!(next.accounts(), s.accounts());
        let same = serde_json::json!({"alternate": "U@R"});
        assert!(parse(&with("ad", "ldaps://dc".into(), same)).is_err());
    }

    #[test]
    fn ad_names_take_two_forms() {
        assert_eq!(AdName::parse("svc@corp.example").unwrap().user(), "svc");
        assert_eq!(AdName::parse("CORP\\svc").unwrap().user(), "svc");
        assert!(AdName::parse("svc").is_err());
        assert!(AdName::parse("\\svc").is_err());
    }

    #[test]
    fn errors_never_echo_values() {
        use serde_json::json;
        let none = json!({});
        for bad in [
            with("ad", "ldaps://h".into(), json!({"password": ""})),
            with("ad", "ldaps://hunter2:pw@h".into(), none.clone()),
            with("ad", "ldaps://h".into(), json!({"ssl": false})),
            with("ad", "https://h".into(), none.clone()),
            with("ad", "ldaps://h/dc=x?cn".into(), none.clone()),
            with("ad", "ldaps://h".into(), json!({"username": "plain"})),
            with("nds", "ldaps://h".into(), none.clone()),
            with("ldap", "ldaps://h".into(), json!({"username": "not a dn"})),
            with("ad", json!([]), none.clone()),
            with("ad", json!(null), none.clone()),
            "hunter2".to_owned(),
        ] {
            let e = parse(&bad).err().expect("refused");
            assert!(!e.0.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn managed_secrets_are_read_in_aws_shape_and_renamed_fields() {
        let keys = ManagedKeys::default();
        let aws = serde_json::json!({
            "awsSeamlessDomainDirectoryId": "d-1234567890",
            "awsSeamlessDomainUsername": "svc",
            "awsSeamlessDomainPassword": "pw",
            "note": 1,
        });
        let value = SecretString::from(aws.to_string());
        let AccountSecret::Managed(m) = AccountSecret::parse_with(&value, &keys).unwrap() else {
            panic!("managed");
        };
        assert_eq!(
            (m.directory_id.as_str(), m.username.as_str()),
            ("d-1234567890", "svc")
        );
        let next =
            ManagedSecret::parse_with(&m.with_password(&SecretString::from("n")), &keys).unwrap();
        assert_eq!(next.password.expose_secret(), "n");
        assert!(next.fields.contains_key("note"));
        let renamed = ManagedKeys::from_lookup(|v| match v {
            "DICT_KEY_DIRECTORY" => Some("DirectoryId".into()),
            "DICT_KEY_USERNAME" => Some("Username".into()),
            "DICT_KEY_PASSWORD" => Some("Password".into()),
            _ => None,
        });
        let value = SecretString::from(
            r#"{"DirectoryId":"d-abcdef0123","Username":"svc","Password":"pw"}"#,
        );
        assert!(ManagedSecret::parse_with(&value, &renamed).is_ok());
        let bad =
            SecretString::from(r#"{"DirectoryId":"x","Username":"svc","Password":"hunter2"}"#);
        let e = ManagedSecret::parse_with(&bad, &renamed).err().unwrap();
        assert!(
            e.0.contains("DirectoryId") && !e.0.contains("hunter2"),
            "{e}"
        );
    }
}
