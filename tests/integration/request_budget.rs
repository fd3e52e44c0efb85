//! DynamoDB cost budgets, shown by counting the requests the adapter sends (and the actions
//! inside each transaction) for 10-record SQS batches.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use sesguard::app::ingest::Ingestor;
use sesguard::lambda::ingest::handle;

use crate::helpers::{deps, dynamodb_logged, ingest_function, sample_json, sqs_batch};
use crate::wire::RequestCounter;

/// A 10-record SQS batch of SES notifications made from a sample by `vary(i, notification)`.
fn batch(sample: &str, vary: impl Fn(usize, &mut Value)) -> Value {
    let bodies = (0..10)
        .map(|i| {
            let mut body = sample_json(sample);
            vary(i, &mut body);
            body
        })
        .collect();
    sqs_batch(bodies)
}

async fn run(event: Value) -> (Vec<(String, usize)>, Value) {
    let log = RequestCounter::default();
    let store = dynamodb_logged(Some(log.clone())).await;
    let deps = deps(Arc::new(store));
    log.take(); // table creation
    let response = handle(
        &ingest_function(&deps),
        LambdaEvent::new(event, Context::default()),
    )
    .await
    .unwrap();
    (log.take(), response)
}

#[tokio::test]
async fn ten_hard_bounces_cost_a_state_read_one_transaction_and_one_window_query() {
    // Ten bounces of one account, two recipients each, among 15 distinct addresses.
    let event = batch("ses/bounce-permanent.json", |i, n| {
        n["bounce"]["feedbackId"] = json!(format!("fb-{i}"));
        n["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!(format!("user{i}@example.org"));
        n["bounce"]["bouncedRecipients"][1]["emailAddress"] =
            json!(format!("shared{}@example.net", i % 5));
    });
    let (requests, response) = run(event).await;
    assert_eq!(response["batchItemFailures"], json!([]));
    let claims = 10;
    let distinct_addresses = 15;
    let counters = 1;
    assert_eq!(
        requests,
        vec![
            ("BatchGetItem".to_owned(), 0), // the accounts' guard states: where buckets start
            (
                "TransactWriteItems".to_owned(),
                claims + distinct_addresses + counters
            ),
            ("Query".to_owned(), 0), // the account's window and state, for the guard
        ]
    );
}

#[tokio::test]
async fn ten_deliveries_add_no_per_event_write_beyond_the_claims() {
    let event = batch("ses/delivery.json", |i, n| {
        n["mail"]["messageId"] = json!(format!("msg-{i}"));
        n["delivery"]["recipients"] = json!([format!("reader{i}@example.com")]);
    });
    let (requests, _) = run(event).await;
    // One batched read for soft-bounce resets; the claims and one counter, nothing per
    // address; then the account's window.
    assert_eq!(
        requests,
        vec![
            ("BatchGetItem".to_owned(), 0), // the accounts' guard states: where buckets start
            ("BatchGetItem".to_owned(), 0),
            ("TransactWriteItems".to_owned(), 10 + 1),
            ("Query".to_owned(), 0),
        ]
    );
}

#[tokio::test]
async fn ten_send_events_cost_the_claims_one_counter_and_a_window_query() {
    let event = batch("ses/event-send.json", |i, n| {
        n["mail"]["messageId"] = json!(format!("msg-{i}"))
    });
    let (requests, _) = run(event).await;
    assert_eq!(
        requests,
        vec![
            ("BatchGetItem".to_owned(), 0), // the accounts' guard states: where buckets start
            ("TransactWriteItems".to_owned(), 10 + 1),
            ("Query".to_owned(), 0)
        ]
    );
}

#[tokio::test]
async fn a_redelivered_batch_costs_one_refused_transaction_and_a_window_query() {
    let event = batch("ses/complaint.json", |i, n| {
        n["complaint"]["feedbackId"] = json!(format!("c-{i}"));
        n["complaint"]["complainedRecipients"][0]["emailAddress"] =
            json!(format!("c{i}@example.com"));
    });
    let log = RequestCounter::default();
    let deps = deps(Arc::new(dynamodb_logged(Some(log.clone())).await));
    handle(
        &ingest_function(&deps),
        LambdaEvent::new(event.clone(), Context::default()),
    )
    .await
    .unwrap();
    log.take();
    let response = handle(
        &ingest_function(&deps),
        LambdaEvent::new(event, Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    // Refused whole; the account is still reviewed, so a retry after a failed review works.
    assert_eq!(
        log.take(),
        vec![
            ("BatchGetItem".to_owned(), 0), // the accounts' guard states: where buckets start
            ("TransactWriteItems".to_owned(), 10 + 10 + 1),
            ("Query".to_owned(), 0)
        ]
    );
}

/// Accepts every message.
struct Accept;

#[async_trait::async_trait]
impl sesguard::ports::MailTransport for Accept {
    async fn send(
        &self,
        mail: &sesguard::domain::sending::request::OutgoingMail,
    ) -> Result<String, sesguard::ports::TransportError> {
        Ok(format!("id-{}", mail.recipients()))
    }
}

/// SQS records for send requests, as the event source mapping delivers them from `queue`.
async fn send_batch(sqs: &aws_sdk_sqs::Client, queue: &str, arn: &str, bodies: &[String]) -> Value {
    let mut records = Vec::new();
    for body in bodies {
        sqs.send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    while records.len() < bodies.len() {
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in received.messages.unwrap_or_default() {
            records.push(json!({
                "messageId": message.message_id, "receiptHandle": message.receipt_handle,
                "body": message.body, "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs", "eventSourceARN": arn,
            }));
        }
    }
    json!({ "Records": records })
}

#[tokio::test]
async fn a_batch_of_ten_sends_costs_one_read_a_claim_each_and_one_write_per_account() {
    use sesguard::adapters::sqs::SqsVisibility;
    use sesguard::lambda::sender::handle;
    use sesguard::ports::PolicyStore;
    use sesguard::wiring::SenderFunction;

    let store_log = RequestCounter::default();
    let store = Arc::new(dynamodb_logged(Some(store_log.clone())).await);
    let mut config = crate::helpers::example_config();
    for account in &mut config.accounts {
        account.send_count_source = sesguard::domain::feedback::attribution::SendSource::Sender;
    }
    // The primary's bucket holds 5: the sixth transactional message fails over to the backup
    // (whose burst at 14 a second, held to SES's line, is one), and the bulk stream (primary
    // only) has to wait.
    config.accounts[0].max_send_rate = Some(100.0);
    config.accounts[0].limits.capacity = Some(5.0);
    let (mut deps, _) = crate::helpers::deps_with(config, store.clone());
    deps.transport = Arc::new(Accept);
    Ingestor::of(&deps)
        .ingest(
            crate::helpers::sample_inbound("ses/bounce-permanent.json"),
            deps.clock.now(),
        )
        .await;
    let mut policy = store.template_policy().await.unwrap();
    policy.blocked.insert("newsletter".into());
    store.put_template_policy(&policy).await.unwrap();

    let sqs_log = RequestCounter::default();
    let sdk = crate::helpers::local_sdk();
    let sqs_plain = aws_sdk_sqs::Client::new(&sdk);
    let sqs_logged = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(sqs_log.clone())
            .build(),
    );
    let (queue, arn) = crate::helpers::local_queue(&sqs_plain, "budget").await;
    let transactional = |to: &str, key: &str| {
        format!(
            r#"{{"stream":"transactional","to":["{to}"],"template":{{"name":"receipt","data":{{}}}},"idempotency_key":"{key}"}}"#
        )
    };
    let mut bodies: Vec<String> = (0..6)
        .map(|i| transactional(&format!("user{i}@example.com"), &format!("k{i}")))
        .collect();
    bodies.push(transactional("user0@example.com", "k0")); // a duplicate
    bodies.push(transactional("nobody@example.org", "k7")); // suppressed
    bodies.push(
        r#"{"stream":"bulk","to":["x@example.com"],"template":{"name":"newsletter"}}"#.into(),
    ); // blocked
    bodies.push(r#"{"stream":"bulk","to":["y@example.com"],"subject":"s","text":"t"}"#.into()); // deferred
    let event = send_batch(&sqs_plain, &queue, &arn, &bodies).await;
    let state = SenderFunction {
        context: deps,
        visibility: Some(Arc::new(SqsVisibility::new(sqs_logged))),
        memory: Default::default(),
    };
    store_log.take();

    let response = handle(&state, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"].as_array().unwrap().len(),
        1,
        "only the deferred message stays: {response}"
    );
    let claims = 10;
    let mut expected = vec![
        ("BatchGetItem".to_owned(), 0), // policy, 9 recipients, 2 states, 2 rate records
        ("Query".to_owned(), 0),        // primary's window, read once per refresh
        ("Query".to_owned(), 0),        // backup's window
    ];
    let mut requests = store_log.take();
    let tail = requests.split_off(3);
    assert_eq!(requests, expected);
    let count = |name: &str| tail.iter().filter(|(op, _)| op == name).count();
    assert_eq!(
        count("PutItem"),
        claims + 2,
        "a conditional claim of each message's identity, and of the content of the two without an idempotency key"
    );
    assert_eq!(
        count("UpdateItem"),
        4,
        "per account used, a take from its paced bucket: assumed busy, the first write meets a part \
         never written and the second starts it (a busy part takes one write)"
    );
    assert_eq!(
        count("BatchWriteItem"),
        3,
        "the six sent marked sent; the records of the three not sent given up; the two content claims released"
    );
    assert_eq!(
        tail.last(),
        Some(&("TransactWriteItems".to_owned(), 2)),
        "the sends counted for both accounts in one write"
    );
    assert_eq!(tail.len(), claims + 2 + 4 + 3 + 1, "nothing else: {tail:?}");
    assert_eq!(
        sqs_log.take(),
        vec![("ChangeMessageVisibilityBatch".to_owned(), 0)],
        "one call hides every deferred message"
    );

    // The next batch on the same instance reuses the windows: no query at all.
    let bodies: Vec<String> = (10..20)
        .map(|i| transactional(&format!("user{i}@example.com"), &format!("k{i}")))
        .collect();
    let event = send_batch(&sqs_plain, &queue, &arn, &bodies).await;
    store_log.take();
    handle(&state, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let requests = store_log.take();
    expected.truncate(1);
    assert_eq!(requests[..1], expected[..]);
    assert!(
        requests
            .iter()
            .all(|(op, _)| op != "Query" && op != "GetItem"),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_calm_accounts_window_is_read_again_only_on_bad_news_or_after_five_seconds() {
    let log = RequestCounter::default();
    let clock = crate::helpers::FixedClock::at(crate::helpers::SAMPLE_NOW);
    let deps = sesguard::app::Context {
        clock: clock.clone(),
        ..deps(Arc::new(dynamodb_logged(Some(log.clone())).await))
    };
    let queries = |log: &RequestCounter| log.take().iter().filter(|(op, _)| op == "Query").count();
    let ingest = |event: Value| {
        let deps = &deps;
        async move {
            let response = handle(
                &ingest_function(deps),
                LambdaEvent::new(event, Context::default()),
            )
            .await
            .unwrap();
            assert_eq!(response["batchItemFailures"], json!([]));
        }
    };
    let sends = |from: usize| {
        batch("ses/event-send.json", move |i, n| {
            n["mail"]["messageId"] = json!(format!("msg-{}", from + i))
        })
    };
    log.take();
    ingest(sends(0)).await;
    assert_eq!(queries(&log), 1, "the first review reads the window");
    ingest(sends(10)).await;
    ingest(sends(20)).await;
    assert_eq!(queries(&log), 0, "sends only, calm: the read is reused");
    let mut bounce = sample_json("ses/event-bounce.json");
    bounce["mail"]["messageId"] = json!("msg-0");
    ingest(sqs_batch(vec![bounce])).await;
    assert_eq!(queries(&log), 1, "a hard bounce: read again");
    ingest(sends(30)).await;
    assert_eq!(
        queries(&log),
        0,
        "1 bounce in 30 sends is under the warn level: calm"
    );
    clock.set("2026-11-20T13:00:05.000Z");
    ingest(sends(40)).await;
    assert_eq!(queries(&log), 1, "five seconds on: read again");
}
