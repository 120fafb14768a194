//! Replays every fuzz target's check without cargo-fuzz: on each committed input
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) and on a few thousand
//! cheap mutations of each, so a change that breaks what the fuzzer once
//! established fails the test command in seconds, not after a 15-minute
//! instrumented build.
//!
//! The mutations come from a seeded generator: the same inputs on every run, so
//! a failure here can always be reproduced. They are no substitute for the
//! coverage-guided search (`scripts/fuzz.sh`); they only shake the seeds.
//!
//! A failure names the target, the input file (a mutated input is saved to a
//! file first) and where the check panicked. The panic's message is printed only
//! when it comes from the checks' own assertions, which name parsed fields but
//! never a secret value; a panic inside the code under test may quote its input.

use std::cell::{Cell, RefCell};
use std::fs;
use std::io::Write;
use std::panic::{self, PanicHookInfo};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs made from each committed input.
const MUTATIONS_PER_INPUT: usize = 5_000;

/// At most this many failing mutations are saved and listed per target.
const MAX_REPORTED_MUTATIONS: usize = 10;

/// One `#[test]` per fuzz target, named after it, plus the list of all targets.
macro_rules! targets {
    ($($target:ident),* $(,)?) => {
        const TARGETS: &[&str] = &[$(stringify!($target)),*];
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), rotor_fuzz_checks::$target);
            }
        )*
    };
}

targets!(
    rotation_event,
    rds_secret,
    redis_secret,
    oauth_client,
    generic_settings,
    password_policy,
    scheduler_policy,
    ldap_secret,
    scheduler_window,
    iam_secret,
);

/// The fuzz workspace's directory, which holds the inputs.
fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/checks has a parent directory")
}

/// A committed input, named by its path under `fuzz/`.
struct Input {
    name: String,
    bytes: Vec<u8>,
}

/// Every file in `fuzz/<kind>/<target>/`, by name; none if the directory does
/// not exist.
fn inputs(kind: &str, target: &str) -> Vec<Input> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| Input {
            name: format!("{kind}/{target}/{}", path.file_name().unwrap().display()),
            bytes: fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
        })
        .collect()
}

thread_local! {
    /// Set while a check runs on this thread: its panic is recorded, not printed.
    static IN_CHECK: Cell<bool> = const { Cell::new(false) };
    /// What the last check to panic on this thread said, as it may be shown.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook, once per process, by one that keeps quiet about
/// panics inside a check and hands every other panic to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CHECK.get() {
                PANIC.set(Some(describe(info)));
            } else {
                previous(info);
            }
        }));
    });
}

/// Where a check panicked, and its message when the checks' own code raised it.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let Some(location) = info.location() else {
        return "panicked at an unknown location".to_owned();
    };
    if !location.file().ends_with("checks/src/lib.rs") {
        return format!(
            "panicked at {location} (message not shown, as it may quote the input: \
             replay the input file with `cargo fuzz run` to see it)"
        );
    }
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("panicked at {location}: {message}")
}

/// Runs `check` on `bytes`, returning what its panic said if it panicked.
fn run(check: fn(&[u8]), bytes: &[u8]) -> Result<(), String> {
    IN_CHECK.set(true);
    let outcome = panic::catch_unwind(|| check(bytes));
    IN_CHECK.set(false);
    outcome.map_err(|_| {
        PANIC
            .take()
            .unwrap_or_else(|| "panicked (no report)".to_owned())
    })
}

/// Bytes that steer a mutation towards the inputs' syntax: JSON, `key=value`
/// lines, durations and numbers.
const SYNTAX: &[u8] = b"{}[]\":,= \n\\-.0123456789tfnuesdhm\x00\xff";

/// A copy of `input` changed by one to four cheap edits, libFuzzer-style. A
/// splice joins it with another input of the same target from `pool`.
fn mutate(rng: &mut StdRng, input: &[u8], pool: &[Input]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let byte = if rng.random_bool(0.5) {
            SYNTAX[rng.random_range(0..SYNTAX.len())]
        } else {
            rng.random()
        };
        if data.is_empty() {
            data.push(byte);
            continue;
        }
        let at = rng.random_range(0..data.len());
        match rng.random_range(0..7) {
            0 => data[at] ^= 1 << rng.random_range(0..8),
            1 => data[at] = byte,
            2 => data.insert(rng.random_range(0..=data.len()), byte),
            3 => {
                let end = (at + rng.random_range(1..=8)).min(data.len());
                data.drain(at..end);
            }
            4 => {
                let end = (at + rng.random_range(1..=16)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.random_range(0..=data.len());
                data.splice(to..to, copy);
            }
            5 => data.truncate(at),
            _ => {
                let other = &pool[rng.random_range(0..pool.len())].bytes;
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

/// A generator seed of its own for each target (FNV-1a of its name), so adding
/// a target changes no other target's inputs.
fn rng_for(target: &str) -> StdRng {
    let hash = target
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    StdRng::seed_from_u64(hash)
}

/// Saves a failing mutated input where cargo's test scratch space is, and
/// returns its path, so it can be replayed and promoted to fuzz/regressions/.
fn save(target: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-replay")
        .join(target);
    fs::create_dir_all(&dir).expect("creating the directory for failing inputs");
    let path = dir.join(name);
    fs::write(&path, bytes).expect("saving a failing input");
    path
}

/// Runs `check` on every committed input of `target` and on their mutations,
/// reports how many ran, and fails naming every input that made it panic.
fn replay(target: &str, check: fn(&[u8])) {
    install_panic_hook();
    let started = Instant::now();
    let seeds = inputs("seeds", target);
    assert!(
        !seeds.is_empty(),
        "{target}: no seeds in fuzz/seeds/{target}/; the replay needs at least one"
    );
    let regressions = inputs("regressions", target);
    let (seed_count, regression_count) = (seeds.len(), regressions.len());
    let committed: Vec<Input> = seeds.into_iter().chain(regressions).collect();

    let mut failures = Vec::new();
    for input in &committed {
        if let Err(panic) = run(check, &input.bytes) {
            failures.push(format!("fuzz/{}: {panic}", input.name));
        }
    }

    let mut rng = rng_for(target);
    let mut mutations = 0;
    let mut failed_mutations = 0;
    for input in &committed {
        for n in 0..MUTATIONS_PER_INPUT {
            let bytes = mutate(&mut rng, &input.bytes, &committed);
            mutations += 1;
            let Err(panic) = run(check, &bytes) else {
                continue;
            };
            failed_mutations += 1;
            if failed_mutations <= MAX_REPORTED_MUTATIONS {
                let file = format!("{}.mutation-{n}", input.name.replace('/', "."));
                let saved = save(target, &file, &bytes);
                failures.push(format!(
                    "mutation {n} of fuzz/{}, saved as {}: {panic}",
                    input.name,
                    saved.display()
                ));
            }
        }
    }
    let failed = failures.len() + failed_mutations.saturating_sub(MAX_REPORTED_MUTATIONS);
    if failed_mutations > MAX_REPORTED_MUTATIONS {
        failures.push(format!(
            "and {} more failing mutations",
            failed_mutations - MAX_REPORTED_MUTATIONS
        ));
    }

    // Straight to stderr, not through eprintln!, which the test harness
    // captures: the counts are worth seeing on every run.
    let _ = writeln!(
        std::io::stderr(),
        "replay {target}: {} inputs ({seed_count} seeds, {regression_count} regressions, \
         {mutations} mutations) in {:.1?}",
        committed.len() + mutations,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{target}: the check failed on {} inputs:\n  {}\n\
         Once fixed, add the input to fuzz/regressions/{target}/ (see fuzz/regressions/README.md).",
        failed,
        failures.join("\n  ")
    );
}

/// The fuzz targets, the input directories and this test name the same
/// targets: a new target gets replayed, and a misnamed directory is not
/// silently skipped.
#[test]
fn every_target_is_replayed() {
    let names = |dir: &str, want_dirs: bool| -> Vec<(String, PathBuf)> {
        let Ok(entries) = fs::read_dir(fuzz_dir().join(dir)) else {
            return Vec::new();
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .map(|entry| entry.expect("a readable directory entry").path())
            .filter(|path| path.is_dir() == want_dirs)
            .filter_map(|path| {
                let stem = path.file_stem()?.to_str()?.to_owned();
                Some((stem, path))
            })
            .collect();
        names.sort();
        names
    };

    let fuzz_targets: Vec<(String, PathBuf)> = names("fuzz_targets", false)
        .into_iter()
        .filter(|(_, path)| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    for (target, path) in &fuzz_targets {
        assert!(
            TARGETS.contains(&target.as_str()),
            "fuzz/fuzz_targets/{target}.rs has no replay test: add it to `targets!` in {}",
            file!()
        );
        let source = fs::read_to_string(path).expect("reading a fuzz target");
        assert!(
            source.contains(&format!("rotor_fuzz_checks::{target}(data)")),
            "fuzz/fuzz_targets/{target}.rs must only call rotor_fuzz_checks::{target}"
        );
    }
    for target in TARGETS {
        assert!(
            fuzz_targets.iter().any(|(name, _)| name == target),
            "{target} is replayed but fuzz/fuzz_targets/{target}.rs does not exist"
        );
    }
    for kind in ["seeds", "regressions"] {
        for (dir, _) in names(kind, true) {
            assert!(
                TARGETS.contains(&dir.as_str()),
                "fuzz/{kind}/{dir}/ names no fuzz target, so nothing replays it"
            );
        }
    }
}
