//! The send gate on the embedded store with a scripted transport: every decision, failover,
//! send counting, and the reaction to each class of SES failure.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;
use sesguard::app::send::{Decision, Queued, Sender, SenderMemory};
use sesguard::domain::reputation::counters::WindowTotals;
use sesguard::domain::reputation::state::{AccountState, Cause, Status};
use sesguard::domain::sending::request::{OutgoingMail, SendRequest};
use sesguard::domain::sending::ses_failure::SendFailure;
use sesguard::ports::{MailTransport, TransportError};

use crate::helpers::RecordedAlerts;
use crate::world::World;

/// A transport that answers from a script (`Ok` when the script is empty) and keeps what it
/// was asked to send.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<(), SendFailure>>>,
    sent: Mutex<Vec<OutgoingMail>>,
}

impl Scripted {
    fn failing(failures: &[SendFailure]) -> Self {
        Self {
            answers: Mutex::new(failures.iter().map(|f| Err(*f)).collect()),
            ..Self::default()
        }
    }
}

#[async_trait]
impl MailTransport for Scripted {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError> {
        self.sent.lock().unwrap().push(mail.clone());
        match self.answers.lock().unwrap().pop_front() {
            Some(Err(failure)) => Err(TransportError {
                account: mail.account.clone(),
                failure,
                detail: format!("scripted {failure:?}"),
                ambiguous: false,
            }),
            _ => Ok(format!("id-{}", self.sent.lock().unwrap().len())),
        }
    }
}

fn world(
    configure: impl FnOnce(&mut sesguard::config::Config),
) -> (tempfile::TempDir, Context, RecordedAlerts) {
    let world = World::builder().configure(configure).build();
    (world.dir.expect("a SQLite world"), world.deps, world.alerts)
}

fn queued(id: &str, json: &str) -> Queued {
    Queued::new(id, SendRequest::parse(json).map_err(|e| e.to_string()))
}

fn receipt(to: &str, key: &str) -> String {
    format!(
        r#"{{"stream":"transactional","to":["{to}"],"template":{{"name":"receipt","data":{{"n":1}}}},"idempotency_key":"{key}"}}"#
    )
}

/// A sender function whose transport fails once, transiently, keeping deferrals in `sqs`.
fn deferring_sender(
    sqs: &aws_sdk_sqs::Client,
) -> (tempfile::TempDir, sesguard::wiring::SenderFunction) {
    let (dir, mut deps, _) = world(|_| {});
    deps.transport = Arc::new(Scripted::failing(&[SendFailure::Transient]));
    let state = sesguard::wiring::SenderFunction {
        context: deps,
        visibility: Some(Arc::new(sesguard::adapters::sqs::SqsVisibility::new(
            sqs.clone(),
        ))),
        memory: Default::default(),
    };
    (dir, state)
}

/// A Lambda SQS event of one record from the queue `arn`.
fn sqs_event(id: &str, receipt: &str, body: &str, receives: u32, arn: &str) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "messageId": id, "receiptHandle": receipt, "body": body,
        "attributes": {"ApproximateReceiveCount": receives.to_string()}, "eventSource": "aws:sqs",
        "eventSourceARN": arn,
    }]})
}

/// One account's guard state as the store holds it now.
async fn state_of(deps: &Context, account: &str) -> AccountState {
    deps.store
        .states(&[account.to_owned()])
        .await
        .unwrap()
        .remove(account)
        .unwrap()
}

async fn send(deps: &Context, transport: &Scripted, batch: Vec<Queued>) -> Vec<Decision> {
    let memory = SenderMemory::default();
    Sender::of(deps, &memory)
        .with_transport(transport)
        .send(batch, deps.clock.now())
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.decision)
        .collect()
}

#[tokio::test]
async fn each_gate_decides_in_order_with_its_reason() {
    let (_dir, deps, _) = world(|_| {});
    Ingestor::of(&deps)
        .ingest(
            crate::helpers::sample_inbound("ses/bounce-permanent.json"),
            deps.clock.now(),
        )
        .await;
    let mut policy = deps.store.template_policy().await.unwrap();
    policy.blocked.insert("newsletter".into());
    deps.store.put_template_policy(&policy).await.unwrap();
    let transport = Scripted::default();
    let decisions = send(&deps, &transport, vec![
        queued("a", &receipt("fine@example.com", "k1")),
        queued("b", &receipt("fine@example.com", "k1")),
        queued("c", r#"{"stream":"bulk","to":["x@example.com"],"template":{"name":"newsletter"}}"#),
        queued("d", &receipt("nobody@example.org", "k2")),
        queued("e", r#"{"stream":"transactional","to":["nobody@example.org","kept@example.com"],"subject":"Hi","text":"t"}"#),
        queued("f", r#"{"stream":"nope","to":["x@example.com"],"subject":"Hi","text":"t"}"#),
        queued("g", "not json"),
    ])
    .await;
    let names: Vec<&str> = decisions.iter().map(Decision::name).collect();
    assert_eq!(
        names,
        [
            "sent",
            "duplicate",
            "blocked",
            "suppressed",
            "sent",
            "invalid",
            "invalid"
        ]
    );
    let Decision::Sent {
        account,
        suppressed,
        recipients,
        ..
    } = &decisions[4]
    else {
        panic!()
    };
    assert_eq!((account.as_str(), *recipients), ("primary", 1));
    assert_eq!(suppressed[0].as_str(), "nobody@example.org");
    let sent = transport.sent.lock().unwrap();
    assert_eq!(
        sent.len(),
        2,
        "only the two sendable messages reached the transport"
    );
    assert_eq!(
        sent[1].to.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        ["kept@example.com"]
    );
    assert_eq!(sent[0].tags["sesguard-stream"], "transactional");
    assert_eq!(
        sent[0].from, "no-reply@example.com",
        "the account's default identity"
    );
    assert!(
        matches!(&decisions[5], Decision::Invalid { reason } if reason == "unknown stream `nope`")
    );
}

#[tokio::test]
async fn a_paused_primary_fails_over_and_a_stream_with_no_account_left_is_deferred() {
    let (_dir, deps, _) = world(|_| {});
    sesguard::app::control::Control::of(&deps)
        .apply(
            "primary",
            &sesguard::app::control::Action::Pause {
                stream: None,
                duration: None,
            },
            "drill",
            "ana",
            deps.clock.now(),
        )
        .await
        .unwrap();
    let transport = Scripted::default();
    let decisions = send(
        &deps,
        &transport,
        vec![
            queued("t", &receipt("a@example.com", "t1")),
            queued(
                "b",
                r#"{"stream":"bulk","to":["a@example.com"],"subject":"News","text":"t"}"#,
            ),
        ],
    )
    .await;
    assert!(matches!(&decisions[0], Decision::Sent { account, .. } if account == "backup"));
    let Decision::Deferred {
        reason,
        retry_after_seconds,
    } = &decisions[1]
    else {
        panic!("{decisions:?}")
    };
    assert!(reason.contains("primary: paused"), "{reason}");
    assert_eq!(*retry_after_seconds, 300, "nothing says when: recheck");
    // The deferred message's claim was released: its retry is not a duplicate.
    let retry = send(
        &deps,
        &Scripted::default(),
        vec![queued(
            "b",
            r#"{"stream":"bulk","to":["a@example.com"],"subject":"News","text":"t"}"#,
        )],
    )
    .await;
    assert_eq!(retry[0].name(), "deferred");
}

#[tokio::test]
async fn sends_are_counted_only_where_the_sender_is_the_send_source() {
    let (_dir, deps, _) = world(|c| {
        c.accounts[0].send_count_source =
            sesguard::domain::feedback::attribution::SendSource::Sender
    });
    let transport = Scripted::default();
    send(&deps, &transport, vec![
        queued("1", r#"{"stream":"verification","to":["a@example.com","b@example.com"],"subject":"Hi","text":"t"}"#),
        queued("2", &receipt("c@example.com", "k")),
    ])
    .await;
    let now = deps.clock.now();
    let (first, last) = deps.policy.window.buckets_ending(now);
    let window = deps.store.window("primary", first, last).await.unwrap();
    let totals = WindowTotals::sum(&window.buckets, first, last);
    assert_eq!(totals.total.sends, 3);
    assert_eq!(totals.streams["verification"].sends, 2);
    assert_eq!(totals.streams["transactional"].sends, 1);

    let (_dir2, events, _) = world(|_| {});
    send(
        &events,
        &Scripted::default(),
        vec![queued("1", &receipt("a@example.com", "k"))],
    )
    .await;
    let window = events.store.window("primary", first, last).await.unwrap();
    assert!(
        window.buckets.is_empty(),
        "ses_events accounts are counted from SES Send events, never twice"
    );
}

#[tokio::test]
async fn ses_failures_get_their_reactions() {
    use SendFailure::*;
    // Rate: the primary pauses for 5 minutes, this message waits, the next goes to the backup.
    let (_dir, deps, alerts) = world(|_| {});
    let transport = Scripted::failing(&[Rate]);
    let d = send(
        &deps,
        &transport,
        vec![
            queued("1", &receipt("a@example.com", "r1")),
            queued("2", &receipt("b@example.com", "r2")),
        ],
    )
    .await;
    assert!(
        matches!(
            &d[0],
            Decision::Deferred {
                retry_after_seconds: 300,
                ..
            }
        ),
        "{d:?}"
    );
    assert!(matches!(&d[1], Decision::Sent { account, .. } if account == "backup"));
    let state = state_of(&deps, "primary").await;
    assert_eq!(
        (state.status, state.cause),
        (Status::Paused, Some(Cause::SendingRate))
    );
    assert_eq!(
        state.until,
        Some(deps.clock.now().plus(std::time::Duration::from_secs(300)))
    );
    assert_eq!(alerts.all().len(), 1);

    // Paused at SES: the account pauses (until lifted) and the same message fails over.
    let (_dir, deps, _) = world(|_| {});
    let d = send(
        &deps,
        &Scripted::failing(&[Paused]),
        vec![queued("1", &receipt("a@example.com", "p"))],
    )
    .await;
    assert!(
        matches!(&d[0], Decision::Sent { account, .. } if account == "backup"),
        "{d:?}"
    );
    let state = state_of(&deps, "primary").await;
    assert_eq!((state.cause, state.until), (Some(Cause::SesPaused), None));

    // Daily quota: the same, with a timed pause.
    let (_dir, deps, _) = world(|_| {});
    let d = send(
        &deps,
        &Scripted::failing(&[DailyQuota]),
        vec![queued("1", &receipt("a@example.com", "q"))],
    )
    .await;
    assert!(
        matches!(&d[0], Decision::Sent { account, .. } if account == "backup"),
        "{d:?}"
    );

    // Rejected content: recorded, not retried, and its duplicate stays refused.
    let (_dir, deps, _) = world(|_| {});
    let d = send(
        &deps,
        &Scripted::failing(&[Rejected]),
        vec![queued("1", &receipt("a@example.com", "x"))],
    )
    .await;
    assert_eq!(d[0].name(), "rejected");
    assert_eq!(
        send(
            &deps,
            &Scripted::default(),
            vec![queued("1", &receipt("a@example.com", "x"))]
        )
        .await[0]
            .name(),
        "duplicate"
    );

    // Configuration: a notice, and the message waits.
    let (_dir, deps, alerts) = world(|_| {});
    let d = send(
        &deps,
        &Scripted::failing(&[Configuration]),
        vec![queued("1", &receipt("a@example.com", "c"))],
    )
    .await;
    assert_eq!(d[0].name(), "deferred");
    assert_eq!(alerts.notices().len(), 1);

    // Transient: backoff by receive count, and the retry is not a duplicate.
    let (_dir, deps, _) = world(|_| {});
    let mut late = queued("1", &receipt("a@example.com", "t"));
    late.receive_count = 3;
    let d = send(&deps, &Scripted::failing(&[Transient]), vec![late]).await;
    assert!(
        matches!(
            &d[0],
            Decision::Deferred {
                retry_after_seconds: 120,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(
        send(
            &deps,
            &Scripted::default(),
            vec![queued("1", &receipt("a@example.com", "t"))]
        )
        .await[0]
            .name(),
        "sent"
    );
}

#[tokio::test]
async fn a_deferred_message_stays_hidden_in_its_queue_until_its_retry_time() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use lambda_runtime::{Context, LambdaEvent};
    use serde_json::json;
    use sesguard::lambda::sender::handle;

    let sdk = crate::helpers::local_sdk();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue, arn) = crate::helpers::local_queue(&sqs, "send").await;
    let body = receipt("later@example.com", "deferred-1");
    sqs.send_message()
        .queue_url(&queue)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .visibility_timeout(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let message = &received[0];
    let event = sqs_event(
        message.message_id.as_deref().unwrap(),
        message.receipt_handle.as_deref().unwrap(),
        &body,
        1,
        &arn,
    );
    let (_dir, state) = deferring_sender(&sqs);
    let response = handle(&state, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": message.message_id}])
    );

    let again = sqs
        .receive_message()
        .queue_url(&queue)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert!(
        again.messages.unwrap_or_default().is_empty(),
        "hidden for its 30 s backoff, not redelivered at once"
    );

    // A direct invocation answers with the decision.
    let direct = handle(
        &state,
        LambdaEvent::new(
            serde_json::from_str(&receipt("now@example.com", "direct-1")).unwrap(),
            Context::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(direct["decision"], "sent");
    assert_eq!(direct["account"], "primary");
}

#[tokio::test]
async fn a_request_without_any_from_is_invalid_and_can_be_redriven_once_fixed() {
    let (_dir, deps, _) = world(|c| {
        for account in &mut c.accounts {
            account.from = None;
        }
    });
    let request = receipt("a@example.com", "no-from");
    let d = send(&deps, &Scripted::default(), vec![queued("1", &request)]).await;
    assert!(
        matches!(&d[0], Decision::Invalid { reason } if reason.contains("has no default `from`")),
        "{d:?}"
    );
    let with_from = request.replace(r#""stream""#, r#""from":"shop@example.com","stream""#);
    assert_eq!(
        send(&deps, &Scripted::default(), vec![queued("1", &with_from)]).await[0].name(),
        "sent"
    );
}

/// The primary alone at 20 sends a second, waiting at most `rate_wait` for a token, on the
/// system clock; and a batch of ten receipts.
fn twenty_a_second(rate_wait: std::time::Duration) -> (tempfile::TempDir, Context, Vec<Queued>) {
    let (dir, mut deps, _) = world(|c| {
        c.accounts[0].max_send_rate = Some(20.0);
        c.sender.rate_wait = rate_wait;
        c.streams.retain(|s| s.name == "transactional");
        c.streams[0].accounts.truncate(1);
    });
    deps.clock = Arc::new(sesguard::ports::SystemClock);
    let batch = (0..10)
        .map(|i| {
            queued(
                &i.to_string(),
                &receipt(&format!("u{i}@example.com"), &format!("w{i}")),
            )
        })
        .collect();
    (dir, deps, batch)
}

#[tokio::test]
async fn a_batch_larger_than_the_burst_waits_for_its_tokens_at_the_rate() {
    // SES's line gives 20 a second a burst of 2 and a refill of (21 − 2) / 1.52 = 12.5 a
    // second, so ten sends take about (10 − 2) / 12.5 = 0.64 s.
    let (_dir, deps, batch) = twenty_a_second(std::time::Duration::from_secs(1));
    let started = std::time::Instant::now();
    let decisions = send(&deps, &Scripted::default(), batch).await;
    let took = started.elapsed();
    assert!(
        decisions
            .iter()
            .all(|d| matches!(d, Decision::Sent { account, .. } if account == "primary")),
        "{decisions:?}"
    );
    assert!(
        took >= std::time::Duration::from_millis(500),
        "ten sends at 12.5 a second after a burst of 2 took {took:?}"
    );
    // Never waiting, the batch sends its burst and defers the rest.
    let (_dir, deps, batch) = twenty_a_second(std::time::Duration::ZERO);
    let decisions = send(&deps, &Scripted::default(), batch).await;
    let sent = decisions.iter().filter(|d| d.name() == "sent").count();
    assert!((2..=3).contains(&sent), "{sent} sent: {decisions:?}");
}

#[tokio::test]
async fn a_send_rate_shortage_moves_the_batch_to_the_next_account_then_defers_with_the_wait() {
    let (_dir, deps, _) = world(|c| {
        for account in &mut c.accounts {
            account.max_send_rate = Some(1.0);
        }
    });
    let d = send(
        &deps,
        &Scripted::default(),
        vec![
            queued("1", &receipt("a@example.com", "r1")),
            queued("2", &receipt("b@example.com", "r2")),
            queued("3", &receipt("c@example.com", "r3")),
        ],
    )
    .await;
    assert!(
        matches!(&d[0], Decision::Sent { account, .. } if account == "primary"),
        "{d:?}"
    );
    assert!(
        matches!(&d[1], Decision::Sent { account, .. } if account == "backup"),
        "{d:?}"
    );
    let Decision::Deferred {
        reason,
        retry_after_seconds,
    } = &d[2]
    else {
        panic!("{d:?}")
    };
    assert!(reason.contains("send rate"), "{reason}");
    // Held to SES's line, 1 a second refills (2 − 1.5 × 1) / 1.27 = 0.39 a second.
    assert_eq!(*retry_after_seconds, 2, "a token every 2.5 s");
    // Its claim was released: the retry goes once a token is back.
    let later = Context {
        clock: crate::helpers::FixedClock::at("2026-11-20T13:00:05.000Z"),
        ..deps.clone()
    };
    assert_eq!(
        send(
            &later,
            &Scripted::default(),
            vec![queued("3", &receipt("c@example.com", "r3"))]
        )
        .await[0]
            .name(),
        "sent"
    );
}

#[tokio::test]
async fn consecutive_transport_failures_open_the_circuit_breaker_with_an_alert() {
    let (_dir, deps, alerts) = world(|_| {});
    let memory = SenderMemory::default();
    let transient = Err(SendFailure::Transient);
    // Four failures, a success (the run starts again), then five failures in a row.
    let transport = Scripted {
        answers: Mutex::new(
            [transient; 4]
                .into_iter()
                .chain([Ok(())])
                .chain([transient; 5])
                .collect(),
        ),
        ..Scripted::default()
    };
    let batch = |from: usize, to: usize| {
        (from..to)
            .map(|i| {
                queued(
                    &i.to_string(),
                    &receipt(&format!("u{i}@example.com"), &format!("cb{i}")),
                )
            })
            .collect::<Vec<_>>()
    };
    let sender = Sender::of(&deps, &memory).with_transport(&transport);
    let first = sender.send(batch(0, 5), deps.clock.now()).await.unwrap();
    let names: Vec<&str> = first.iter().map(|j| j.decision.name()).collect();
    assert_eq!(
        names,
        ["deferred", "deferred", "deferred", "deferred", "sent"]
    );
    assert!(
        alerts.all().is_empty(),
        "four failures and a success: closed"
    );

    // The run is kept across batches of one instance: the fifth failure opens it.
    let second = sender.send(batch(5, 11), deps.clock.now()).await.unwrap();
    let names: Vec<&str> = second.iter().map(|j| j.decision.name()).collect();
    assert_eq!(
        names,
        ["deferred"; 5]
            .into_iter()
            .chain(["sent"])
            .collect::<Vec<_>>()
    );
    assert!(
        matches!(&second[5].decision, Decision::Sent { account, .. } if account == "backup"),
        "the rest of the batch fails over: {:?}",
        second[5]
    );
    let opened = alerts.all();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].change.account, "primary");
    assert_eq!(opened[0].change.cause, Cause::TransportFailures);
    assert!(
        opened[0]
            .change
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("5 consecutive")
    );
    let state = &deps.store.states(&["primary".into()]).await.unwrap()["primary"];
    assert_eq!(state.status, Status::Paused);
    assert_eq!(
        state.until,
        Some(deps.clock.now().plus(std::time::Duration::from_secs(60))),
        "a short pause that ends by itself"
    );
}

#[tokio::test]
async fn sends_that_cannot_be_counted_still_count_as_sent_and_raise_a_notice() {
    let (dir, deps, alerts) = world(|c| {
        for account in &mut c.accounts {
            account.send_count_source = sesguard::domain::feedback::attribution::SendSource::Sender;
        }
    });
    // One instance: its windows are read by the first batch and kept for the second. Then the
    // counters are taken away from under it.
    let (memory, transport) = (SenderMemory::default(), Scripted::default());
    let sender = Sender::of(&deps, &memory).with_transport(&transport);
    let send = |batch| sender.send(batch, deps.clock.now());
    let d = send(vec![queued("0", &receipt("a@example.com", "c0"))])
        .await
        .unwrap();
    assert_eq!(d[0].decision.name(), "sent");
    rusqlite::Connection::open(dir.path().join("store.db"))
        .unwrap()
        .execute_batch("DROP TABLE counters")
        .unwrap();
    let d = send(vec![queued("1", &receipt("b@example.com", "c1"))])
        .await
        .unwrap();
    assert_eq!(
        d[0].decision.name(),
        "sent",
        "the mail went: the batch must not be retried"
    );
    let notices = alerts.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "sesguard: sends not counted");
    assert_eq!(
        notices[0].1["uncounted_sends"]["primary"]["transactional"],
        1
    );
}

#[tokio::test]
async fn a_store_failure_mid_batch_still_frees_the_claims_of_what_was_not_sent() {
    let (dir, deps, _) = world(|_| {});
    // The first message meets a transport fault (deferred), the second a rate refusal whose
    // pause cannot be recorded: the history table is gone.
    let transport = Scripted::failing(&[SendFailure::Transient, SendFailure::Rate]);
    rusqlite::Connection::open(dir.path().join("store.db"))
        .unwrap()
        .execute_batch("DROP TABLE history")
        .unwrap();
    let batch = vec![
        queued("1", &receipt("a@example.com", "mid-1")),
        queued("2", &receipt("b@example.com", "mid-2")),
        queued("3", &receipt("c@example.com", "mid-3")),
    ];
    let memory = SenderMemory::default();
    let judged = Sender::of(&deps, &memory)
        .with_transport(&transport)
        .send(batch, deps.clock.now())
        .await
        .unwrap();
    let names: Vec<&str> = judged.iter().map(|j| j.decision.name()).collect();
    assert_eq!(names, ["deferred", "deferred", "deferred"], "{judged:?}");
    assert!(
        matches!(&judged[2].decision, Decision::Deferred { reason, .. } if reason.starts_with("not judged: store")),
        "{judged:?}"
    );
    assert_eq!(
        transport.sent.lock().unwrap().len(),
        2,
        "the third was never tried"
    );

    // The retry: none of the three is a duplicate of itself.
    let again = send(
        &deps,
        &Scripted::default(),
        vec![
            queued("1", &receipt("a@example.com", "mid-1")),
            queued("2", &receipt("b@example.com", "mid-2")),
            queued("3", &receipt("c@example.com", "mid-3")),
        ],
    )
    .await;
    let names: Vec<&str> = again.iter().map(Decision::name).collect();
    assert_eq!(names, ["sent", "sent", "sent"]);
}

#[tokio::test]
async fn refused_credentials_pause_the_account_with_an_alert_and_its_mail_fails_over() {
    use SendFailure::AccessDenied;
    // The primary's role lost `ses:SendEmail`: its message goes to the backup, the primary
    // is paused until an operator resumes it, and the alert names the fault.
    let (_dir, deps, alerts) = world(|_| {});
    let transport = Scripted::failing(&[AccessDenied]);
    let d = send(
        &deps,
        &transport,
        vec![queued("1", &receipt("a@example.com", "denied"))],
    )
    .await;
    assert!(
        matches!(&d[0], Decision::Sent { account, .. } if account == "backup"),
        "{d:?}"
    );
    let state = state_of(&deps, "primary").await;
    assert_eq!(
        (state.status, state.cause, state.until),
        (Status::Paused, Some(Cause::AccessDenied), None)
    );
    let seen = alerts.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        serde_json::to_string(&seen[0])
            .unwrap()
            .contains("AccessDenied"),
        "{seen:?}"
    );

    // Both accounts refuse: the message is deferred, never rejected, and goes once fixed.
    let (_dir, deps, _) = world(|_| {});
    let d = send(
        &deps,
        &Scripted::failing(&[AccessDenied, AccessDenied]),
        vec![queued("1", &receipt("a@example.com", "both"))],
    )
    .await;
    assert_eq!(d[0].name(), "deferred", "{d:?}");
}

/// A world whose accounts' quotas come from SES: the primary's `GetAccount` answers (50,000 a
/// day, 14 a second), the backup's follows `backup_rule`.
fn world_with_ses_quotas(
    backup_rule: &aws_smithy_mocks::Rule,
) -> (tempfile::TempDir, Context, RecordedAlerts) {
    use aws_sdk_sesv2::operation::get_account::GetAccountOutput;
    use aws_sdk_sesv2::types::SendQuota;
    use aws_smithy_mocks::mock;
    use sesguard::adapters::sesv2::{AccountClient, Sesv2Accounts};
    use sesguard::config::Enforcement;

    let (dir, deps, alerts) = world(|config| {
        for account in &mut config.accounts {
            account.daily_quota = None;
        }
    });
    let healthy = mock!(aws_sdk_sesv2::Client::get_account).then_output(|| {
        GetAccountOutput::builder()
            .send_quota(
                SendQuota::builder()
                    .max24_hour_send(50_000.0)
                    .max_send_rate(14.0)
                    .sent_last24_hours(0.0)
                    .build(),
            )
            .build()
    });
    let client = |rule| AccountClient {
        client: crate::helpers::mocked_sesv2(&[rule]),
        enforcement: Enforcement::Off,
        configuration_set: None,
    };
    let ses = Sesv2Accounts::with_clients(std::collections::HashMap::from([
        ("primary".to_owned(), client(&healthy)),
        ("backup".to_owned(), client(backup_rule)),
    ]));
    (dir, deps.with_ses(Arc::new(ses)), alerts)
}

#[tokio::test]
async fn an_account_whose_quota_cannot_be_read_sits_out_while_the_others_send() {
    use aws_sdk_sesv2::operation::get_account::GetAccountError;
    use aws_sdk_sesv2::types::error::TooManyRequestsException;
    use aws_smithy_mocks::mock;

    // The backup's GetAccount fails (SES itself, or the way to it).
    let failing = mock!(aws_sdk_sesv2::Client::get_account).then_error(|| {
        GetAccountError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Rate exceeded")
                .build(),
        )
    });
    let (_dir, deps, _) = world_with_ses_quotas(&failing);

    let d = send(
        &deps,
        &Scripted::default(),
        vec![queued("1", &receipt("a@example.com", "partial"))],
    )
    .await;
    assert!(
        matches!(&d[0], Decision::Sent { account, .. } if account == "primary"),
        "{d:?}"
    );
    assert!(failing.num_calls() >= 1, "the backup's quota was asked for");
}

#[tokio::test]
async fn an_account_whose_credentials_are_refused_for_its_quota_is_paused_once_with_an_alert() {
    use aws_sdk_sesv2::config::http::HttpResponse;
    use aws_smithy_mocks::mock;

    // The backup's role no longer lets sesguard in: its GetAccount is refused with a 403.
    let refused = mock!(aws_sdk_sesv2::Client::get_account).then_http_response(|| {
        let mut response = HttpResponse::new(
            403u16.try_into().expect("status"),
            r#"{"message":"User: arn:aws:sts::111111111111:assumed-role/x/y is not authorized to perform: ses:GetAccount"}"#.into(),
        );
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", "AccessDeniedException");
        response
    });
    let (_dir, deps, alerts) = world_with_ses_quotas(&refused);

    for key in ["refused-1", "refused-2"] {
        let d = send(
            &deps,
            &Scripted::default(),
            vec![queued("1", &receipt("a@example.com", key))],
        )
        .await;
        assert!(
            matches!(&d[0], Decision::Sent { account, .. } if account == "primary"),
            "{d:?}"
        );
    }
    let state = state_of(&deps, "backup").await;
    assert_eq!(
        (state.status, state.cause, state.until),
        (Status::Paused, Some(Cause::AccessDenied), None)
    );
    assert_eq!(alerts.all().len(), 1, "one alert, not one per batch");
}

#[tokio::test]
async fn equal_content_is_held_back_for_the_streams_debounce_only() {
    let (_dir, deps, _) = world(|c| {
        let bulk = c.streams.iter_mut().find(|s| s.name == "bulk").unwrap();
        bulk.debounce = Some(std::time::Duration::from_secs(3600));
    });
    let clock = crate::helpers::FixedClock::at(crate::helpers::SAMPLE_NOW);
    let mut deps = deps;
    deps.clock = clock.clone();
    let reset = r#"{"stream":"transactional","to":["a@example.com"],"subject":"Reset your password","text":"t"}"#;
    let news = r#"{"stream":"bulk","to":["a@example.com"],"subject":"News","text":"t"}"#;
    let transport = Scripted::default();
    let at = |seconds: u64| {
        clock.set(
            &sesguard::domain::common::timestamp::Timestamp::parse_rfc3339(
                crate::helpers::SAMPLE_NOW,
            )
            .unwrap()
            .plus(std::time::Duration::from_secs(seconds))
            .to_string(),
        )
    };
    // A double click: the second request, a second later, is a duplicate.
    let first = send(&deps, &transport, vec![queued("m1", reset)]).await;
    at(1);
    let double = send(&deps, &transport, vec![queued("m2", reset)]).await;
    assert_eq!(first[0].name(), "sent");
    assert!(
        matches!(&double[0], Decision::Duplicate { reason } if reason.contains("debounce (10s)")),
        "{double:?}"
    );
    // A genuine second reset three minutes later goes.
    at(180);
    let second = send(&deps, &transport, vec![queued("m3", reset)]).await;
    assert_eq!(second[0].name(), "sent", "{second:?}");
    // A stream with a longer debounce holds back longer; an idempotency key keeps its window.
    let news_first = send(&deps, &transport, vec![queued("m4", news)]).await;
    at(900);
    let news_again = send(&deps, &transport, vec![queued("m5", news)]).await;
    assert_eq!(
        (news_first[0].name(), news_again[0].name()),
        ("sent", "duplicate")
    );
    let keyed = send(
        &deps,
        &transport,
        vec![queued("m6", &receipt("b@example.com", "order-9"))],
    )
    .await;
    at(900 + 300);
    let keyed_again = send(
        &deps,
        &transport,
        vec![queued("m7", &receipt("b@example.com", "order-9"))],
    )
    .await;
    assert_eq!(
        (keyed[0].name(), keyed_again[0].name()),
        ("sent", "duplicate"),
        "five minutes later, within the idempotency window"
    );
    assert_eq!(transport.sent.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_deferred_request_goes_back_into_its_queue_with_its_origin_when_its_receives_run_short() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use lambda_runtime::{Context, LambdaEvent};
    use serde_json::json;
    use sesguard::adapters::sqs::SqsVisibility;
    use sesguard::lambda::sender::handle;

    let sdk = crate::helpers::local_sdk();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue, arn) = crate::helpers::local_queue(&sqs, "requeue").await;
    let body = r#"{"stream":"bulk","to":["later@example.com"],"subject":"News","text":"t"}"#;
    // Its fourth receive: the transport fails, so it is deferred again.
    let event = sqs_event("first-message", "gone-already", body, 4, &arn);
    let (_dir, state) = deferring_sender(&sqs);
    let response = handle(&state, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "put back as a new message: the old one is deleted"
    );
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| attributes[&name].clone();
    assert_eq!(
        (
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        ),
        ("0".to_owned(), "1".to_owned()),
        "the copy waits out its backoff"
    );

    // What a copy carries: the first message as its origin, and its hop count.
    use sesguard::ports::{QueueVisibility, Requeue};
    let copy = Requeue {
        body: body.into(),
        delay_seconds: 0,
        origin: "first-message".into(),
        hops: 2,
    };
    let refused = SqsVisibility::new(sqs.clone())
        .requeue(&queue, &[copy])
        .await
        .unwrap();
    assert!(refused.is_empty());
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let attributes = received[0].message_attributes.as_ref().unwrap();
    assert_eq!(received[0].body.as_deref(), Some(body));
    assert_eq!(
        attributes["sesguard-origin"].string_value.as_deref(),
        Some("first-message")
    );
    assert_eq!(
        attributes["sesguard-hops"].string_value.as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn a_redelivery_after_the_instance_died_finds_the_sent_record_however_short_in_doubt_is() {
    // in_doubt at its least: twice it (the old retention) is 2 minutes, under the queue's
    // 3-minute visibility timeout. The instance sends, SES accepts, and the instance dies before
    // deleting the message: the queue delivers it again 3 minutes later, and as often as its
    // receives allow.
    let world = World::builder()
        .configure(|config| config.sender.in_doubt = std::time::Duration::from_secs(60))
        .build();
    let transport = Scripted::default();
    // No idempotency key: the queue message is the request's identity.
    let request =
        r#"{"stream":"transactional","to":["a@example.com"],"subject":"Receipt","text":"Thanks"}"#;
    let first = send(&world.deps, &transport, vec![queued("m1", request)]).await;
    assert!(matches!(first[0], Decision::Sent { .. }), "{first:?}");
    for minutes in [3, 6, 27] {
        world
            .clock
            .set(&format!("2026-11-20T13:{minutes:02}:00.000Z"));
        let again = send(&world.deps, &transport, vec![queued("m1", request)]).await;
        assert!(
            matches!(again[0], Decision::Duplicate { .. }),
            "the copy {minutes} minutes later: {again:?}"
        );
    }
    assert_eq!(transport.sent.lock().unwrap().len(), 1, "sent once");
}
