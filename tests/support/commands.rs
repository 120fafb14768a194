//! Running the commands rotor prints for people (a repair, a resume, the
//! doctor to run next) exactly as printed: each one in `sh`, where `rotor` is
//! the binary under test (printed by its path) and `aws` is the AWS CLI with
//! throwaway credentials, as a person with an emulator would have them.

use std::path::{Path, PathBuf};
use std::process::Output;

use rotor_cli::function::function_binary;

/// The `rotor` binary under test, by the path it prints in its commands.
pub fn rotor_path() -> PathBuf {
    function_binary("rotor")
}

/// Whether `command` is one to run: it starts with rotor's path, `rotor `
/// or `aws `.
pub fn is_command(command: &str) -> bool {
    let rotor = rotor_path().display().to_string();
    command.starts_with(&format!("{rotor} "))
        || command.starts_with("rotor ")
        || command.starts_with("aws ")
}

/// The commands in `text`: lines (or the rest of lines after `fix: ` or a
/// backquote) that are commands by [`is_command`]. A command in backquotes
/// ends at the closing one.
pub fn printed_commands(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("fix: ").unwrap_or(line);
        if is_command(line) {
            found.push(line.trim_end().to_owned());
            continue;
        }
        for quoted in line.split('`').skip(1).step_by(2) {
            if is_command(quoted) {
                found.push(quoted.to_owned());
            }
        }
    }
    found
}

/// Whether the AWS CLI is installed here.
pub fn aws_cli_available() -> bool {
    std::process::Command::new("aws")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `command` in `sh` in `dir`, as printed, with `input` on its stdin (a
/// person answering a prompt).
pub async fn run_printed(command: &str, dir: &Path, input: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", "rotor-local")
        .env("AWS_SECRET_ACCESS_KEY", "rotor-local")
        .env("AWS_PAGER", "")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run sh");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    child.wait_with_output().await.expect("wait for sh")
}
