//! The commands rotor prints for people to run next (a repair, a resume, the
//! doctor to ask): each one must run as printed. So each carries what reaches
//! the same secret (`--endpoint` for rotor; `--endpoint-url` and the
//! emulator's region for the AWS CLI), names rotor as it was invoked, and is
//! quoted for a POSIX shell. Words in capitals (FUNCTION_ARN) are the
//! placeholders a person fills in.

use crate::endpoint::EMULATOR_REGION;

/// Builds the commands for one endpoint.
#[derive(Clone, Debug, Default)]
pub struct Commands {
    endpoint: Option<String>,
}

impl Commands {
    /// Commands for `endpoint` (an emulator), or for AWS without one.
    pub fn new(endpoint: Option<&str>) -> Commands {
        Commands {
            endpoint: endpoint.map(str::to_owned),
        }
    }

    /// Whether the commands go to an emulator rather than AWS.
    pub fn emulator(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// `rotor ARGS… [--endpoint URL]`.
    pub fn rotor<S: AsRef<str>>(&self, args: impl IntoIterator<Item = S>) -> String {
        let mut line = vec![program()];
        line.extend(args.into_iter().map(|a| quote(a.as_ref())));
        if let Some(url) = &self.endpoint {
            line.extend(["--endpoint".to_owned(), quote(url)]);
        }
        line.join(" ")
    }

    /// `aws ARGS… [--endpoint-url URL --region REGION]`.
    pub fn aws<S: AsRef<str>>(&self, args: impl IntoIterator<Item = S>) -> String {
        let mut line = vec!["aws".to_owned()];
        line.extend(args.into_iter().map(|a| quote(a.as_ref())));
        if let Some(url) = &self.endpoint {
            line.extend([
                "--endpoint-url".to_owned(),
                quote(url),
                "--region".to_owned(),
                EMULATOR_REGION.to_owned(),
            ]);
        }
        line.join(" ")
    }
}

/// rotor as it was invoked (`target/debug/rotor`, a path), so that a command
/// runs where the one that printed it ran; `rotor` when it was found on PATH.
pub fn program() -> String {
    match std::env::args().next() {
        Some(invoked) if invoked.contains('/') => quote(&invoked),
        _ => "rotor".to_owned(),
    }
}

/// `arg` as one word for a POSIX shell: as it is when it holds nothing the
/// shell would read, else in single quotes.
pub fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_carry_the_endpoint_and_quote_what_needs_it() {
        let local = Commands::new(Some("http://127.0.0.1:5000"));
        let aws = local.aws(["secretsmanager", "rotate-secret", "--secret-id", "a b"]);
        assert_eq!(
            aws,
            "aws secretsmanager rotate-secret --secret-id 'a b' --endpoint-url http://127.0.0.1:5000 --region us-east-1"
        );
        assert!(
            local
                .rotor(["doctor", "it's"])
                .ends_with(" doctor 'it'\\''s' --endpoint http://127.0.0.1:5000")
        );
        let remote = Commands::new(None);
        assert_eq!(
            remote.aws(["lambda", "get-policy"]),
            "aws lambda get-policy"
        );
        assert_eq!(
            quote("arn:aws:x:1:secret:a/b-C+=,.@"),
            "arn:aws:x:1:secret:a/b-C+=,.@"
        );
        assert_eq!(quote(""), "''");
        assert_eq!(quote("Variables={A=1}"), "'Variables={A=1}'");
    }
}
