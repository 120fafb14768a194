//! What the demo's rotations told CloudWatch: every function prints its
//! metrics as embedded metric format documents on stdout (one JSON line each,
//! `_aws` at the root), which CloudWatch Logs turns into metrics of namespace
//! `rotor`. The demo reads them back from each function's output, as
//! CloudWatch would, and sums them up per function.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rotor_core::metrics::{dimensions, names};
use serde_json::{Map, Value};

/// The metrics of one function's runs.
#[derive(Default)]
struct Figures {
    documents: usize,
    /// `Steps` per `Outcome` (Success, Retryable, NotRetryable).
    steps: BTreeMap<String, f64>,
    completed: f64,
    slowest_step_ms: f64,
    longest_rotation_ms: f64,
    /// Every other metric the function printed, by name: how many documents.
    others: BTreeMap<String, usize>,
}

/// The metric documents of every function the demo ran, by binary.
#[derive(Default)]
pub(super) struct Tally {
    by_function: BTreeMap<String, Figures>,
}

impl Tally {
    /// Reads the documents in one function's output (its stdout and stderr
    /// lines); anything else on those lines is a log line and is passed over.
    pub(super) fn add(&mut self, function: &str, output: &str) {
        for line in output.lines() {
            let Ok(Value::Object(document)) = serde_json::from_str::<Value>(line.trim()) else {
                continue;
            };
            if !document.contains_key("_aws") {
                continue;
            }
            let figures = self.by_function.entry(function.to_owned()).or_default();
            figures.documents += 1;
            for name in metric_names(&document) {
                let value = document.get(&name).and_then(Value::as_f64).unwrap_or(0.0);
                match name.as_str() {
                    names::STEPS => {
                        let outcome = document
                            .get(dimensions::OUTCOME)
                            .and_then(Value::as_str)
                            .unwrap_or("?");
                        *figures.steps.entry(outcome.to_owned()).or_default() += value;
                    }
                    names::ROTATIONS_COMPLETED => figures.completed += value,
                    names::STEP_DURATION => {
                        figures.slowest_step_ms = figures.slowest_step_ms.max(value);
                    }
                    names::ROTATION_DURATION => {
                        figures.longest_rotation_ms = figures.longest_rotation_ms.max(value);
                    }
                    _ => *figures.others.entry(name).or_default() += 1,
                }
            }
        }
    }

    /// The report's closing section: a line per function.
    pub(super) fn report(&self) -> String {
        let mut out = String::from(
            "\nmetrics the functions printed (CloudWatch embedded metric format, namespace rotor; \
             the template's dashboard and alarms read them):\n",
        );
        for (function, f) in &self.by_function {
            let steps: Vec<String> = f.steps.iter().map(|(o, n)| format!("{n} {o}")).collect();
            let _ = write!(
                out,
                "  {function}: {} documents; Steps {}; RotationsCompleted {}; \
                 slowest step {:.0} ms; longest rotation {:.0} ms",
                f.documents,
                steps.join(", "),
                f.completed,
                f.slowest_step_ms,
                f.longest_rotation_ms
            );
            if !f.others.is_empty() {
                let others: Vec<&str> = f.others.keys().map(String::as_str).collect();
                let _ = write!(out, "; also {}", others.join(", "));
            }
            out.push('\n');
        }
        out
    }

    /// Whether any function printed no document at all.
    pub(super) fn is_empty(&self) -> bool {
        self.by_function.values().all(|f| f.documents == 0)
    }
}

/// The names of the metrics a document declares, each once (a metric stands
/// in several dimension sets of one directive, with one value).
fn metric_names(document: &Map<String, Value>) -> Vec<String> {
    let mut found: Vec<String> = document["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|directive| directive["Metrics"].as_array().into_iter().flatten())
        .filter_map(|metric| metric["Name"].as_str().map(str::to_owned))
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_steps_by_outcome_and_keeps_the_slowest() {
        let document = |outcome: &str, ms: u32| {
            format!(
                r#"{{"_aws":{{"Timestamp":1,"CloudWatchMetrics":[{{"Namespace":"rotor","Dimensions":[["Function","Outcome"],["Function","Step","Outcome"]],"Metrics":[{{"Name":"Steps","Unit":"Count"}},{{"Name":"StepDuration","Unit":"Milliseconds"}}]}}]}},"Function":"f","Outcome":"{outcome}","Steps":1,"StepDuration":{ms}}}"#
            )
        };
        let output = format!(
            "{}\nnot json\n{{\"level\":\"WARN\"}}\n{}\n{}\n",
            document("Success", 12),
            document("Success", 40),
            document("Retryable", 7)
        );
        let mut tally = Tally::default();
        tally.add("generic-rotation", &output);
        let report = tally.report();
        assert!(report.contains("generic-rotation: 3 documents"), "{report}");
        assert!(report.contains("Steps 1 Retryable, 2 Success"), "{report}");
        assert!(report.contains("slowest step 40 ms"), "{report}");
        assert!(!tally.is_empty());
    }
}
