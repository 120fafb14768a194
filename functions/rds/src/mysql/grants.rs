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
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut found = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(q) if c == '\\' && q != '`' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => quote = Some(c),
            None if i >= from && text[i..].starts_with(needle) => {
                found = Some(i);
                if !last {
                    return found;
                }
            }
            None => {}
        }
    }
    found
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

    /// MySQL 8's documented output with `partial_revokes` on, and with roles:
    /// the REVOKE lines come after the global grant they restrict.
    #[test]
    fn copies_mysql_partial_revokes_and_roles() {
        let shown = lines(&[
            "GRANT SELECT, INSERT ON *.* TO `u1`@`%`",
            "REVOKE INSERT ON `world`.* FROM `u1`@`%`",
            "GRANT `app_read`@`%`,`app_write`@`%` TO `u1`@`%`",
        ]);
        assert_eq!(
            copy_grants(&shown, "u1", "'u1_clone'@'%'"),
            [
                "GRANT SELECT, INSERT ON *.* TO 'u1_clone'@'%'",
                "GRANT `app_read`@`%`,`app_write`@`%` TO 'u1_clone'@'%'",
                "REVOKE INSERT ON `world`.* FROM 'u1_clone'@'%'",
            ]
        );
        assert_eq!(
            granted_roles(&shown[2], "u1").as_deref(),
            Some("`app_read`@`%`,`app_write`@`%`")
        );
        assert_eq!(granted_roles(&shown[0], "u1"), None);
    }

    /// MariaDB's documented output for a role granted with ADMIN OPTION and
    /// made the default.
    #[test]
    fn copies_mariadb_roles_and_default_roles() {
        let shown = lines(&[
            "GRANT `journalist` TO `hulda`@`localhost` WITH ADMIN OPTION",
            "GRANT USAGE ON *.* TO `hulda`@`localhost`",
            "SET DEFAULT ROLE `journalist` FOR `hulda`@`localhost`",
        ]);
        assert_eq!(
            copy_grants(&shown, "hulda", "'hulda_clone'@'localhost'"),
            [
                "GRANT `journalist` TO 'hulda_clone'@'localhost' WITH ADMIN OPTION",
                "GRANT USAGE ON *.* TO 'hulda_clone'@'localhost'",
                "SET DEFAULT ROLE `journalist` FOR 'hulda_clone'@'localhost'",
            ]
        );
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
