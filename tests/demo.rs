//! The README's first command runs `rotor demo`: every function rotates a
//! secret on real servers, a stuck rotation is diagnosed and repaired by
//! `rotor doctor`, and the metrics the functions printed are read back. This
//! runs the demo as the command does and checks that its report says so.

use rotor_cli::function::function_binary;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_rotates_with_every_function_repairs_a_stuck_rotation_and_shows_metrics() {
    let out = tokio::process::Command::new(function_binary("rotor"))
        .arg("demo")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run rotor demo; build it first with cargo build --workspace --bins");
    let report = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rotor demo failed: {report}\n{errors}"
    );
    for function in [
        "generic-rotation",
        "rds-rotation",
        "oauth-rotation",
        "redis-rotation",
        "ldap-rotation",
        "iam-rotation",
    ] {
        assert!(
            report.contains(&format!("\n{function}")),
            "{function} has no section: {report}"
        );
        assert!(
            report.contains(&format!("  {function}: ")) && report.contains("documents; Steps"),
            "no metrics of {function}: {report}"
        );
    }
    assert!(
        report.contains("pending-with-value (stuck)") && report.contains("findings now: none"),
        "no doctor repair: {report}"
    );
    let last = report.lines().last().unwrap_or_default();
    let (completed, total) = last
        .split_once(" rotations completed")
        .and_then(|(counts, _)| counts.split_once(" of "))
        .expect("a closing line with the counts");
    assert_eq!(completed, total, "{report}");
    assert!(last.ends_with("none found"), "{report}");
}
