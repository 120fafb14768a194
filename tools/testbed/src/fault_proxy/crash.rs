//! Crash plans: which call of a rotation the function dies at, counted across
//! every proxy that shares the plan, and how a call is named in the report.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// When a crash plan kills the function, relative to its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum When {
    /// The call never reaches the dependency.
    Before,
    /// The dependency has acted on the call and answered; the function dies
    /// before it reads the answer.
    After,
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            When::Before => "before",
            When::After => "after",
        })
    }
}

/// Kill the function with SIGKILL at its `at`-th call (counted from 1 across
/// every proxy that shares the plan), [`When::Before`] or [`When::After`] it.
#[derive(Debug)]
pub struct CrashPlan {
    at: u64,
    pub(super) when: When,
    calls: AtomicU64,
    victim: AtomicU32,
    fired: Mutex<Option<String>>,
}

impl CrashPlan {
    /// A plan that kills at call `at`; set the victim before the rotation starts.
    pub fn new(at: u64, when: When) -> Arc<CrashPlan> {
        Arc::new(CrashPlan {
            at,
            when,
            calls: AtomicU64::new(0),
            victim: AtomicU32::new(0),
            fired: Mutex::new(None),
        })
    }

    /// The process to kill.
    pub fn set_victim(&self, pid: u32) {
        self.victim.store(pid, Ordering::SeqCst);
    }

    /// Where the plan killed the function (for example `before call 7: moto
    /// PutSecretValue`), or `None` if the rotation made fewer calls.
    pub fn fired(&self) -> Option<String> {
        self.fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many calls the function made through the plan's proxies.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call; whether it is the one to crash at.
    pub(super) fn count(&self) -> Option<u64> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        (n == self.at).then_some(n)
    }

    /// Kills the victim at once (SIGKILL) and records where.
    pub(super) fn kill(&self, what: String) {
        let pid = self.victim.load(Ordering::SeqCst);
        if pid != 0 {
            // `kill` returns once the signal is queued; a SIGKILLed process runs no
            // more of its own code after that.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        *self.fired.lock().unwrap_or_else(PoisonError::into_inner) = Some(what);
    }
}

/// A chunk in words: the Secrets Manager operation of an HTTP request to moto,
/// or its size (TLS records say nothing more).
pub(super) fn describe(chunk: &[u8]) -> String {
    let text = String::from_utf8_lossy(&chunk[..chunk.len().min(4096)]);
    let target = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-target")
            .then(|| value.trim().rsplit('.').next().unwrap_or("").to_owned())
    });
    match target {
        Some(operation) => operation,
        None if text.starts_with("POST ") || text.starts_with("GET ") => {
            text.lines().next().unwrap_or("").to_owned()
        }
        None => format!("{} bytes", chunk.len()),
    }
}
