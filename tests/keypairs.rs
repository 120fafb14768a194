//! generic-rotation's key-pair generators, checked by tools that are not the
//! code under test: openssl signs with the stored private key and verifies
//! with the stored public key (PEM), ssh-keygen does the same (OpenSSH), and
//! an OpenSSH key registered through the webhook logs in to a throwaway sshd
//! on 127.0.0.1, where the old key is refused once finishSecret revoked it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretStore, SecretString, Step};
use rotor_testbed::webhook_receiver::WebhookReceiver;
use rotor_tests::{moto_store, staged_secret, start_function, steps, token, unique, value};
use serde_json::{Value, json};

/// A directory of its own under the system's temporary one, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(unique("rotor-keys"));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes a file readable by its owner only (ssh refuses others).
    fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a tool; whether it succeeded. Its output is not shown: it may hold
/// a key.
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Rotates a secret whose `private_key` field is made by `spec` (public
/// key to `public_key`): AWSCURRENT's JSON afterwards.
async fn rotated(spec: &str) -> Value {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let t = token();
    let initial = json!({"user": "deploy", "private_key": "none yet"}).to_string();
    let tags = [
        ("rotor:fields", "private_key"),
        ("rotor:generate:private_key", spec),
    ];
    let arn = staged_secret(&store, &initial, &tags, &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let current = value(&store, &arn, AWSCURRENT).await.unwrap();
    assert!(
        !function.output().contains("PRIVATE KEY"),
        "no private key in the function's output"
    );
    serde_json::from_str(current.expose_secret()).unwrap()
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap()
}

#[tokio::test]
async fn pem_key_pairs_sign_and_verify_with_openssl() {
    for (spec, raw) in [
        ("ed25519 format=pem public=public_key", true),
        ("ecdsa-p256 public=public_key", false),
        ("rsa bits=2048 format=pem public=public_key", false),
    ] {
        let value = rotated(spec).await;
        let dir = Scratch::new();
        let private = dir.write("key.pem", field(&value, "private_key"));
        let public = dir.write("pub.pem", field(&value, "public_key"));
        let data = dir.write("data", "signed by rotor's key\n");
        let signature = dir.0.join("sig");
        let (sign, verify): (Vec<&str>, Vec<&str>) = if raw {
            (
                vec![
                    "pkeyutl",
                    "-sign",
                    "-rawin",
                    "-inkey",
                    text(&private),
                    "-in",
                    text(&data),
                    "-out",
                    text(&signature),
                ],
                vec![
                    "pkeyutl",
                    "-verify",
                    "-rawin",
                    "-pubin",
                    "-inkey",
                    text(&public),
                    "-in",
                    text(&data),
                    "-sigfile",
                    text(&signature),
                ],
            )
        } else {
            (
                vec![
                    "dgst",
                    "-sha256",
                    "-sign",
                    text(&private),
                    "-out",
                    text(&signature),
                    text(&data),
                ],
                vec![
                    "dgst",
                    "-sha256",
                    "-verify",
                    text(&public),
                    "-signature",
                    text(&signature),
                    text(&data),
                ],
            )
        };
        assert!(
            succeeds("openssl", &sign),
            "{spec}: openssl signs with the private key"
        );
        assert!(
            succeeds("openssl", &verify),
            "{spec}: openssl verifies with the public key"
        );
        // And the public key is the private key's, as openssl derives it.
        let derived = Command::new("openssl")
            .args(["pkey", "-in", text(&private), "-pubout"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&derived.stdout).trim(),
            field(&value, "public_key").trim(),
            "{spec}"
        );
        let other = dir.write("other.txt", "not what was signed\n");
        let mut tampered = verify.clone();
        let at = tampered.iter().position(|a| *a == text(&data)).unwrap();
        tampered[at] = text(&other);
        assert!(
            !succeeds("openssl", &tampered),
            "{spec}: a wrong message fails"
        );
    }
}

#[tokio::test]
async fn openssh_key_pairs_sign_and_verify_with_ssh_keygen() {
    for spec in [
        "ed25519 format=openssh public=public_key",
        "ecdsa-p256 format=openssh public=public_key",
        "rsa bits=3072 format=openssh public=public_key",
    ] {
        let value = rotated(spec).await;
        let dir = Scratch::new();
        let private = dir.write("id", field(&value, "private_key"));
        let public = field(&value, "public_key");
        let derived = Command::new("ssh-keygen")
            .args(["-y", "-f", text(&private)])
            .output()
            .unwrap();
        let derived = String::from_utf8_lossy(&derived.stdout);
        let words = |line: &str| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            words(&derived),
            words(public),
            "{spec}: ssh-keygen derives the stored public key"
        );
        let data = dir.write("data", "signed by rotor's key\n");
        let signers = dir.write("allowed_signers", &format!("rotor@test {public}\n"));
        assert!(
            succeeds(
                "ssh-keygen",
                &[
                    "-Y",
                    "sign",
                    "-q",
                    "-f",
                    text(&private),
                    "-n",
                    "file",
                    text(&data)
                ]
            ),
            "{spec}: ssh-keygen signs with the private key"
        );
        let signature = format!("{}.sig", text(&data));
        let verified = Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-f",
                text(&signers),
                "-I",
                "rotor@test",
                "-n",
                "file",
                "-s",
                &signature,
            ])
            .stdin(std::fs::File::open(&data).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(verified.success(), "{spec}: the stored public key verifies");
    }
}

/// A throwaway sshd on 127.0.0.1 whose authorized keys are the public keys
/// the webhook receiver holds; killed on drop.
struct Sshd {
    port: u16,
    authorized: PathBuf,
    child: std::process::Child,
}

impl Sshd {
    fn start(dir: &Scratch) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "sshd is missing: run scripts/setup.sh (openssh-server)"
        );
        let host_key = dir.0.join("host_key");
        assert!(succeeds(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", text(&host_key)]
        ));
        let authorized = dir.write("authorized_keys", "");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.write(
            "sshd_config",
            &format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n",
                text(&host_key),
                text(&authorized),
                text(&dir.0.join("sshd.pid")),
            ),
        );
        // Privilege separation needs its directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f", text(&config)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Sshd {
                    port,
                    authorized,
                    child,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sshd did not listen on port {port}");
    }

    /// Makes the receiver's registered public keys the authorized ones.
    fn authorize(&self, receiver: &WebhookReceiver) {
        let mut lines = String::new();
        for value in receiver.registrations().values() {
            let parsed: Value = serde_json::from_str(value.expose_secret()).unwrap();
            assert!(
                parsed.get("private_key").is_none(),
                "no private key was registered"
            );
            lines.push_str(parsed["public_key"].as_str().unwrap());
            lines.push('\n');
        }
        std::fs::write(&self.authorized, lines).unwrap();
    }

    /// Whether `ssh` logs in with the private key at `key`.
    fn logs_in(&self, key: &Path) -> bool {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        succeeds(
            "ssh",
            &[
                "-i",
                text(key),
                "-p",
                &self.port.to_string(),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=5",
                &format!("{user}@127.0.0.1"),
                "true",
            ],
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_ssh_key_registered_through_the_webhook_logs_in_and_the_old_one_is_refused() {
    let dir = Scratch::new();
    let sshd = Sshd::start(&dir);
    let store = moto_store();
    let key = SecretString::from(token());
    let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
        .await
        .unwrap();
    let key_secret = store
        .create_secret(&unique("ssh-hook-key"), &key, &[])
        .await
        .unwrap();
    let function = start_function(
        "generic-rotation",
        &[
            ("ROTOR_WEBHOOK_URL", &receiver.url()),
            ("ROTOR_WEBHOOK_KEY_SECRET", &key_secret),
            ("REVOKE_PREVIOUS", "at-finish"),
        ],
    )
    .await;

    // The key in place before rotor: made by ssh-keygen, registered by hand.
    let first = dir.0.join("first");
    assert!(succeeds(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", text(&first)]
    ));
    let first_public = std::fs::read_to_string(dir.0.join("first.pub")).unwrap();
    let initial = json!({
        "user": "deploy",
        "private_key": std::fs::read_to_string(&first).unwrap(),
        "public_key": first_public.trim(),
    });
    let t = token();
    let tags = [
        ("rotor:fields", "private_key"),
        (
            "rotor:generate:private_key",
            "ed25519 format=openssh public=public_key",
        ),
    ];
    let arn = staged_secret(&store, &initial.to_string(), &tags, &t).await;
    let described = store.describe(&arn).await.unwrap();
    let first_version = described.versions.current().unwrap().to_owned();
    let registered = json!({"user": "deploy", "public_key": first_public.trim()});
    receiver.register(&first_version, SecretString::from(registered.to_string()));
    sshd.authorize(&receiver);
    assert!(sshd.logs_in(&first), "the first key logs in");

    for step in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
        assert!(
            steps::run(&function, &arn, &t, step).await.is_ok(),
            "{step}"
        );
    }
    // Registered, not yet current: both keys work, as consumers switch over.
    sshd.authorize(&receiver);
    let pending: Value = serde_json::from_str(
        value(&store, &arn, "AWSPENDING")
            .await
            .unwrap()
            .expose_secret(),
    )
    .unwrap();
    let new = dir.write("new", field(&pending, "private_key"));
    assert!(sshd.logs_in(&new), "the new key logs in once registered");
    assert!(sshd.logs_in(&first));

    assert!(
        steps::run(&function, &arn, &t, Step::FinishSecret)
            .await
            .is_ok()
    );
    sshd.authorize(&receiver);
    assert!(sshd.logs_in(&new), "the current key logs in");
    assert!(
        !sshd.logs_in(&first),
        "the previous key is refused after its revoke"
    );
    assert!(value(&store, &arn, AWSPREVIOUS).await.is_some());
    assert!(
        !function.output().contains("PRIVATE KEY"),
        "no private key in the function's output"
    );
}
