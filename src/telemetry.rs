//! Logging and metrics plumbing shared by every binary: JSON `tracing` logs on stderr for the
//! functions, quiet human ones for the CLI (`init_cli`), error
//! cause chains flattened into one line, CloudWatch embedded-metric-format (EMF) lines, and
//! the process's count of store contention (conflicts and throttles) that the functions report
//! as metrics.

use std::error::Error;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::domain::common::timestamp::Timestamp;

/// Installs the global subscriber: JSON lines on stderr, level from `RUST_LOG` (default
/// `info`). Call once, first thing in `main`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .with_target(false)
        .init();
}

/// Logging for the command line: quiet and human by default — warnings and errors only —
/// `verbosity` 1 adds `info`, 2 and more `debug`; `json` writes one object per line. `RUST_LOG`
/// overrides the level.
pub fn init_cli(verbosity: u8, json: bool) {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.without_time().init();
    }
}

/// How often the store pushed back since the last report: conditional writes and
/// transactions that lost a race and were retried (`conflicts`), and requests refused for
/// throughput (`throttles`). Counted where it happens (the store adapters), reported by each
/// function once per invocation as EMF metrics (`store_conflicts`, `store_throttles`, by
/// `component` = `store`, and by function), which the template alarms on.
#[derive(Debug, Default)]
pub struct Contention {
    conflicts: std::sync::atomic::AtomicU64,
    throttles: std::sync::atomic::AtomicU64,
}

/// This process's contention counts.
pub static CONTENTION: Contention = Contention {
    conflicts: std::sync::atomic::AtomicU64::new(0),
    throttles: std::sync::atomic::AtomicU64::new(0),
};

impl Contention {
    /// A write lost a race and is retried.
    pub fn conflict(&self) {
        self.conflicts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A request was refused for throughput.
    pub fn throttle(&self) {
        self.throttles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts since the last call, `(conflicts, throttles)`, starting again from zero.
    pub fn take(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.conflicts.swap(0, Relaxed),
            self.throttles.swap(0, Relaxed),
        )
    }

    /// The EMF line of [`Self::take`] for `function`, when there is anything to report.
    pub fn report(&self, function: &str, at: Timestamp) -> Option<String> {
        let (conflicts, throttles) = self.take();
        (conflicts + throttles > 0).then(|| {
            emf_line(
                at,
                &[("component", "store"), ("function", function)],
                &[
                    ("store_conflicts", conflicts),
                    ("store_throttles", throttles),
                ],
            )
        })
    }
}

/// Prevention's DNS questions since the last report: asked, and left unanswered (the mail went:
/// prevention fails open). Reported by the sender once per invocation as EMF metrics
/// (`dns_lookups`, `dns_unknown`, by `component` = `dns`).
#[derive(Debug, Default)]
pub struct DnsLookups {
    asked: std::sync::atomic::AtomicU64,
    unknown: std::sync::atomic::AtomicU64,
}

/// This process's DNS counts.
pub static DNS: DnsLookups = DnsLookups {
    asked: std::sync::atomic::AtomicU64::new(0),
    unknown: std::sync::atomic::AtomicU64::new(0),
};

impl DnsLookups {
    /// Counts a batch's questions: `asked` of DNS, `unknown` of them unanswered.
    pub fn count(&self, asked: u64, unknown: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.asked.fetch_add(asked, Relaxed);
        self.unknown.fetch_add(unknown, Relaxed);
    }

    /// The EMF line of the counts since the last call, when there is anything to report.
    pub fn report(&self, function: &str, at: Timestamp) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let (asked, unknown) = (self.asked.swap(0, Relaxed), self.unknown.swap(0, Relaxed));
        (asked > 0).then(|| {
            emf_line(
                at,
                &[("component", "dns"), ("function", function)],
                &[("dns_lookups", asked), ("dns_unknown", unknown)],
            )
        })
    }
}

/// `error: cause: cause` — the whole chain on one line, for logs and client messages.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// One CloudWatch EMF document: `metrics` (name, count) under namespace `sesguard` with the
/// given dimensions, as the single JSON line CloudWatch turns into metrics. Every prefix of
/// the dimensions is declared as a dimension set, so `[function, stream, account]` gives
/// metrics per function, per stream and per stream and account.
pub fn emf_line(at: Timestamp, dimensions: &[(&str, &str)], metrics: &[(&str, u64)]) -> String {
    let metrics: Vec<(&str, f64, &str)> = metrics
        .iter()
        .map(|(name, value)| (*name, *value as f64, "Count"))
        .collect();
    emf_document(at, dimensions, &metrics)
}

/// [`emf_line`] with any values and units: `(name, value, unit)`, unit as CloudWatch names
/// them (`Count`, `Percent`, `None`).
pub fn emf_document(
    at: Timestamp,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, &str)],
) -> String {
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.as_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "sesguard",
                "Dimensions": (1..=dimensions.len())
                    .map(|n| dimensions[..n].iter().map(|(k, _)| *k).collect::<Vec<_>>())
                    .collect::<Vec<_>>(),
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (key, value) in dimensions {
        document.insert((*key).to_owned(), Value::from(*value));
    }
    for (name, value, _) in metrics {
        let value = if value.fract() == 0.0 && value.abs() < 9e15 {
            Value::from(*value as i64)
        } else {
            Value::from(*value)
        };
        document.insert((*name).to_owned(), value);
    }
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chains_show_every_cause_once() {
        let error = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&error), "outer: disk on fire");
    }

    #[test]
    fn contention_is_reported_once_and_only_when_there_is_some() {
        let contention = Contention::default();
        assert_eq!(contention.report("sender", Timestamp::EPOCH), None);
        contention.conflict();
        contention.conflict();
        contention.throttle();
        let line = contention.report("sender", Timestamp::EPOCH).unwrap();
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (
                doc["store_conflicts"].clone(),
                doc["store_throttles"].clone()
            ),
            (json!(2), json!(1))
        );
        assert_eq!(doc["component"], "store");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["component"])
        );
        assert_eq!(contention.take(), (0, 0), "reported counts start again");
    }

    #[test]
    fn emf_documents_carry_units_and_fractional_values() {
        let line = emf_document(
            Timestamp::from_millis(5),
            &[("function", "ingest"), ("account", "primary")],
            &[("bounce_rate", 4.5, "Percent"), ("paused", 1.0, "Count")],
        );
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["bounce_rate"], 4.5);
        assert_eq!(doc["paused"], 1);
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Metrics"][0]["Unit"], "Percent");
        assert_eq!(
            declared["Dimensions"],
            json!([["function"], ["function", "account"]])
        );
    }

    #[test]
    fn emf_lines_declare_each_metric_and_carry_its_value() {
        let line = emf_line(
            Timestamp::from_millis(5),
            &[("function", "ingest")],
            &[("recorded", 3)],
        );
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["function"], "ingest");
        assert_eq!(doc["recorded"], 3);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "recorded"
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "function"
        );
    }
}
