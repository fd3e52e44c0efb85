//! The `sender` function: send requests from the SQS send queue (partial batch response;
//! deferred messages kept in the queue until their retry time), or one request in a direct
//! invocation, answered with its decision.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::deps::Deps;
use crate::domain::send::SendRequest;
use crate::ports::QueueVisibility;
use crate::queue::{SqsVisibility, queue_url};
use crate::sender::{Decision, Queued, Sender};
use crate::telemetry::{emf_line, error_chain};

/// What the sender needs, built once.
pub struct SenderDeps {
    /// The shared dependencies.
    pub deps: Deps,
    /// Keeps deferred messages in the queue (absent in local runs without SQS).
    pub visibility: Option<Arc<dyn QueueVisibility>>,
}

impl SenderDeps {
    /// From the environment: SQS in a deployment (a DynamoDB store), none locally.
    pub async fn from_env() -> anyhow::Result<Self> {
        let deps = Deps::from_env().await?;
        let deployed = std::env::var("SESGUARD_STORE").is_ok_and(|s| s == "dynamodb");
        let visibility: Option<Arc<dyn QueueVisibility>> = if deployed {
            let sdk = aws_config::load_from_env().await;
            Some(Arc::new(SqsVisibility::new(aws_sdk_sqs::Client::new(&sdk))))
        } else {
            None
        };
        Ok(Self { deps, visibility })
    }
}

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
    state: &SenderDeps,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deps = &state.deps;
    let now = deps.clock.now();
    let sender = Sender::new(deps, deps.transport.as_ref());
    let mut payload = event.payload;
    let records = match payload.get_mut("Records").and_then(Value::as_array_mut) {
        Some(records) => std::mem::take(records),
        None => {
            // A direct invocation: one request, answered with its decision.
            let queued = Queued {
                id: "invocation".into(),
                request: serde_json::from_value::<Value>(payload)
                    .map_err(|e| e.to_string())
                    .and_then(|v| SendRequest::parse(&v.to_string()).map_err(|e| e.to_string())),
                receive_count: 1,
            };
            let decisions = sender
                .send(vec![queued], now)
                .await
                .map_err(|e| error_chain(&e))?;
            return Ok(serde_json::to_value(&decisions[0].1)?);
        }
    };
    let received: Vec<Received> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| received(r, i))
        .collect();
    let receipts: Vec<(String, Option<(String, String)>)> = received
        .iter()
        .map(|r| (r.queued.id.clone(), r.receipt.clone()))
        .collect();
    let mut response = SqsBatchResponse::default();
    let fail = |response: &mut SqsBatchResponse, id: &str| {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        response.batch_item_failures.push(failure);
    };
    let decisions = match sender
        .send(received.into_iter().map(|r| r.queued).collect(), now)
        .await
    {
        Ok(decisions) => decisions,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "batch not judged; every message will be retried");
            for (id, _) in &receipts {
                fail(&mut response, id);
            }
            return Ok(serde_json::to_value(response)?);
        }
    };
    let mut counts = std::collections::BTreeMap::<&'static str, u64>::new();
    for ((id, decision), (_, receipt)) in decisions.iter().zip(&receipts) {
        *counts.entry(decision.name()).or_default() += 1;
        match decision {
            Decision::Deferred {
                retry_after_seconds,
                ..
            } => {
                fail(&mut response, id);
                if let (Some(visibility), Some((queue, handle))) = (&state.visibility, receipt)
                    && let Err(error) = visibility.delay(queue, handle, *retry_after_seconds).await
                {
                    tracing::error!(message_id = %id, error = %error_chain(&error), "deferred, but its visibility was not changed");
                }
            }
            Decision::Invalid { .. } => fail(&mut response, id),
            _ => {}
        }
    }
    let metrics: Vec<(&str, u64)> = counts.into_iter().collect();
    println!("{}", emf_line(now, &[("function", "sender")], &metrics));
    Ok(serde_json::to_value(response)?)
}
