//! What a million messages cost, from what the run measured: each line names its inputs and
//! whether they were measured here or assumed (the model and the prices).

use serde_json::{Value, json};

use crate::rules::Injected;
use crate::worker::Report;

/// us-east-1 prices as of 2026-12-01 (docs/scale.md names their sources).
const WRITE_UNIT: f64 = 0.625e-6;
const READ_UNIT: f64 = 0.125e-6;
const LAMBDA_REQUEST: f64 = 0.20e-6;
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const SQS_REQUEST: f64 = 0.40e-6;
const SNS_PUBLISH: f64 = 0.50e-6;
const LOGS_GB: f64 = 0.50;
/// The template's `MemorySize` for every function (GB).
const MEMORY_GB: f64 = 0.25;

/// What the workers measured, per message sent.
pub(crate) struct PerMessage {
    pub(crate) sender_invocations: f64,
    pub(crate) ingest_invocations: f64,
    /// Mean batch duration in seconds: what Lambda bills.
    pub(crate) sender_seconds: f64,
    pub(crate) ingest_seconds: f64,
    pub(crate) log_bytes: f64,
    pub(crate) emf_bytes: f64,
}

impl PerMessage {
    pub(crate) fn of(sent: &[Report], stored: &[Report], accepted: u64) -> Self {
        let per = |n: f64| n / accepted.max(1) as f64;
        let batches = |reports: &[Report]| reports.iter().map(|r| r.batch_ms.len()).sum::<usize>();
        let busy = |reports: &[Report]| {
            reports.iter().flat_map(|r| r.batch_ms.iter()).sum::<f64>() / 1000.0
        };
        let all = sent.iter().chain(stored);
        PerMessage {
            sender_invocations: per(batches(sent) as f64),
            ingest_invocations: per(batches(stored) as f64),
            sender_seconds: busy(sent) / batches(sent).max(1) as f64,
            ingest_seconds: busy(stored) / batches(stored).max(1) as f64,
            log_bytes: per(all.clone().map(|r| r.log_bytes).sum::<u64>() as f64),
            emf_bytes: per(all.map(|r| r.emf_bytes).sum::<u64>() as f64),
        }
    }
}

/// One line of the table: the part, its quantity per million messages, the cost, the source.
fn line(part: &str, quantity: String, dollars: f64, source: &str) -> Value {
    json!({"part": part, "per_million_messages": quantity, "dollars": (dollars * 100.0).round() / 100.0, "source": source})
}

/// The table, per million messages sent with their two million events.
pub(crate) fn per_million(
    measured: &PerMessage,
    charged: Option<&Injected>,
    accepted: u64,
) -> Value {
    let million = 1e6;
    let per = |n: f64| n / accepted.max(1) as f64;
    let mut lines = Vec::new();
    if let Some(charged) = charged {
        let writes = per(charged.write_units + charged.index_write_units);
        lines.push(line(
            "DynamoDB writes (items, transactions twice, the suppressions' index)",
            format!("{:.2} million write units", writes),
            writes * million * WRITE_UNIT,
            "measured: the rules' proxy, every request",
        ));
        let reads = per(charged.read_units);
        lines.push(line(
            "DynamoDB reads (a unit per key asked for, found or not; queries by size)",
            format!("{:.2} million read units", reads),
            reads * million * READ_UNIT,
            "measured: the rules' proxy; the run's window is minutes, not a day (a day's window query reads about 20 items per quarter hour: docs/scale.md)",
        ));
    }
    let invocations = measured.sender_invocations + measured.ingest_invocations;
    lines.push(line(
        "Lambda requests",
        format!(
            "{:.0} sender + {:.0} ingest invocations",
            measured.sender_invocations * million,
            measured.ingest_invocations * million
        ),
        invocations * million * LAMBDA_REQUEST,
        "measured: batches per message",
    ));
    let gb_seconds = MEMORY_GB
        * million
        * (measured.sender_invocations * measured.sender_seconds
            + measured.ingest_invocations * measured.ingest_seconds);
    lines.push(line(
        "Lambda duration (256 MB)",
        format!(
            "{gb_seconds:.0} GB-s: sender batches {:.0} ms, ingest {:.0} ms",
            measured.sender_seconds * 1000.0,
            measured.ingest_seconds * 1000.0
        ),
        gb_seconds * LAMBDA_GB_SECOND,
        "measured: mean batch duration under the rules' latency and SES's 60 ms (this machine, two cores shared by every process)",
    ));
    // SQS: a SendMessageBatch per ten requests, a receive and a delete per sender batch; each
    // event delivered by SNS, a receive and a delete per ingest batch.
    let sqs = 0.1 + 2.0 * measured.sender_invocations + 2.0 + 2.0 * measured.ingest_invocations;
    lines.push(line(
        "SQS requests",
        format!("{sqs:.2} million"),
        sqs * million * SQS_REQUEST,
        "derived: requests and events per message measured, SQS's calls per batch assumed",
    ));
    lines.push(line(
        "SNS publishes (SES's event destination: Send and Delivery or Bounce)",
        "2 million".to_owned(),
        2.0 * million * SNS_PUBLISH,
        "assumed: two events per message, as the run's SES sends",
    ));
    let log_gb = (measured.log_bytes + measured.emf_bytes) * million / 1e9;
    lines.push(line(
        "CloudWatch Logs ingestion (log lines at the default level, EMF metrics)",
        format!(
            "{log_gb:.2} GB: {:.0} bytes of log and {:.0} of EMF a message",
            measured.log_bytes, measured.emf_bytes
        ),
        log_gb * LOGS_GB,
        "measured: the workers' log at RUST_LOG=info and the EMF lines their invocations write",
    ));
    let total: f64 = lines.iter().filter_map(|l| l["dollars"].as_f64()).sum();
    json!({"lines": lines, "total_dollars": (total * 100.0).round() / 100.0})
}
