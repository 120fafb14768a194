//! rotor-core as a library others build on. Its example function
//! (shared/examples/key_file_rotation.rs), as a team building on the crate
//! would run it: the binary serving the four steps over the Lambda Runtime API
//! against moto, and its `check` mode passing rotor-core's exported contract
//! suites against moto. And the `testing` feature's boundary: no function
//! binary compiles it.
//!
//! The example binary is built by `cargo build --workspace --examples` (the
//! test command does) or `cargo build -p rotor-core --examples`.

use std::path::{Path, PathBuf};

use rotor_cli::function::function_binary;
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString, Step};
use rotor_testbed::moto::{local_env, workspace_root};
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto, moto_store, staged_secret_named, start_function,
    steps, token, unique, value,
};
use sha2::{Digest, Sha256};

const EXAMPLE: &str = "examples/key_file_rotation";

/// The packages whose binaries template.yaml deploys.
const FUNCTIONS: [&str; 5] = [
    "generic-rotation",
    "rds-rotation",
    "oauth-rotation",
    "redis-rotation",
    "rotation-scheduler",
];

/// The example's binary; a clear failure if it was not built.
fn example_binary() -> PathBuf {
    let binary = function_binary(EXAMPLE);
    assert!(
        binary.is_file(),
        "{} is missing: build it with cargo build --workspace --examples",
        binary.display()
    );
    binary
}

/// The digests the key file lists for `secret`.
fn listed(file: &Path, secret: &str) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(name, _)| *name == secret)
        .map(|(_, key)| key.to_owned())
        .collect()
}

fn digest(key: &SecretString) -> String {
    hex::encode(Sha256::digest(key.expose_secret().as_bytes()))
}

/// Two rotations with every step run twice: the new key is listed from
/// setSecret on, the previous key stays listed until the next rotation
/// promotes another, and the file never holds a key, only digests.
#[tokio::test]
async fn the_example_function_rotates_over_the_runtime_api() {
    example_binary();
    let dir = std::env::temp_dir().join(unique("example"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys");
    let name = unique("example-key");
    let first = SecretString::from(unique("first-key"));
    std::fs::write(&file, format!("{name} {}\n", digest(&first))).unwrap();

    let store = moto_store();
    let function = start_function(EXAMPLE, &[("KEY_FILE", file.to_str().unwrap())]).await;
    let t1 = token();
    let arn = staged_secret_named(&store, &name, first.expose_secret(), &[], &t1).await;
    steps::replay(&function, &arn, &t1, &Step::ALL).await;
    let second = value(&store, &arn, AWSCURRENT).await.unwrap();
    assert_eq!(
        labels(&store, &arn).await.get(&t1),
        Some(&vec![AWSCURRENT.to_owned()])
    );
    assert!(first.expose_secret() != second.expose_secret());
    let mut keys = listed(&file, &name);
    keys.sort();
    let mut expected = vec![digest(&first), digest(&second)];
    expected.sort();
    assert_eq!(keys, expected, "both the current and the previous key work");

    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(&function, &arn, &t2, &Step::ALL).await;
    let third = value(&store, &arn, AWSCURRENT).await.unwrap();
    let previous = value(&store, &arn, AWSPREVIOUS).await.unwrap();
    assert!(previous.expose_secret() == second.expose_secret());
    let mut keys = listed(&file, &name);
    keys.sort();
    let mut expected = vec![digest(&second), digest(&third)];
    expected.sort();
    assert_eq!(keys, expected, "the first key is no longer listed");

    let text = std::fs::read_to_string(&file).unwrap();
    for key in [&first, &second, &third] {
        assert!(
            !text.contains(key.expose_secret()),
            "the key file holds a key"
        );
    }
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `key_file_rotation check` runs the store contract on moto and the rotator
/// contract on the example's rotator, and passes.
#[tokio::test]
async fn the_example_passes_the_contract_suites_against_moto() {
    let output = tokio::process::Command::new(example_binary())
        .arg("check")
        .envs(local_env(moto().endpoint()))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let passed = |suite: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with(&format!("ok   {suite}::")))
            .count()
    };
    assert_eq!(
        passed("store_contract"),
        rotor_core::testing::store_contract::Check::ALL.len(),
        "{stdout}"
    );
    assert_eq!(
        passed("rotator_contract"),
        rotor_core::testing::rotator_contract::Check::ALL.len(),
        "{stdout}"
    );
}

/// Outside an emulator, `check` refuses to start: it would point real
/// secrets' rotation at a function that does not exist.
#[tokio::test]
async fn the_example_check_refuses_to_run_without_an_emulator() {
    let output = tokio::process::Command::new(example_binary())
        .arg("check")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("against an emulator only"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// No function binary compiles rotor-core's `testing` feature (the in-memory
/// store, the staging of a rotation on an emulator, the contract suites):
/// only tests, the CLI and the example ask for it. Read from cargo's own
/// feature resolution for each function built alone, as a release build is.
#[test]
fn no_function_compiles_the_testing_feature() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for function in FUNCTIONS {
        let output = std::process::Command::new(&cargo)
            .args(["tree", "--locked", "-e", "features,no-dev", "-p", function])
            .current_dir(workspace_root())
            .output()
            .unwrap();
        let tree = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && tree.contains("rotor-core feature \"default\""),
            "cargo tree -p {function}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !tree.contains("rotor-core feature \"testing\""),
            "{function} compiles rotor-core's testing feature:\n{tree}"
        );
    }
}
