//! What is Active Directory's own: `unicodePwd` values, finding an account
//! by its logon name, the accounts AD protects (Domain Admins and the other
//! privileged groups, by their well-known SIDs, so a renamed group is still
//! found), and the domain's password policy, read to say which rule refused a
//! password without reading the server's text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ldap3::{Scope, SearchEntry};
use rotor_core::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::client::{Connection, Failure, binary, escape, first};
use crate::secret::AdName;

/// A password as `unicodePwd` takes it: in double quotes, UTF-16LE. Wiped
/// when dropped.
pub fn unicode_pwd(password: &SecretString) -> Zeroizing<Vec<u8>> {
    let quoted = Zeroizing::new(format!("\"{}\"", password.expose_secret()));
    Zeroizing::new(quoted.encode_utf16().flat_map(u16::to_le_bytes).collect())
}

/// The account an AD logon name names, as the directory has it.
pub struct AdAccount {
    /// Its DN.
    pub dn: String,
    /// Its sAMAccountName.
    pub name: String,
    /// Why it is privileged; empty when it is not.
    pub privileged: Vec<String>,
    /// When its password was last set (`pwdLastSet`), if it says.
    pub password_set: Option<SystemTime>,
}

/// The domain's naming context (the RootDSE's `defaultNamingContext`).
pub async fn naming_context(conn: &mut Connection) -> Result<String, Failure> {
    let root = conn
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            &["defaultNamingContext"],
        )
        .await?;
    Ok(root
        .first()
        .and_then(|e| first(e, "defaultNamingContext"))
        .unwrap_or_default()
        .to_owned())
}

/// Finds the account `name` names under `base`: by its user principal name,
/// else by its sAMAccountName. `None` when there is no such account, or
/// when the name is ambiguous.
pub async fn find(
    conn: &mut Connection,
    base: &str,
    name: &AdName,
) -> Result<Option<AdAccount>, Failure> {
    const ATTRS: [&str; 5] = [
        "sAMAccountName",
        "objectSid",
        "adminCount",
        "pwdLastSet",
        "userAccountControl",
    ];
    let mut filters = Vec::new();
    if let AdName::Principal { user, realm } = name {
        filters.push(format!(
            "(&(objectCategory=person)(objectClass=user)(userPrincipalName={}))",
            escape(&format!("{user}@{realm}"))
        ));
    }
    filters.push(format!(
        "(&(objectCategory=person)(objectClass=user)(sAMAccountName={}))",
        escape(name.user())
    ));
    for filter in filters {
        let found = conn.search(base, Scope::Subtree, &filter, &ATTRS).await?;
        match found.as_slice() {
            [] => continue,
            [entry] => {
                let privileged = privileged(conn, entry).await?;
                return Ok(Some(AdAccount {
                    dn: entry.dn.clone(),
                    name: first(entry, "sAMAccountName")
                        .unwrap_or_default()
                        .to_owned(),
                    privileged,
                    password_set: first(entry, "pwdLastSet").and_then(filetime),
                }));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Domain-relative ids of the groups and accounts AD treats as privileged.
const DOMAIN_RIDS: [(u32, &str); 10] = [
    (500, "the domain's Administrator account"),
    (502, "the KDC's krbtgt account"),
    (512, "Domain Admins"),
    (516, "Domain Controllers"),
    (518, "Schema Admins"),
    (519, "Enterprise Admins"),
    (520, "Group Policy Creator Owners"),
    (521, "Read-only Domain Controllers"),
    (526, "Key Admins"),
    (527, "Enterprise Key Admins"),
];

/// Builtin groups (S-1-5-32-x) AD treats as privileged.
const BUILTIN_RIDS: [(u32, &str); 5] = [
    (544, "Administrators"),
    (548, "Account Operators"),
    (549, "Server Operators"),
    (550, "Print Operators"),
    (551, "Backup Operators"),
];

/// A SID's identifier authority and sub-authorities, from its binary form.
fn sid(bytes: &[u8]) -> Option<(u64, Vec<u32>)> {
    let count = usize::from(*bytes.get(1)?);
    if bytes.first() != Some(&1) || bytes.len() != 8 + 4 * count {
        return None;
    }
    let authority = bytes[2..8]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let subs = bytes[8..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((authority, subs))
}

/// Why a SID is privileged, if it is.
fn privileged_sid(bytes: &[u8]) -> Option<&'static str> {
    let (authority, subs) = sid(bytes)?;
    if authority != 5 {
        return None;
    }
    match subs.as_slice() {
        [32, rid] => BUILTIN_RIDS.iter().find(|(r, _)| r == rid).map(|(_, n)| *n),
        [21, _, _, _, rid] => DOMAIN_RIDS.iter().find(|(r, _)| r == rid).map(|(_, n)| *n),
        _ => None,
    }
}

/// Why the account `entry` is privileged: its own SID, a group it belongs
/// to directly or not (`tokenGroups`), or AD's protection (`adminCount`).
async fn privileged(conn: &mut Connection, entry: &SearchEntry) -> Result<Vec<String>, Failure> {
    let mut why = Vec::new();
    if let Some(own) = binary(entry, "objectSid")
        .first()
        .and_then(|s| privileged_sid(s))
    {
        why.push(format!("it is {own}"));
    }
    let groups = conn
        .search(&entry.dn, Scope::Base, "(objectClass=*)", &["tokenGroups"])
        .await?;
    for group in groups.iter().flat_map(|e| binary(e, "tokenGroups")) {
        if let Some(name) = privileged_sid(group) {
            let reason = format!("it is a member of {name}");
            if !why.contains(&reason) {
                why.push(reason);
            }
        }
    }
    if first(entry, "adminCount") == Some("1") {
        why.push("AD protects it (adminCount=1: it is or was in a privileged group)".into());
    }
    Ok(why)
}

/// A Windows FILETIME (100 ns since 1601) as a time; `None` for 0 (never set).
fn filetime(text: &str) -> Option<SystemTime> {
    const EPOCH_DIFF_SECS: u64 = 11_644_473_600;
    let ticks: u64 = text.trim().parse().ok().filter(|t| *t > 0)?;
    let secs = (ticks / 10_000_000).checked_sub(EPOCH_DIFF_SECS)?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// An AD interval (negative 100 ns units) as a duration.
fn interval(text: &str) -> Option<Duration> {
    let value: i64 = text.trim().parse().ok()?;
    Some(Duration::from_secs(value.unsigned_abs() / 10_000_000))
}

/// The domain's password policy, in words, with the rule that most likely
/// refused a change made at `now` to an account last set at `set`.
pub async fn describe_policy(conn: &mut Connection, base: &str, set: Option<SystemTime>) -> String {
    let attrs = [
        "minPwdAge",
        "pwdHistoryLength",
        "minPwdLength",
        "pwdProperties",
    ];
    let Ok(found) = conn
        .search(base, Scope::Base, "(objectClass=*)", &attrs)
        .await
    else {
        return "the domain's password policy (it could not be read)".into();
    };
    let Some(domain) = found.first() else {
        return "the domain's password policy (it could not be read)".into();
    };
    let min_age = first(domain, "minPwdAge")
        .and_then(interval)
        .unwrap_or_default();
    let history = first(domain, "pwdHistoryLength").unwrap_or("?");
    let length = first(domain, "minPwdLength").unwrap_or("?");
    let complexity = first(domain, "pwdProperties")
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|p| p & 1 == 1);
    let age = set.and_then(|s| SystemTime::now().duration_since(s).ok());
    let too_young = age.is_some_and(|a| a < min_age);
    let mut text = format!(
        "the domain's password policy (minimum password age {}, history of {history} passwords, minimum length {length}, complexity {})",
        human(min_age),
        if complexity { "required" } else { "off" }
    );
    if too_young {
        text.push_str(&format!(
            ": the password was set {} ago, sooner than the minimum age allows an account to change its own password. Name an admin secret (masterarn), whose reset the minimum age does not bound, or rotate after the minimum age; a fine-grained password policy can lower it for service accounts",
            human(age.unwrap_or_default())
        ));
    } else {
        text.push_str(
            ": a generated password meets length and complexity unless PASSWORD_LENGTH or EXCLUDE_* leave out a class the domain requires, and it never repeats an old one; check those settings and the domain's policy",
        );
    }
    text
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        let v = unicode_pwd(&SecretString::from("aé"));
        assert_eq!(v.as_slice(), &[b'"', 0, b'a', 0, 0xe9, 0, b'"', 0]);
    }

    #[test]
    fn privileged_sids_are_known_by_their_rids() {
        // S-1-5-21-954994906-765932197-2015262220-512 and -513.
        let admins = [
            1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0xda, 0x10, 0xec, 0x38, 0xa5, 0x32, 0xa7, 0x2d,
            0x0c, 0x76, 0x1e, 0x78, 0, 2, 0, 0,
        ];
        assert_eq!(privileged_sid(&admins), Some("Domain Admins"));
        let mut users = admins;
        users[24] = 1;
        assert_eq!(privileged_sid(&users), None);
        // S-1-5-32-544 (Administrators), S-1-5-32-545 (Users).
        assert_eq!(
            privileged_sid(&[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0]),
            Some("Administrators")
        );
        assert_eq!(
            privileged_sid(&[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 2, 0, 0]),
            None
        );
        assert_eq!(privileged_sid(&[1, 9, 0]), None);
    }

    #[test]
    fn times_and_intervals() {
        assert_eq!(filetime("0"), None);
        let t = filetime("134411146906613410").unwrap();
        assert!(t > UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(interval("-864000000000"), Some(Duration::from_secs(86_400)));
        assert_eq!(human(Duration::from_secs(86_400)), "1 day(s)");
    }
}
