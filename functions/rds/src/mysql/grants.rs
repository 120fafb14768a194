//! MySQL and MariaDB grant text: quoting literals, taking `SHOW GRANTS` lines
//! apart, copying them to another account and normalising them for
//! comparison. Pure text work, no session.

use std::collections::BTreeSet;

/// Quotes a string literal; with backslash escapes on (the default sql_mode),
/// backslashes and quotes are escaped, else quotes are doubled.
pub fn quote_string(text: &str, backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' if backslash_escapes => out.push_str("\\'"),
            '\'' => out.push_str("''"),
            '\\' if backslash_escapes => out.push_str("\\\\"),
            '\0' if backslash_escapes => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The byte offset of `needle` in `text` outside quotes (`'`, `"`, `` ` ``),
/// searching from `from`; the last one when `last`. It walks characters, not
/// bytes: a server may print names that are not ASCII outside quotes, and a
/// slice inside a character would panic with the line (and a password hash
/// on it) in the message.
fn find_unquoted(text: &str, needle: &str, from: usize, last: bool) -> Option<usize> {
    let mut found = None;
    for (i, _) in unquoted(text) {
        if i >= from && text[i..].starts_with(needle) {
            if !last {
                return Some(i);
            }
            found = Some(i);
        }
    }
    found
}

/// The characters of `text` outside quotes (`'`, `"`, `` ` ``; a backslash
/// escapes within the first two), with their byte offsets. The quotes
/// themselves are not among them.
fn unquoted(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    text.char_indices().filter(move |&(_, c)| {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(q) if c == '\\' && q != '`' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => quote = Some(c),
            None => return true,
        }
        false
    })
}

/// The end (exclusive byte offset) of the account `'user'@'host'` that starts
/// at `at`: two parts joined by `@`, each quoted or ending at a space.
fn account_end(text: &str, at: usize) -> usize {
    let Some(rest) = text.get(at..) else {
        return text.len();
    };
    let mut chars = rest.char_indices().peekable();
    let mut end = rest.len();
    for part in 0..2 {
        let Some(&(_, first)) = chars.peek() else {
            end = rest.len();
            break;
        };
        end = rest.len();
        if matches!(first, '\'' | '"' | '`') {
            chars.next();
            while let Some((i, c)) = chars.next() {
                if c == '\\' && first != '`' {
                    chars.next();
                } else if c == first && chars.next_if(|&(_, n)| n == first).is_none() {
                    // The closing quote (a doubled one stands for itself).
                    end = i + c.len_utf8();
                    break;
                }
            }
        } else {
            while let Some(&(i, c)) = chars.peek() {
                if c == ' ' || c == '@' {
                    end = i;
                    break;
                }
                chars.next();
            }
        }
        if part == 0 && chars.next_if(|&(_, c)| c == '@').is_none() {
            break;
        }
    }
    at + end
}

/// One line of `SHOW GRANTS FOR user`, taken apart.
#[derive(Debug, PartialEq, Eq)]
struct GrantLine<'a> {
    /// `GRANT`, `REVOKE` or `SET DEFAULT ROLE`.
    kind: LineKind,
    /// Everything before the account's keyword (` TO`, ` FROM`, ` FOR`).
    head: &'a str,
    /// `REQUIRE ...` printed after the account (MariaDB), if any.
    require: Option<&'a str>,
    /// `WITH GRANT OPTION` or `WITH ADMIN OPTION`, if printed.
    option: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    Grant,
    Revoke,
    DefaultRole,
}

impl LineKind {
    fn keyword(self) -> &'static str {
        match self {
            LineKind::Grant => " TO ",
            LineKind::Revoke => " FROM ",
            LineKind::DefaultRole => " FOR ",
        }
    }
}

/// Takes apart one `SHOW GRANTS` line of `user`; `None` for a line that is not
/// about `user` or that this code does not know.
fn parse_grant<'a>(line: &'a str, user: &str) -> Option<GrantLine<'a>> {
    let line = line.trim();
    let kind = if line.starts_with("GRANT ") {
        LineKind::Grant
    } else if line.starts_with("REVOKE ") {
        LineKind::Revoke
    } else if line.starts_with("SET DEFAULT ROLE ") {
        LineKind::DefaultRole
    } else {
        return None;
    };
    let cut = find_unquoted(line, kind.keyword(), 0, true)?;
    let at = cut + kind.keyword().len();
    let end = account_end(line, at);
    let name = line[at..end]
        .rsplit_once('@')
        .map_or(&line[at..end], |(n, _)| n);
    if unquote(name) != user {
        return None;
    }
    let tail = &line[end..];
    let require = find_unquoted(tail, " REQUIRE ", 0, false).map(|start| {
        let rest = &tail[start + 1..];
        let stop = find_unquoted(rest, " WITH ", 0, false).unwrap_or(rest.len());
        rest[..stop].trim()
    });
    let with = find_unquoted(tail, " WITH ", 0, false).map(|w| &tail[w..]);
    let option = match with {
        Some(w) if w.contains("GRANT OPTION") => Some("WITH GRANT OPTION"),
        Some(w) if w.contains("ADMIN OPTION") => Some("WITH ADMIN OPTION"),
        _ => None,
    };
    Some(GrantLine {
        kind,
        head: &line[..cut],
        require,
        option,
    })
}

/// The text inside one quoted SQL name or literal.
fn unquote(name: &str) -> String {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(&q @ (b'\'' | b'"' | b'`')) if name.len() >= 2 && bytes[name.len() - 1] == q => {
            let inner = &name[1..name.len() - 1];
            let doubled = (q as char).to_string().repeat(2);
            let mut text = inner.replace(&doubled, &(q as char).to_string());
            if q != b'`' {
                text = text
                    .replace("\\'", "'")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\");
            }
            text
        }
        _ => name.to_owned(),
    }
}

/// The statements that give `account` what `SHOW GRANTS FOR user` lists, in
/// an order the server accepts: grants (roles included) first, then MySQL's
/// partial revokes, which need the global grant they restrict, then the
/// default role, which needs the role granted. REQUIRE is left to
/// `ALTER USER`, where every version accepts it.
pub fn copy_grants(lines: &[String], user: &str, account: &str) -> Vec<String> {
    let parsed: Vec<GrantLine> = lines.iter().filter_map(|l| parse_grant(l, user)).collect();
    let mut statements = Vec::new();
    for kind in [LineKind::Grant, LineKind::Revoke, LineKind::DefaultRole] {
        for line in parsed.iter().filter(|l| l.kind == kind) {
            let option = line.option.map(|o| format!(" {o}")).unwrap_or_default();
            statements.push(format!("{}{}{account}{option}", line.head, kind.keyword()));
        }
    }
    statements
}

/// The roles a `SHOW GRANTS` line grants `user` (`GRANT r1, r2 TO user`), as
/// the list to revoke; `None` for a privilege grant (`... ON ...`).
pub(super) fn granted_roles(line: &str, user: &str) -> Option<String> {
    let parsed = parse_grant(line, user)?;
    if parsed.kind != LineKind::Grant || find_unquoted(parsed.head, " ON ", 0, false).is_some() {
        return None;
    }
    Some(parsed.head["GRANT ".len()..].trim().to_owned())
}

/// `SHOW GRANTS` of `user` as a set that can be compared with another user's:
/// the account becomes `?`, the password and authentication clauses are
/// dropped (they differ by design and must not reach a message), REQUIRE
/// becomes an entry of its own, GRANT and ADMIN OPTION are kept.
pub fn normalise_grants(lines: &[String], user: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for line in lines {
        let Some(parsed) = parse_grant(line, user) else {
            continue;
        };
        let option = parsed.option.map(|o| format!(" {o}")).unwrap_or_default();
        set.insert(format!("{}{}?{option}", parsed.head, parsed.kind.keyword()));
        if let Some(require) = parsed.require.filter(|r| *r != "REQUIRE NONE") {
            set.insert(require.to_owned());
        }
    }
    set
}

/// Global privileges that act on other accounts or on the server itself:
/// with one of them, a writer handed the account could take over others.
/// MariaDB's finer split of SUPER and MySQL's dynamic privileges are caught
/// by their `ADMIN` (or listed here).
const ADMIN_PRIVILEGES: [&str; 14] = [
    "ALL PRIVILEGES",
    "SUPER",
    "CREATE USER",
    "FILE",
    "PROCESS",
    "RELOAD",
    "SHUTDOWN",
    "REPLICATION SLAVE",
    "REPLICATION REPLICA",
    "REPLICA MONITOR",
    "SLAVE MONITOR",
    "BINLOG REPLAY",
    "SET USER",
    "SYSTEM_USER",
];

/// Privileges that, on `*.*` or on the `mysql` schema, change the accounts
/// kept there.
const WRITE_PRIVILEGES: [&str; 7] = [
    "ALL PRIVILEGES",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
];

/// What an account's (or a role's) `SHOW GRANTS` lines give it, as far as
/// whether a master may hand it to another secret's writer goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Global privileges (`ON *.*`), upper case, `ALL` as `ALL PRIVILEGES`.
    pub global: BTreeSet<String>,
    /// Privileges that write to the `mysql` schema (on it, or global).
    pub writes_mysql: BTreeSet<String>,
    /// `WITH GRANT OPTION` or `WITH ADMIN OPTION`, where a line has one.
    pub options: BTreeSet<&'static str>,
    /// Whether a `GRANT PROXY` line lets it log in as other accounts.
    pub proxy: bool,
    /// The roles granted to it: name, and host (MySQL) or none (MariaDB).
    pub roles: Vec<(String, Option<String>)>,
}

impl Held {
    /// Reads the `SHOW GRANTS` lines of `user` (an account's name or a role).
    pub fn of(lines: &[String], user: &str) -> Held {
        let mut held = Held::default();
        for line in lines.iter().filter_map(|l| parse_grant(l, user)) {
            if line.kind != LineKind::Grant {
                continue;
            }
            if let Some(option) = line.option {
                held.options.insert(option);
            }
            let listed = &line.head["GRANT ".len()..];
            let Some(on) = find_unquoted(listed, " ON ", 0, false) else {
                // `GRANT role1, role2 TO ...`.
                held.roles
                    .extend(split_list(listed).iter().map(|r| account_parts(r)));
                continue;
            };
            let object = listed[on + " ON ".len()..].trim();
            let privileges = split_list(&listed[..on]);
            if privileges.iter().any(|p| p.eq_ignore_ascii_case("PROXY")) {
                held.proxy = true;
                continue;
            }
            let global = object == "*.*";
            let mysql = global || in_mysql_schema(object);
            for privilege in privileges {
                // A column list, `SELECT (a, b)`, names no other privilege.
                let name = privilege.split('(').next().unwrap_or_default().trim();
                let mut name = name.to_ascii_uppercase();
                if name == "ALL" {
                    name = "ALL PRIVILEGES".to_owned();
                }
                if mysql && WRITE_PRIVILEGES.contains(&name.as_str()) {
                    held.writes_mysql.insert(name.clone());
                }
                if global {
                    held.global.insert(name);
                }
            }
        }
        held
    }

    /// Why what this holds makes an account privileged, each reason starting
    /// with `who` (the account or role). The roles it holds are read on
    /// their own, with the same rules (a role the master was granted when it
    /// created it says nothing about the role's powers).
    pub fn why_privileged(&self, who: &str) -> Vec<String> {
        let mut why = Vec::new();
        for privilege in &self.global {
            if ADMIN_PRIVILEGES.contains(&privilege.as_str()) || privilege.contains("ADMIN") {
                why.push(format!("{who} has the global privilege {privilege}"));
            }
        }
        if !self.writes_mysql.is_empty() {
            let list: Vec<&str> = self.writes_mysql.iter().map(String::as_str).collect();
            why.push(format!(
                "{who} may change the mysql schema, where every account is kept ({})",
                list.join(", ")
            ));
        }
        for option in &self.options {
            why.push(format!(
                "{who} may grant what it holds to others ({option})"
            ));
        }
        if self.proxy {
            why.push(format!("{who} may log in as other accounts (PROXY)"));
        }
        why
    }
}

/// Whether the global privileges `global` include every global privilege
/// `master` has (its `USAGE` set aside): an account with the master's
/// grants is an administrator as much as the master is.
pub fn has_masters_grants(global: &BTreeSet<String>, master: &BTreeSet<String>) -> bool {
    let wanted: Vec<&String> = master.iter().filter(|p| *p != "USAGE").collect();
    !wanted.is_empty()
        && (global.contains("ALL PRIVILEGES") || wanted.iter().all(|p| global.contains(*p)))
}

/// Whether a grant's object (`` `mysql`.* ``, `mysql.user`, `PROCEDURE
/// mysql.x`) is in the `mysql` schema.
fn in_mysql_schema(object: &str) -> bool {
    let object = ["PROCEDURE ", "FUNCTION ", "TABLE "]
        .iter()
        .find_map(|kind| object.strip_prefix(kind))
        .unwrap_or(object);
    let schema = match find_unquoted(object, ".", 0, false) {
        Some(dot) => &object[..dot],
        None => object,
    };
    unquote(schema.trim()) == "mysql"
}

/// The items of a comma-separated list, split outside quotes and
/// parentheses (`SELECT (a, b), INSERT`), trimmed.
fn split_list(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in unquoted(text) {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(text[start..].trim());
    items.retain(|item| !item.is_empty());
    items
}

/// A role as `SHOW GRANTS` prints it, taken apart: `` `r`@`%` `` (MySQL) or
/// `` `r` `` (MariaDB).
fn account_parts(text: &str) -> (String, Option<String>) {
    let end = account_end(text, 0);
    let text = &text[..end];
    match find_unquoted(text, "@", 0, true) {
        Some(at) => (unquote(&text[..at]), Some(unquote(&text[at + 1..]))),
        None => (unquote(text), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_strings_in_both_sql_modes() {
        assert_eq!(quote_string(r"a'b\c", true), r"'a\'b\\c'");
        assert_eq!(quote_string(r"a'b\c", false), r"'a''b\c'");
        assert_eq!(quote_string("žluť", true), "'žluť'");
    }

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn copies_grants_to_another_account() {
        let to = "'app_clone'@'%'";
        let copy = |text: &[&str], user: &str| copy_grants(&lines(text), user, to);
        assert_eq!(
            copy(&["GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`"], "app"),
            ["GRANT SELECT, INSERT ON `shop`.* TO 'app_clone'@'%'"]
        );
        // MariaDB prints the password hash and REQUIRE on the global line.
        assert_eq!(
            copy(
                &["GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC' REQUIRE SSL"],
                "app"
            ),
            ["GRANT USAGE ON *.* TO 'app_clone'@'%'"]
        );
        assert_eq!(
            copy(
                &["GRANT ALL PRIVILEGES ON `a TO b`.* TO `app`@`%` WITH GRANT OPTION"],
                "app"
            ),
            ["GRANT ALL PRIVILEGES ON `a TO b`.* TO 'app_clone'@'%' WITH GRANT OPTION"]
        );
        assert_eq!(
            copy(&["GRANT SELECT ON x.* TO 'o''k'@'%'"], "o'k"),
            ["GRANT SELECT ON x.* TO 'app_clone'@'%'"]
        );
        assert!(copy(&["GRANT SELECT ON x.* TO `other`@`%`"], "app").is_empty());
    }

    /// The documented outputs with roles: MySQL 8's with `partial_revokes`
    /// on (the REVOKE lines come after the global grant they restrict), and
    /// MariaDB's for a role granted with ADMIN OPTION and made the default.
    #[test]
    fn copies_documented_roles_and_partial_revokes() {
        type Case<'a> = (&'a [&'a str], &'a str, &'a str, &'a [&'a str]);
        let mysql: Case = (
            &[
                "GRANT SELECT, INSERT ON *.* TO `u1`@`%`",
                "REVOKE INSERT ON `world`.* FROM `u1`@`%`",
                "GRANT `app_read`@`%`,`app_write`@`%` TO `u1`@`%`",
            ],
            "u1",
            "'u1_clone'@'%'",
            &[
                "GRANT SELECT, INSERT ON *.* TO 'u1_clone'@'%'",
                "GRANT `app_read`@`%`,`app_write`@`%` TO 'u1_clone'@'%'",
                "REVOKE INSERT ON `world`.* FROM 'u1_clone'@'%'",
            ],
        );
        let mariadb: Case = (
            &[
                "GRANT `journalist` TO `hulda`@`localhost` WITH ADMIN OPTION",
                "GRANT USAGE ON *.* TO `hulda`@`localhost`",
                "SET DEFAULT ROLE `journalist` FOR `hulda`@`localhost`",
            ],
            "hulda",
            "'hulda_clone'@'localhost'",
            &[
                "GRANT `journalist` TO 'hulda_clone'@'localhost' WITH ADMIN OPTION",
                "GRANT USAGE ON *.* TO 'hulda_clone'@'localhost'",
                "SET DEFAULT ROLE `journalist` FOR 'hulda_clone'@'localhost'",
            ],
        );
        for (shown, user, account, copied) in [mysql, mariadb] {
            assert_eq!(copy_grants(&lines(shown), user, account), copied);
        }
        let (shown, user, ..) = mysql;
        assert_eq!(
            granted_roles(shown[2], user).as_deref(),
            Some("`app_read`@`%`,`app_write`@`%`")
        );
        assert_eq!(granted_roles(shown[0], user), None);
    }

    /// Issue 21, item 14: text outside quotes that is not ASCII (a name the
    /// server printed unquoted) was sliced inside a character, and the panic
    /// quoted the line, password hash included.
    #[test]
    fn text_outside_quotes_that_is_not_ascii_is_taken_apart() {
        let shown = lines(&[
            "GRANT SELECT ON žluť.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABCD'",
            "GRANT ŽLUŤ TO `app`@`%`",
            "GRANT USAGE ON *.* TO žofie@`%` REQUIRE SSL",
        ]);
        assert_eq!(
            copy_grants(&shown, "app", "'x'@'%'"),
            ["GRANT SELECT ON žluť.* TO 'x'@'%'", "GRANT ŽLUŤ TO 'x'@'%'"]
        );
        assert_eq!(granted_roles(&shown[1], "app").as_deref(), Some("ŽLUŤ"));
        let žofie = normalise_grants(&shown, "žofie");
        assert!(žofie.contains("GRANT USAGE ON *.* TO ?") && žofie.contains("REQUIRE SSL"));
    }

    proptest::proptest! {
        /// Whatever a server prints, taking it apart never panics.
        #[test]
        fn any_line_is_taken_apart_without_panicking(
            privileges in "\\PC{0,12}",
            object in "\\PC{0,12}",
            user in "[`'\"]?\\PC{0,6}[`'\"]?",
            host in "\\PC{0,6}",
            tail in "\\PC{0,16}",
            line in "\\PC{0,60}",
        ) {
            let shown = vec![
                format!("GRANT {privileges} ON {object} TO {user}@{host}{tail}"),
                format!("REVOKE {privileges} ON {object} FROM {user}{tail}"),
                line,
            ];
            for name in [user.as_str(), user.trim_matches(['`', '\'', '"'])] {
                let _ = copy_grants(&shown, name, "'x'@'%'");
                let _ = normalise_grants(&shown, name);
                for one in &shown {
                    let _ = granted_roles(one, name);
                }
            }
        }
    }

    /// Issue 21, item 2: what makes an account privileged, read from the
    /// servers' own `SHOW GRANTS` output.
    #[test]
    fn privileged_accounts_say_why() {
        let master = Held::of(
            &lines(&[
                "GRANT SELECT, INSERT, CREATE USER, RELOAD ON *.* TO `admin`@`%` WITH GRANT OPTION",
                "GRANT `rds_superuser_role`@`%` TO `admin`@`%`",
            ]),
            "admin",
        );
        assert_eq!(
            master.roles,
            [("rds_superuser_role".to_owned(), Some("%".to_owned()))]
        );
        let why = |text: &[&str], user: &str| Held::of(&lines(text), user).why_privileged("it");
        assert!(
            why(
                &[
                    "GRANT USAGE ON *.* TO `app`@`%`",
                    "GRANT SELECT (`a`, `b`), INSERT ON `shop`.`t` TO `app`@`%`",
                    "GRANT SELECT ON `mysql`.* TO `app`@`%`",
                ],
                "app"
            )
            .is_empty()
        );
        assert_eq!(
            why(&["GRANT SUPER, SELECT ON *.* TO `a`@`%`"], "a"),
            ["it has the global privilege SUPER"]
        );
        assert_eq!(
            why(&["GRANT ALL ON *.* TO 'a'@'%'"], "a"),
            [
                "it has the global privilege ALL PRIVILEGES",
                "it may change the mysql schema, where every account is kept (ALL PRIVILEGES)"
            ]
        );
        assert_eq!(
            why(&["GRANT UPDATE ON `mysql`.`global_priv` TO `a`@`%`"], "a"),
            ["it may change the mysql schema, where every account is kept (UPDATE)"]
        );
        assert_eq!(
            why(
                &["GRANT SELECT ON `shop`.* TO `a`@`%` WITH GRANT OPTION"],
                "a"
            ),
            ["it may grant what it holds to others (WITH GRANT OPTION)"]
        );
        assert_eq!(
            why(&["GRANT CONNECTION ADMIN ON *.* TO `a`@`%`"], "a"),
            ["it has the global privilege CONNECTION ADMIN"]
        );
        assert_eq!(
            why(&["GRANT PROXY ON ''@'%' TO 'a'@'%'"], "a"),
            ["it may log in as other accounts (PROXY)"]
        );
        let mysql_roles = Held::of(
            &lines(&["GRANT `rds_superuser_role`@`%`,`r`@`%` TO `a`@`%`"]),
            "a",
        );
        assert_eq!(mysql_roles.roles.len(), 2);
        assert!(mysql_roles.why_privileged("it").is_empty());
        let mariadb_role = Held::of(&lines(&["GRANT `powerful` TO `a`@`%`"]), "a");
        assert_eq!(mariadb_role.roles, [("powerful".to_owned(), None)]);

        let global = |text: &str| Held::of(&lines(&[text]), "a").global;
        assert!(has_masters_grants(
            &global("GRANT SELECT, INSERT, RELOAD, CREATE USER ON *.* TO `a`@`%`"),
            &master.global
        ));
        assert!(has_masters_grants(
            &global("GRANT ALL PRIVILEGES ON *.* TO `a`@`%`"),
            &master.global
        ));
        assert!(!has_masters_grants(
            &global("GRANT SELECT, INSERT ON *.* TO `a`@`%`"),
            &master.global
        ));
        assert!(!has_masters_grants(
            &global("GRANT USAGE ON *.* TO `a`@`%`"),
            &global("GRANT USAGE ON *.* TO `a`@`%`")
        ));
    }

    #[test]
    fn normalised_grants_compare_users_and_hide_passwords() {
        let original = lines(&[
            "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AAAA' REQUIRE SSL",
            "GRANT SELECT ON `shop`.* TO `app`@`%` WITH GRANT OPTION",
            "REVOKE INSERT ON `world`.* FROM `app`@`%`",
        ]);
        let clone = lines(&[
            "GRANT USAGE ON *.* TO `app_clone`@`%` IDENTIFIED VIA ed25519 USING 'BBBB' REQUIRE SSL",
            "REVOKE INSERT ON `world`.* FROM `app_clone`@`%`",
            "GRANT SELECT ON `shop`.* TO `app_clone`@`%` WITH GRANT OPTION",
        ]);
        let a = normalise_grants(&original, "app");
        assert_eq!(a, normalise_grants(&clone, "app_clone"));
        assert!(a.contains("REQUIRE SSL"));
        assert!(!format!("{a:?}").contains("AAAA"));
        let without_option = lines(&[
            "GRANT USAGE ON *.* TO `app_clone`@`%` REQUIRE SSL",
            "REVOKE INSERT ON `world`.* FROM `app_clone`@`%`",
            "GRANT SELECT ON `shop`.* TO `app_clone`@`%`",
        ]);
        assert_ne!(a, normalise_grants(&without_option, "app_clone"));
    }
}
