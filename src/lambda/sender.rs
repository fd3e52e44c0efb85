//! The `sender` function: send requests from the SQS send queue (partial batch response;
//! deferred messages kept in the queue until their retry time), or one request in a direct
//! invocation, answered with its decision.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::adapters::sqs::queue_url;
use crate::app::send::{Decision, Judged, Queued, Sender};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::request::SendRequest;
use crate::telemetry::{emf_line, error_chain};
use crate::wiring::SenderFunction;

struct Received {
    queued: Queued,
    receipt: Option<(String, String)>,
}

fn received(record: Value, index: usize) -> Received {
    let fallback = format!("record#{index}");
    match serde_json::from_value::<SqsMessage>(record) {
        Err(error) => Received {
            queued: Queued {
                id: fallback,
                request: Err(format!("malformed SQS record: {error}")),
                receive_count: 1,
            },
            receipt: None,
        },
        Ok(message) => {
            let receive_count = message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let request = match &message.body {
                Some(body) => SendRequest::parse(body).map_err(|e| e.to_string()),
                None => Err("SQS record has no body".to_owned()),
            };
            let receipt = message
                .event_source_arn
                .as_deref()
                .and_then(queue_url)
                .zip(message.receipt_handle.clone());
            Received {
                queued: Queued {
                    id: message.message_id.unwrap_or(fallback),
                    request,
                    receive_count,
                },
                receipt,
            }
        }
    }
}

/// The Lambda handler.
pub async fn handle(
    state: &SenderFunction,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deps = &state.context;
    let now = deps.clock.now();
    let sender = Sender::new(deps, deps.transport.as_ref(), &state.memory);
    let mut payload = event.payload;
    let records = match payload.get_mut("Records").and_then(Value::as_array_mut) {
        Some(records) => std::mem::take(records),
        None => {
            // A direct invocation: one request, answered with its decision.
            let queued = Queued {
                id: "invocation".into(),
                request: SendRequest::parse(&payload.to_string()).map_err(|e| e.to_string()),
                receive_count: 1,
            };
            let judged = sender
                .send(vec![queued], now)
                .await
                .map_err(|e| error_chain(&e))?;
            emit_metrics(now, &judged);
            return Ok(serde_json::to_value(&judged[0].decision)?);
        }
    };
    let received: Vec<Received> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| received(r, i))
        .collect();
    let receipts: HashMap<String, Option<(String, String)>> = received
        .iter()
        .map(|r| (r.queued.id.clone(), r.receipt.clone()))
        .collect();
    let mut response = SqsBatchResponse::default();
    let fail = |response: &mut SqsBatchResponse, id: &str| {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        response.batch_item_failures.push(failure);
    };
    let judged = match sender
        .send(received.into_iter().map(|r| r.queued).collect(), now)
        .await
    {
        Ok(judged) => judged,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "batch not judged; every message will be retried");
            for id in receipts.keys() {
                fail(&mut response, id);
            }
            return Ok(serde_json::to_value(response)?);
        }
    };
    // Deferred messages stay in their queue, hidden until their retry time.
    let mut delays: BTreeMap<&str, Vec<(String, u64)>> = BTreeMap::new();
    for judged in &judged {
        match &judged.decision {
            Decision::Deferred {
                retry_after_seconds,
                ..
            } => {
                fail(&mut response, &judged.id);
                if let Some(Some((queue, handle))) = receipts.get(&judged.id) {
                    delays
                        .entry(queue)
                        .or_default()
                        .push((handle.clone(), *retry_after_seconds));
                }
            }
            Decision::Invalid { .. } => fail(&mut response, &judged.id),
            _ => {}
        }
    }
    if let Some(visibility) = &state.visibility {
        for (queue, messages) in delays {
            match visibility.delay(queue, &messages).await {
                Ok(refused) => {
                    for (handle, why) in refused {
                        tracing::error!(receipt_handle = %handle, why, "deferred, but its visibility was not changed");
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), messages = messages.len(), "deferred, but their visibility was not changed");
                }
            }
        }
    }
    emit_metrics(now, &judged);
    Ok(serde_json::to_value(response)?)
}

fn emit_metrics(now: Timestamp, judged: &[Judged]) {
    for line in metric_lines(now, judged) {
        println!("{line}");
    }
}

/// One EMF line per stream and account with the count of each decision: CloudWatch metrics by
/// outcome, per function, per stream and per stream and account (`none` where a request has
/// no stream or was not sent through an account).
fn metric_lines(now: Timestamp, judged: &[Judged]) -> Vec<String> {
    let mut groups: BTreeMap<(&str, &str), BTreeMap<&'static str, u64>> = BTreeMap::new();
    for judged in judged {
        let account = match &judged.decision {
            Decision::Sent { account, .. } => account.as_str(),
            _ => "none",
        };
        let stream = judged.stream.as_deref().unwrap_or("none");
        *groups
            .entry((stream, account))
            .or_default()
            .entry(judged.decision.name())
            .or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((stream, account), counts)| {
            let metrics: Vec<(&str, u64)> = counts.into_iter().collect();
            let dimensions = [
                ("function", "sender"),
                ("stream", stream),
                ("account", account),
            ];
            emf_line(now, &dimensions, &metrics)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(stream: Option<&str>, decision: Decision) -> Judged {
        Judged {
            id: "m".into(),
            stream: stream.map(str::to_owned),
            decision,
        }
    }

    #[test]
    fn metrics_count_each_outcome_per_stream_and_account() {
        let sent = |account: &str| Decision::Sent {
            account: account.into(),
            message_id: "x".into(),
            recipients: 1,
            suppressed: vec![],
        };
        let deferred = Decision::Deferred {
            reason: "r".into(),
            retry_after_seconds: 1,
        };
        let lines = metric_lines(
            Timestamp::from_millis(0),
            &[
                judged(Some("bulk"), sent("primary")),
                judged(Some("bulk"), sent("primary")),
                judged(Some("bulk"), deferred),
                judged(Some("transactional"), sent("backup")),
                judged(None, Decision::Invalid { reason: "r".into() }),
            ],
        );
        let docs: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let find = |stream: &str, account: &str| {
            docs.iter()
                .find(|d| d["stream"] == stream && d["account"] == account)
                .unwrap_or_else(|| panic!("no line for {stream}/{account}: {lines:?}"))
        };
        assert_eq!(docs.len(), 4);
        assert_eq!(find("bulk", "primary")["sent"], 2);
        assert_eq!(find("bulk", "none")["deferred"], 1);
        assert_eq!(find("transactional", "backup")["sent"], 1);
        assert_eq!(find("none", "none")["invalid"], 1);
        assert_eq!(
            find("bulk", "primary")["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([
                ["function"],
                ["function", "stream"],
                ["function", "stream", "account"]
            ])
        );
    }
}
