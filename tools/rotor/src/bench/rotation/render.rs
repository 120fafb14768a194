//! The Markdown report of a rotation target's runs.

use super::fixture::Database;
use super::*;

pub(super) fn render(
    options: &BenchOptions,
    fixture: &Fixture,
    binary_size: u64,
    runs: &[Run],
) -> String {
    let mut out = String::new();
    let kinds = &fixture.kinds;
    let subject = match kinds.as_slice() {
        [only] => format!(" of {}", only.noun),
        _ => {
            let each: Vec<String> = kinds
                .iter()
                .enumerate()
                .map(|(k, kind)| {
                    let n = runs.iter().filter(|r| r.kind == k).count();
                    format!("{} ({n} runs)", kind.noun)
                })
                .collect();
            format!(", alternating {}", each.join(" and "))
        }
    };
    let (strategy, against, checked) = match &fixture.database {
        None if fixture.iam.is_some() => (
            String::new(),
            format!(
                "against moto {} on 127.0.0.1 for Secrets Manager, and a second moto server for IAM and STS with authentication on (it verifies signatures against the keys it issued)",
                moto_version()
            ),
            " After each run, AWSCURRENT's key signs in at STS as the user, and the user holds at most two keys; IAM and STS calls (6 a rotation) are not in the calls table.".to_owned(),
        ),
        None => (
            String::new(),
            format!("against moto {} on 127.0.0.1", moto_version()),
            String::new(),
        ),
        Some(database) => (
            match database {
                Database::Redis(_) => " (the admin secret named by `MASTER_SECRET_ARN`)",
                Database::Ldap(_) => " (the account changes its own password over StartTLS)",
                _ => " (`ROTATION_STRATEGY=single`)",
            }
            .to_owned(),
            format!(
                "against moto {} and a throwaway {} server on 127.0.0.1 with TLS required (the function verifies its certificate against the server's test CA, given as `SSL_CERT_FILE`)",
                moto_version(),
                database.version()
            ),
            format!(
                " After each run, {} logs in with the new AWSCURRENT password, which differs from the previous one.",
                database.client()
            ),
        ),
    };
    let _ = writeln!(
        out,
        "`{}`\n\n{} runs, each a fresh `{}` process doing one full rotation{strategy}{subject}, {against}. Each secret was rotated once beforehand, unmeasured, so every run is a steady-state rotation.{checked}\n",
        options.command_line,
        runs.len(),
        options
            .function
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
    );

    let _ = writeln!(out, "| Measure | median | min | max |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let mut row = |label: &str, values: Vec<f64>, decimals: usize| {
        let (median, min, max) = summary(values);
        let _ = writeln!(
            out,
            "| {label} | {median:.decimals$} | {min:.decimals$} | {max:.decimals$} |"
        );
    };
    row(
        "Cold start: spawn → first Runtime API poll (ms)",
        runs.iter().map(|r| ms(r.cold_start)).collect(),
        1,
    );
    row(
        "Spawn → first response, createSecret answered (ms)",
        runs.iter().map(|r| ms(r.first_response)).collect(),
        1,
    );
    for (i, step) in Step::ALL.iter().enumerate() {
        row(
            &format!("`{}` (ms)", step.as_str()),
            runs.iter().map(|r| ms(r.steps[i])).collect(),
            1,
        );
    }
    row(
        "Whole rotation, four steps (ms)",
        runs.iter().map(|r| ms(r.steps.iter().sum())).collect(),
        1,
    );
    row(
        "Peak RSS, `VmHWM` (MiB)",
        runs.iter().map(|r| r.peak_rss_kb as f64 / 1024.0).collect(),
        1,
    );

    // Calls per rotation, by operation and kind of secret; a range if runs differed.
    let operations: std::collections::BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.calls.keys().map(String::as_str))
        .collect();
    let cell = |kind: usize, count: &dyn Fn(&Run) -> u32| {
        let counts: Vec<u32> = runs.iter().filter(|r| r.kind == kind).map(count).collect();
        match (counts.iter().min(), counts.iter().max()) {
            (Some(min), Some(max)) if min == max => min.to_string(),
            (Some(min), Some(max)) => format!("{min}–{max}"),
            _ => "–".into(),
        }
    };
    let cells = |count: &dyn Fn(&Run) -> u32, bold: bool| {
        (0..kinds.len())
            .map(|k| {
                let text = cell(k, count);
                if bold { format!("**{text}**") } else { text }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let labels: Vec<&str> = kinds.iter().map(|k| k.label).collect();
    let _ = writeln!(
        out,
        "\n| Secrets Manager calls per rotation (by the function) | {} |",
        labels.join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---:|".repeat(kinds.len()));
    for operation in &operations {
        let count = |r: &Run| r.calls.get(*operation).copied().unwrap_or(0);
        let _ = writeln!(out, "| `{operation}` | {} |", cells(&count, false));
    }
    let total = |r: &Run| r.calls.values().sum::<u32>();
    let _ = writeln!(out, "| **total** | {} |", cells(&total, true));

    setup_table(&mut out, "Function", &options.function, binary_size);
    let _ = writeln!(
        out,
        "\nSpawn → first response is the time to the first poll plus createSecret's invocation (queued → answered); rotor's own staging calls in between, while the function idles in its poll, are left out. Step times are from queueing the invocation to the function's answer. The function reaches moto through a local counting proxy, which adds a little to each of its calls."
    );
    out
}
