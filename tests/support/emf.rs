//! The metric documents in a function's output, read as CloudWatch Logs reads
//! them: a log event (one line) that is a JSON object with `_aws` at its root
//! is an embedded metric format document, and it must follow the format's
//! specification or CloudWatch publishes nothing from it.
//!
//! [`emitted`] fails the test if `_aws` appears on a line that is not such a
//! document (a document inside a log message, or split across lines), or if a
//! document breaks the specification: a timestamp that is not whole
//! milliseconds, a dimension set that names a missing or non-string value, a
//! metric without a number, a unit CloudWatch does not know, a namespace
//! other than rotor's.

use std::time::{Duration, Instant};

use rotor_cli::function::LocalFunction;
use serde_json::Value;

/// The units CloudWatch accepts.
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The metric documents a function printed, in order, and their lines.
#[derive(Clone, Debug, Default)]
pub struct Emitted {
    /// The documents.
    pub docs: Vec<Value>,
    /// Their lines as printed, for leak checks.
    pub lines: Vec<String>,
}

impl Emitted {
    /// The documents' lines, one per line.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The documents whose fields have these values (dimensions or properties).
    pub fn with(&self, fields: &[(&str, &str)]) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|doc| fields.iter().all(|(k, v)| doc[*k] == *v))
            .collect()
    }
}

/// Every metric document in `output`, each checked against the specification.
pub fn emitted(output: &str) -> Emitted {
    let mut found = Emitted::default();
    for line in output.lines() {
        if !line.contains("\"_aws\"") {
            continue;
        }
        let doc: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a line mentions _aws but is not JSON ({e}): {line}"));
        assert!(
            doc.get("_aws").is_some(),
            "_aws is not at the root of its line, so CloudWatch extracts nothing: {line}"
        );
        check(&doc);
        found.docs.push(doc);
        found.lines.push(line.to_owned());
    }
    found
}

/// The function's documents once it has printed at least `count` (its output
/// is read as it comes); fails the test after 10 s.
pub async fn await_emitted(function: &LocalFunction, count: usize) -> Emitted {
    let start = Instant::now();
    loop {
        let found = emitted(&function.output());
        if found.docs.len() >= count {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} printed {} metric documents, not {count}:\n{}",
            function.name(),
            found.docs.len(),
            function.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails the test unless `doc` is a valid embedded metric format document in
/// rotor's namespace.
pub fn check(doc: &Value) {
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].is_u64(),
        "Timestamp must be whole milliseconds: {doc}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no CloudWatchMetrics array: {doc}"));
    assert!(!directives.is_empty(), "no directive: {doc}");
    for directive in directives {
        assert_eq!(directive["Namespace"], "rotor", "{doc}");
        let sets = directive["Dimensions"]
            .as_array()
            .unwrap_or_else(|| panic!("no Dimensions array: {doc}"));
        for set in sets {
            let names = set
                .as_array()
                .unwrap_or_else(|| panic!("a dimension set is not an array: {doc}"));
            assert!(!names.is_empty() && names.len() <= 30, "{doc}");
            for name in names {
                let name = name.as_str().unwrap_or_else(|| panic!("{doc}"));
                let value = doc[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("dimension {name} has no string value: {doc}"));
                assert!(
                    !value.trim().is_empty() && value.len() <= 1024,
                    "dimension {name}: {doc}"
                );
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("no Metrics array: {doc}"));
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{doc}");
        for metric in metrics {
            let name = metric["Name"]
                .as_str()
                .unwrap_or_else(|| panic!("a metric without a name: {doc}"));
            let unit = metric["Unit"].as_str().unwrap_or("None");
            assert!(UNITS.contains(&unit), "unit {unit} of {name}: {doc}");
            assert!(
                doc[name].as_f64().is_some_and(f64::is_finite),
                "metric {name} has no number: {doc}"
            );
        }
    }
}

/// The dimension sets `metric` is published under in `doc`.
pub fn sets(doc: &Value, metric: &str) -> Vec<Vec<String>> {
    directive(doc, metric)
        .map(|d| serde_json::from_value(d["Dimensions"].clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// The unit of `metric` in `doc`, if `doc` publishes it.
pub fn unit(doc: &Value, metric: &str) -> Option<String> {
    let directive = directive(doc, metric)?;
    directive["Metrics"]
        .as_array()?
        .iter()
        .find(|m| m["Name"] == metric)
        .and_then(|m| m["Unit"].as_str())
        .map(str::to_owned)
}

fn directive<'a>(doc: &'a Value, metric: &str) -> Option<&'a Value> {
    doc["_aws"]["CloudWatchMetrics"]
        .as_array()?
        .iter()
        .find(|d| {
            d["Metrics"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["Name"] == metric))
        })
}

/// A dimension set, as [`sets`] lists them.
pub fn set(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
