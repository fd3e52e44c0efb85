//! The `ingest` function: SES notifications from SQS (partial batch response), from SNS
//! directly, or in a direct invocation (any single body: SNS envelope or raw SES JSON); the
//! SNS subscription messages that reach the feedback queue (verified, then confirmed or
//! alerted); and the scheduled review, from an EventBridge schedule.

use aws_lambda_events::event::sns::SnsRecord;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::app::Context;
use crate::app::ingest::Ingestor;
use crate::app::ingest::{Inbound, InboundError, Outcome, Report};
use crate::app::queued_subscription::QueuedSubscriptions;
use crate::app::review::Gauge;
use crate::app::review::Guard;
use crate::app::subscription::Subscriptions;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::Envelope;
use crate::domain::sns::unwrap::{self, Content, SnsIds};
use crate::telemetry::{CONTENTION, emf_document, emf_line};
use crate::wiring::IngestFunction;

/// How the records arrived, which decides how failures are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An SQS event: failures are listed in `batchItemFailures`.
    Sqs,
    /// An SNS event: a store failure fails the invocation; malformed records are skipped.
    Sns,
    /// A single body (direct invocation, `cargo lambda invoke`, a file).
    Direct,
}

/// Splits any accepted input into records. `name` names a direct body in reports.
pub fn decode(mut event: Value, name: &str) -> (Shape, Vec<Inbound>) {
    let records = match event.get_mut("Records").and_then(Value::as_array_mut) {
        Some(records) if !records.is_empty() => std::mem::take(records),
        _ => return (Shape::Direct, vec![direct(event, name)]),
    };
    let is_sqs = records[0].get("eventSource").and_then(Value::as_str) == Some("aws:sqs");
    let is_sns = records[0].get("EventSource").and_then(Value::as_str) == Some("aws:sns");
    if is_sqs {
        let inbound = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| sqs_record(r, i))
            .collect();
        (Shape::Sqs, inbound)
    } else if is_sns {
        let inbound = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| sns_record(r, i))
            .collect();
        (Shape::Sns, inbound)
    } else {
        event["Records"] = Value::Array(records);
        (Shape::Direct, vec![direct(event, name)])
    }
}

fn direct(event: Value, name: &str) -> Inbound {
    let content = unwrap::open_value(event).map_err(InboundError::from);
    Inbound {
        id: name.to_owned(),
        sns: None,
        content: content.map(|delivered| delivered.content),
    }
}

fn sqs_record(record: Value, index: usize) -> Inbound {
    let fallback = record
        .get("messageId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("record#{index}"), str::to_owned);
    let wrapper = |detail: String| InboundError::Wrapper {
        wrapper: "SQS",
        detail,
    };
    let message: SqsMessage = match serde_json::from_value(record) {
        Ok(message) => message,
        Err(error) => {
            return Inbound {
                id: fallback,
                sns: None,
                content: Err(wrapper(error.to_string())),
            };
        }
    };
    let id = message.message_id.clone().unwrap_or(fallback);
    let Some(body) = message.body else {
        return Inbound {
            id,
            sns: None,
            content: Err(wrapper("no body".into())),
        };
    };
    Inbound::opened(id, unwrap::open(&body))
}

fn sns_record(record: Value, index: usize) -> Inbound {
    let fallback = record
        .pointer("/Sns/MessageId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("record#{index}"), str::to_owned);
    let record: SnsRecord = match serde_json::from_value(record) {
        Ok(record) => record,
        Err(error) => {
            let content = Err(InboundError::Wrapper {
                wrapper: "SNS",
                detail: error.to_string(),
            });
            return Inbound {
                id: fallback,
                sns: None,
                content,
            };
        }
    };
    let sns = record.sns;
    let timestamp = Some(Timestamp::from_millis(sns.timestamp.timestamp_millis()));
    let ids = SnsIds {
        message_id: sns.message_id.clone(),
        topic_arn: sns.topic_arn.clone(),
        timestamp,
    };
    let content = unwrap::open_sns(
        &sns.sns_message_type,
        &sns.message_id,
        &sns.topic_arn,
        timestamp,
        &sns.message,
    )
    .map(|delivered| delivered.content)
    .map_err(InboundError::from);
    Inbound {
        id: sns.message_id,
        sns: Some(ids),
        content,
    }
}

/// One EMF document per reviewed account: what the alarms watch.
fn gauge_lines(now: Timestamp, gauges: &[Gauge]) -> impl Iterator<Item = String> + '_ {
    gauges.iter().map(move |gauge| {
        emf_document(
            now,
            &[("function", "ingest"), ("account", &gauge.account)],
            &[
                ("bounce_rate", gauge.bounce_rate * 100.0, "Percent"),
                ("complaint_rate", gauge.complaint_rate * 100.0, "Percent"),
                ("window_sends", gauge.window_sends as f64, "Count"),
                ("paused", f64::from(u8::from(gauge.paused)), "Count"),
                ("quarantined_streams", gauge.quarantined as f64, "Count"),
            ],
        )
        .to_string()
    })
}

/// The EMF lines an invocation writes for its report: the outcomes' counts, then each
/// account's gauges (what the load harness weighs as log bytes, without printing them).
pub fn metric_lines(now: Timestamp, report: &crate::app::ingest::Report) -> Vec<String> {
    let summary = report.summary();
    let counts = emf_line(
        now,
        &[("function", "ingest")],
        &[
            ("processed", summary.processed as u64),
            ("duplicates", summary.duplicates as u64),
            ("suppressed", summary.suppressed as u64),
            ("ignored", summary.ignored as u64),
            ("failed", summary.failed as u64),
        ],
    );
    std::iter::once(counts.to_string())
        .chain(gauge_lines(now, &report.gauges))
        .collect()
}

/// The SQS partial batch response: every malformed or failed record is listed, so failed
/// ones are retried and malformed ones reach the DLQ after the configured receives.
pub fn batch_response(report: &Report) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in &report.records {
        if matches!(outcome, Outcome::Malformed(_) | Outcome::Failed(_)) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Whether the event is the scheduled review's EventBridge event.
pub fn is_scheduled(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// The scheduled review: every configured account, whether feedback arrived or not.
async fn scheduled(deps: &Context) -> Result<Value, lambda_runtime::Error> {
    let now = deps.clock.now();
    let review = Guard::of(deps).review_all(now).await?;
    for line in gauge_lines(now, &review.gauges) {
        println!("{line}");
    }
    let transitions: Vec<Value> = review
        .applied
        .iter()
        .map(|applied| serde_json::to_value(&applied.alert))
        .collect::<Result<_, _>>()?;
    Ok(json!({"reviewed": review.gauges.len(), "transitions": transitions}))
}

/// Takes the SNS subscription messages that came with their whole envelope (an SQS body's)
/// out of `records`: `(record id, kind, envelope)`.
pub fn subscription_messages(records: &mut Vec<Inbound>) -> Vec<(String, String, Envelope)> {
    let mut taken = Vec::new();
    let mut rest = Vec::with_capacity(records.len());
    for record in records.drain(..) {
        match record.content {
            Ok(Content::SnsControl {
                kind,
                envelope: Some(envelope),
            }) => taken.push((record.id, kind, *envelope)),
            content => rest.push(Inbound { content, ..record }),
        }
    }
    *records = rest;
    taken
}

/// Each subscription message verified, then confirmed or alerted; its outcome as the report
/// keeps it (a transient failure is retried, nothing else is kept).
async fn subscriptions(
    function: &IngestFunction,
    messages: Vec<(String, String, Envelope)>,
    now: Timestamp,
) -> Vec<(String, Outcome)> {
    let subscriptions = Subscriptions::of(&function.context, function.confirmer.as_ref(), "ingest");
    let queued = QueuedSubscriptions::new(subscriptions, &function.certificates);
    let mut outcomes = Vec::with_capacity(messages.len());
    for (id, kind, envelope) in messages {
        let outcome = match queued.handle(envelope, now).await {
            Ok(handled) => Outcome::Ignored(handled.describe(&kind)),
            Err(error) => Outcome::Failed(format!("SNS {kind}: {error}")),
        };
        outcomes.push((id, outcome));
    }
    outcomes
}

/// The Lambda handler.
pub async fn handle(
    function: &IngestFunction,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deps = &function.context;
    if is_scheduled(&event.payload) {
        return scheduled(deps).await;
    }
    let (shape, mut records) = decode(event.payload, "invocation");
    let now = deps.clock.now();
    let messages = subscription_messages(&mut records);
    let mut report = Ingestor::of(deps).ingest(records, now).await;
    if !messages.is_empty() {
        report
            .records
            .extend(subscriptions(function, messages, now).await);
    }
    report.log();
    if let Some(line) = CONTENTION.report("ingest", now) {
        println!("{line}");
    }
    for line in metric_lines(now, &report) {
        println!("{line}");
    }
    let summary = report.summary();
    if shape == Shape::Sqs {
        return Ok(serde_json::to_value(batch_response(&report))?);
    }
    let failed = report
        .records
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    if failed > 0 {
        return Err(format!(
            "{failed} record(s) not stored; the invocation fails so Lambda retries it"
        )
        .into());
    }
    let errors: Vec<Value> = report
        .records
        .iter()
        .filter_map(|(id, outcome)| match outcome {
            Outcome::Malformed(reason) => Some(json!({"record": id, "error": reason})),
            _ => None,
        })
        .collect();
    let mut body = serde_json::to_value(summary)?;
    body["errors"] = Value::Array(errors);
    Ok(body)
}
