//! The `sender` function: send requests from the SQS send queue (partial batch response;
//! deferred messages hidden in the queue until their retry time, or put back into it as new
//! messages once their receives run short), or one request in a direct invocation, answered
//! with its decision.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::adapters::sqs::queue_url;
use crate::app::send::{Decision, Judged, Queued, Sender, backoff};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::request::SendRequest;
use crate::ports::{HOPS_ATTRIBUTE, ORIGIN_ATTRIBUTE, PreventAction, QueueVisibility, Requeue};
use crate::telemetry::{CONTENTION, DNS, emf_line, error_chain};
use crate::wiring::SenderFunction;

/// A record of the batch, and what the handler needs to keep it in its queue.
struct Received {
    queued: Queued,
    /// The queue's URL and the receipt handle.
    receipt: Option<(String, String)>,
    body: Option<String>,
    hops: u32,
}

/// What keeps a deferred record in its queue.
struct Envelope {
    receipt: Option<(String, String)>,
    body: Option<String>,
    hops: u32,
    origin: String,
    receive_count: u32,
}

fn received(record: Value, index: usize) -> Received {
    let fallback = format!("record#{index}");
    match serde_json::from_value::<SqsMessage>(record) {
        Err(error) => Received {
            queued: Queued::new(fallback, Err(format!("malformed SQS record: {error}"))),
            receipt: None,
            body: None,
            hops: 0,
        },
        Ok(message) => {
            let receive_count = message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let attribute = |name: &str| {
                message
                    .message_attributes
                    .get(name)
                    .and_then(|a| a.string_value.clone())
            };
            let request = match &message.body {
                Some(body) => SendRequest::parse(body).map_err(|e| e.to_string()),
                None => Err("SQS record has no body".to_owned()),
            };
            let receipt = message
                .event_source_arn
                .as_deref()
                .and_then(queue_url)
                .zip(message.receipt_handle.clone());
            let id = message.message_id.unwrap_or(fallback);
            Received {
                queued: Queued {
                    origin: attribute(ORIGIN_ATTRIBUTE).unwrap_or_else(|| id.clone()),
                    receive_count,
                    ..Queued::new(id, request)
                },
                receipt,
                body: message.body,
                hops: attribute(HOPS_ATTRIBUTE)
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(0),
            }
        }
    }
}

/// How a deferred message waits for its retry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Hidden in its queue for this many seconds (one receive used).
    Hide(u64),
    /// Put back into its queue as a new message, delayed this many seconds (at most 900),
    /// then hidden for the rest: its receives would run out before its retry time.
    Requeue(u64),
}

/// How a message deferred by `seconds` on its `receive_count`th receive waits: hidden, until
/// the receive `requeue_after` is reached; from then, put back.
pub fn wait(receive_count: u32, seconds: u64, requeue_after: u32) -> Wait {
    if receive_count >= requeue_after {
        Wait::Requeue(seconds.min(crate::adapters::sqs::MAX_DELAY_SECONDS))
    } else {
        Wait::Hide(seconds)
    }
}

/// The Lambda handler.
pub async fn handle(
    state: &SenderFunction,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deps = &state.context;
    let now = deps.clock.now();
    let mut payload = event.payload;
    let Some(records) = payload.get_mut("Records").and_then(Value::as_array_mut) else {
        // A direct invocation: one request, answered with its decision. Its identity, unless
        // it has an idempotency key, is the invocation.
        let queued = Queued::new(
            event.context.request_id.clone(),
            SendRequest::parse(&payload.to_string()).map_err(|e| e.to_string()),
        );
        let sender = Sender::of(deps, &state.memory);
        let judged = sender
            .send(vec![queued], now)
            .await
            .map_err(|e| error_chain(&e))?;
        emit_metrics(now, &judged);
        return Ok(serde_json::to_value(&judged[0].decision)?);
    };
    let records = std::mem::take(records);
    let (response, judged) = process(state, records, now).await;
    emit_metrics(now, &judged);
    Ok(serde_json::to_value(response)?)
}

/// Judges a batch of SQS records and keeps what is deferred in the queue: hidden until its
/// retry time, or put back as a new message when its receives run short. Returns the partial
/// batch response (the deferred and invalid records fail; the rest are deleted by the event
/// source) and every record's decision.
pub async fn process(
    state: &SenderFunction,
    records: Vec<Value>,
    now: Timestamp,
) -> (SqsBatchResponse, Vec<Judged>) {
    let deps = &state.context;
    let sender = Sender::of(deps, &state.memory);
    let (envelopes, batch) = unpack(records);
    let judged = judge(&sender, batch, now).await;
    let requeue_after = deps.config.sender.requeue_after_receives;
    let mut deferred = Deferred::default();
    for judged in &judged {
        deferred.sort(
            judged,
            &envelopes,
            requeue_after,
            state.visibility.is_some(),
        );
    }
    let Some(visibility) = &state.visibility else {
        return (deferred.response, judged);
    };
    deferred.put_back(visibility.as_ref()).await;
    deferred.hide(visibility.as_ref()).await;
    (deferred.response, judged)
}

/// The batch's records as requests to judge, and what keeps each in its queue, by id.
fn unpack(records: Vec<Value>) -> (BTreeMap<String, Envelope>, Vec<Queued>) {
    let received: Vec<Received> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| received(r, i))
        .collect();
    let mut envelopes: BTreeMap<String, Envelope> = BTreeMap::new();
    let mut batch = Vec::with_capacity(received.len());
    for r in received {
        envelopes.insert(
            r.queued.id.clone(),
            Envelope {
                receipt: r.receipt,
                body: r.body,
                hops: r.hops,
                origin: r.queued.origin.clone(),
                receive_count: r.queued.receive_count,
            },
        );
        batch.push(r.queued);
    }
    (envelopes, batch)
}

/// Every request's decision. A batch that could not be judged sent nothing: every readable
/// request waits with backoff.
async fn judge(sender: &Sender<'_>, batch: Vec<Queued>, now: Timestamp) -> Vec<Judged> {
    let counts: Vec<(String, u32, bool)> = batch
        .iter()
        .map(|q| (q.id.clone(), q.receive_count, q.request.is_ok()))
        .collect();
    match sender.send(batch, now).await {
        Ok(judged) => judged,
        Err(error) => {
            // Nothing was sent: every readable request waits with backoff.
            tracing::error!(error = %error_chain(&error), "batch not judged; every message is deferred");
            counts
                .into_iter()
                .map(|(id, receive_count, readable)| Judged {
                    id,
                    stream: None,
                    prevented: Vec::new(),
                    decision: if readable {
                        Decision::Deferred {
                            reason: format!("batch not judged: {}", error_chain(&error)),
                            retry_after_seconds: backoff(receive_count).as_secs(),
                        }
                    } else {
                        Decision::Invalid {
                            reason: "unreadable request".into(),
                        }
                    },
                })
                .collect()
        }
    }
}

/// Where the batch's records go: failed (the event source keeps them), hidden in their queue,
/// or put back into it.
#[derive(Default)]
struct Deferred {
    response: SqsBatchResponse,
    /// Receipt handles to hide, each with its seconds, by queue.
    hidden: BTreeMap<String, Vec<(String, u64)>>,
    /// Copies to put back, with the message's id, receipt handle and seconds, by queue.
    requeued: BTreeMap<String, Vec<(String, Requeue, String, u64)>>,
}

impl Deferred {
    /// The record `id` fails: the event source leaves it in its queue.
    fn fail(&mut self, id: &str) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        self.response.batch_item_failures.push(failure);
    }

    /// Sorts one record by its decision: a deferred one fails and is hidden, or is put back
    /// when its receives run short and the queue can take a copy; an invalid one fails; the
    /// rest are deleted.
    fn sort(
        &mut self,
        judged: &Judged,
        envelopes: &BTreeMap<String, Envelope>,
        requeue_after: u32,
        can_requeue: bool,
    ) {
        match &judged.decision {
            Decision::Deferred {
                retry_after_seconds,
                ..
            } => {
                let Some((envelope, (queue, handle))) = envelopes
                    .get(&judged.id)
                    .and_then(|e| Some((e, e.receipt.as_ref()?)))
                else {
                    self.fail(&judged.id);
                    return;
                };
                let wait = wait(envelope.receive_count, *retry_after_seconds, requeue_after);
                match (wait, &envelope.body) {
                    (Wait::Requeue(delay), Some(body)) if can_requeue => {
                        self.requeued.entry(queue.clone()).or_default().push((
                            judged.id.clone(),
                            Requeue {
                                body: body.clone(),
                                delay_seconds: delay,
                                origin: envelope.origin.clone(),
                                hops: envelope.hops + 1,
                            },
                            handle.clone(),
                            *retry_after_seconds,
                        ));
                    }
                    _ => {
                        self.fail(&judged.id);
                        self.hidden
                            .entry(queue.clone())
                            .or_default()
                            .push((handle.clone(), *retry_after_seconds));
                    }
                }
            }
            Decision::Invalid { .. } => self.fail(&judged.id),
            _ => {}
        }
    }

    /// Puts the copies back: a copy in the queue deletes its original (it does not fail); a
    /// copy that could not be sent keeps the original, hidden.
    async fn put_back(&mut self, visibility: &dyn QueueVisibility) {
        for (queue, messages) in std::mem::take(&mut self.requeued) {
            let copies: Vec<Requeue> = messages.iter().map(|(_, r, _, _)| r.clone()).collect();
            let refused: Vec<(usize, String)> = match visibility.requeue(&queue, &copies).await {
                Ok(refused) => refused,
                Err(error) => {
                    let why = error_chain(&error);
                    (0..copies.len()).map(|i| (i, why.clone())).collect()
                }
            };
            let refused: BTreeMap<usize, String> = refused.into_iter().collect();
            for (index, (id, copy, handle, seconds)) in messages.iter().enumerate() {
                match refused.get(&index) {
                    None => {
                        tracing::info!(message_id = %id, origin = %copy.origin, hops = copy.hops, "deferred past the queue's receives: put back into the queue");
                    }
                    Some(why) => {
                        tracing::error!(message_id = %id, origin = %copy.origin, why, "deferred, not put back into the queue: it stays, hidden");
                        self.fail(id);
                        self.hidden
                            .entry(queue.clone())
                            .or_default()
                            .push((handle.clone(), *seconds));
                    }
                }
            }
        }
    }

    /// Hides the deferred records in their queues until their retry time.
    async fn hide(&mut self, visibility: &dyn QueueVisibility) {
        for (queue, messages) in std::mem::take(&mut self.hidden) {
            match visibility.delay(&queue, &messages).await {
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
}

fn emit_metrics(now: Timestamp, judged: &[Judged]) {
    for line in metric_lines(now, judged) {
        println!("{line}");
    }
    if let Some(line) = CONTENTION.report("sender", now) {
        println!("{line}");
    }
    if let Some(line) = DNS.report("sender", now) {
        println!("{line}");
    }
}

/// One EMF line per stream and account with the count of each decision, and of the recipients
/// prevention refused (`prevented_REASON`) or flagged (`flagged_REASON`): CloudWatch metrics
/// by outcome, per function, per stream and per stream and account (`none` where a request
/// has no stream or was not sent through an account).
pub fn metric_lines(now: Timestamp, judged: &[Judged]) -> Vec<String> {
    let mut groups: BTreeMap<(&str, &str), BTreeMap<String, u64>> = BTreeMap::new();
    for judged in judged {
        let account = match &judged.decision {
            Decision::Sent { account, .. } => account.as_str(),
            _ => "none",
        };
        let stream = judged.stream.as_deref().unwrap_or("none");
        let group = groups.entry((stream, account)).or_default();
        *group.entry(judged.decision.name().to_owned()).or_default() += 1;
        for key in &judged.prevented {
            let action = match key.action {
                PreventAction::Refused => "prevented",
                PreventAction::Flagged => "flagged",
            };
            *group.entry(format!("{action}_{}", key.reason)).or_default() += 1;
        }
    }
    groups
        .into_iter()
        .map(|((stream, account), counts)| {
            let metrics: Vec<(&str, u64)> = counts.iter().map(|(n, c)| (n.as_str(), *c)).collect();
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
            stream: stream.map(|s| s.parse().expect("a stream name")),
            decision,
            prevented: Vec::new(),
        }
    }

    #[test]
    fn metrics_count_each_outcome_per_stream_and_account() {
        let sent = |account: &str| Decision::Sent {
            account: account.into(),
            message_id: "x".into(),
            recipients: 1,
            suppressed: vec![],
            prevented: vec![],
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

    #[test]
    fn metrics_count_prevented_and_flagged_recipients_by_reason() {
        use crate::domain::sending::prevention::Undeliverable;
        use crate::ports::PreventedKey;
        let key = |stream: &str, reason, action| PreventedKey {
            stream: stream.into(),
            reason,
            action,
        };
        let mut refused = judged(
            Some("verification"),
            Decision::Undeliverable {
                reason: "r".into(),
                suggestion: None,
            },
        );
        refused.prevented = vec![
            key(
                "verification",
                Undeliverable::NoSuchDomain,
                PreventAction::Refused,
            ),
            key(
                "verification",
                Undeliverable::NoSuchDomain,
                PreventAction::Refused,
            ),
            key(
                "verification",
                Undeliverable::TypoDomain,
                PreventAction::Refused,
            ),
        ];
        let mut flagged = judged(
            Some("bulk"),
            Decision::Sent {
                account: "primary".into(),
                message_id: "x".into(),
                recipients: 1,
                suppressed: vec![],
                prevented: vec![],
            },
        );
        flagged.prevented = vec![key(
            "bulk",
            Undeliverable::Disposable,
            PreventAction::Flagged,
        )];
        let lines = metric_lines(Timestamp::from_millis(0), &[refused, flagged]);
        let docs: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let verification = docs.iter().find(|d| d["stream"] == "verification").unwrap();
        assert_eq!(verification["undeliverable"], 1);
        assert_eq!(verification["prevented_no_such_domain"], 2);
        assert_eq!(verification["prevented_typo_domain"], 1);
        let bulk = docs.iter().find(|d| d["stream"] == "bulk").unwrap();
        assert_eq!(
            (bulk["sent"].clone(), bulk["flagged_disposable"].clone()),
            (1.into(), 1.into())
        );
    }
}
