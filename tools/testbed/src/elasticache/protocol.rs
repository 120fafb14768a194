//! The AWS Query protocol as ElastiCache speaks it: a form-encoded POST body
//! (`Action=…&Version=2015-02-02&…`, lists as `Name.member.N`, structures as
//! `Name.Field`) in, XML out, and errors in the `<ErrorResponse>` shape.

use std::collections::BTreeMap;

use secrecy::SecretString;

/// The API version every request must name.
pub(super) const VERSION: &str = "2015-02-02";
/// The namespace of every response document.
pub(super) const XMLNS: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";

/// A request's parameters. Deliberately not `Debug`: they may hold passwords.
pub(super) struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses a form-encoded body; a repeated name keeps its last value.
    pub(super) fn parse(body: &[u8]) -> Params {
        Params(form_urlencoded::parse(body).into_owned().collect())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The members of list `name` (`name.member.1`, `name.member.2`, …) in
    /// index order, as secrets; Err names the first parameter whose index is
    /// not 1, 2, … without gaps.
    pub(super) fn secret_list(&self, name: &str) -> Result<Vec<SecretString>, Fault> {
        let prefix = format!("{name}.member.");
        let mut members: Vec<(usize, &str)> = Vec::new();
        for (key, value) in self.0.range(prefix.clone()..) {
            let Some(index) = key.strip_prefix(&prefix) else {
                break;
            };
            match index.parse::<usize>() {
                Ok(i) if i >= 1 => members.push((i, value)),
                _ => return Err(Fault::invalid_value(format!("{key} is not a list member"))),
            }
        }
        members.sort_by_key(|(i, _)| *i);
        for (expected, (i, _)) in members.iter().enumerate() {
            if *i != expected + 1 {
                return Err(Fault::invalid_value(format!(
                    "{prefix}{i} has no {prefix}{} before it",
                    expected + 1
                )));
            }
        }
        Ok(members
            .into_iter()
            .map(|(_, v)| SecretString::from(v))
            .collect())
    }

    /// The tags of list `name` as the Query protocol writes a TagList
    /// (`name.Tag.N.Key`, `name.Tag.N.Value`), in index order; a tag without
    /// `Value` has the empty value. Err names a member without `Key`, or an
    /// index that is not 1, 2, … without gaps.
    pub(super) fn tag_list(&self, name: &str) -> Result<Vec<(String, String)>, Fault> {
        let prefix = format!("{name}.Tag.");
        let mut tags: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
        for (key, value) in self.0.range(prefix.clone()..) {
            let Some(rest) = key.strip_prefix(&prefix) else {
                break;
            };
            let not_a_member = || Fault::invalid_value(format!("{key} is not a tag member"));
            let (index, field) = rest.split_once('.').ok_or_else(not_a_member)?;
            let index: usize = index
                .parse()
                .ok()
                .filter(|i| *i >= 1)
                .ok_or_else(not_a_member)?;
            let entry = tags.entry(index).or_default();
            match field {
                "Key" => entry.0 = Some(value.clone()),
                "Value" => entry.1 = Some(value.clone()),
                _ => return Err(not_a_member()),
            }
        }
        let mut list = Vec::with_capacity(tags.len());
        for (expected, (index, (key, value))) in tags.into_iter().enumerate() {
            if index != expected + 1 {
                return Err(Fault::invalid_value(format!(
                    "{prefix}{index} has no {prefix}{} before it",
                    expected + 1
                )));
            }
            let key =
                key.ok_or_else(|| Fault::invalid_value(format!("{prefix}{index}.Key is missing")))?;
            list.push((key, value.unwrap_or_default()));
        }
        Ok(list)
    }

    /// How many members list `name` has, counted without reading them.
    pub(super) fn list_len(&self, name: &str) -> usize {
        let prefix = format!("{name}.member.");
        self.0.keys().filter(|k| k.starts_with(&prefix)).count()
    }

    /// A Boolean parameter: `true` or `false`, as the SDK writes them.
    pub(super) fn boolean(&self, name: &str) -> Result<Option<bool>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(Fault::invalid_value(format!(
                "{name} must be true or false"
            ))),
        }
    }
}

/// An error answer: its code, HTTP status and message. The message never
/// holds a request's secret values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The error code, e.g. `UserNotFound`, `Throttling`.
    pub code: String,
    /// The HTTP status.
    pub status: u16,
    /// The message.
    pub message: String,
}

impl Fault {
    /// A fault with any code and status.
    pub fn new(code: &str, status: u16, message: impl Into<String>) -> Fault {
        Fault {
            code: code.to_owned(),
            status,
            message: message.into(),
        }
    }

    pub(super) fn invalid_value(message: impl Into<String>) -> Fault {
        Fault::new("InvalidParameterValue", 400, message)
    }

    pub(super) fn combination(message: impl Into<String>) -> Fault {
        Fault::new("InvalidParameterCombination", 400, message)
    }

    pub(super) fn user_not_found(id: &str) -> Fault {
        Fault::new("UserNotFound", 404, format!("User {id} not found."))
    }

    /// `Sender` for a client's fault (4xx), `Receiver` for the service's.
    fn kind(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// The `<ErrorResponse>` document.
    pub(super) fn to_xml(&self, request_id: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code>\
             <Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            self.kind(),
            escape(&self.code),
            escape(&self.message)
        )
    }
}

/// `<{Action}Response><{Action}Result>{result}</…><ResponseMetadata>…`.
pub(super) fn response_xml(action: &str, result: &str, request_id: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{XMLNS}\"><{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
         </{action}Response>"
    )
}

/// `<name>text</name>`, the text escaped.
pub(super) fn element(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// XML character data and attribute escaping.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn lists_come_in_index_order_and_without_gaps() {
        let params = Params::parse(
            b"Action=ModifyUser&Passwords.member.2=b%26c&Passwords.member.1=a+b&UserId=u",
        );
        let list = params.secret_list("Passwords").unwrap();
        let values: Vec<&str> = list.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(values, ["a b", "b&c"]);
        assert_eq!(params.list_len("Passwords"), 2);
        assert_eq!(params.get("UserId"), Some("u"));

        let gap = Params::parse(b"Passwords.member.2=x");
        assert_eq!(
            gap.secret_list("Passwords").unwrap_err().code,
            "InvalidParameterValue"
        );
        let bad = Params::parse(b"Passwords.member.x=x");
        assert!(bad.secret_list("Passwords").is_err());
        assert!(
            Params::parse(b"")
                .secret_list("Passwords")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn tag_lists_come_in_index_order() {
        let params = Params::parse(
            b"Tags.Tag.2.Key=b&Tags.Tag.1.Value=x%20y&Tags.Tag.1.Key=rotor%3Asecret&Tags.Tag.2.Value=",
        );
        assert_eq!(
            params.tag_list("Tags").unwrap(),
            [
                ("rotor:secret".to_owned(), "x y".to_owned()),
                ("b".to_owned(), String::new())
            ]
        );
        for bad in [
            &b"Tags.Tag.2.Key=b"[..],
            b"Tags.Tag.1.Value=v",
            b"Tags.Tag.x.Key=k",
            b"Tags.Tag.1.Other=k",
        ] {
            assert!(Params::parse(bad).tag_list("Tags").is_err());
        }
        assert!(Params::parse(b"").tag_list("Tags").unwrap().is_empty());
    }

    #[test]
    fn errors_have_the_query_protocol_shape() {
        let xml = Fault::user_not_found("a<b").to_xml("rid");
        assert!(xml.starts_with("<ErrorResponse xmlns=\"http://elasticache.amazonaws.com/"));
        assert!(xml.contains("<Type>Sender</Type><Code>UserNotFound</Code>"));
        assert!(xml.contains("User a&lt;b not found."));
        assert!(xml.ends_with("<RequestId>rid</RequestId></ErrorResponse>"));
        let internal = Fault::new("InternalFailure", 500, "x").to_xml("r");
        assert!(internal.contains("<Type>Receiver</Type>"));
        assert_eq!(
            Params::parse(b"NoPasswordRequired=yes")
                .boolean("NoPasswordRequired")
                .unwrap_err()
                .status,
            400
        );
    }
}
