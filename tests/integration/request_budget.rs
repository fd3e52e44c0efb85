//! DynamoDB cost budgets, shown by counting the requests the adapter sends (and the actions
//! inside each transaction) for 10-record SQS batches.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use sesguard::handlers::ingest::handle;

use crate::helpers::{RequestLog, deps, dynamodb_logged, sample_json, sqs_batch};

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
    let log = RequestLog::default();
    let store = dynamodb_logged(Some(log.clone())).await;
    let deps = deps(Arc::new(store));
    log.take(); // table creation
    let response = handle(&deps, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    (log.take(), response)
}

#[tokio::test]
async fn ten_hard_bounces_cost_one_transaction_and_one_window_query() {
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
    let log = RequestLog::default();
    let deps = deps(Arc::new(dynamodb_logged(Some(log.clone())).await));
    handle(&deps, LambdaEvent::new(event.clone(), Context::default()))
        .await
        .unwrap();
    log.take();
    let response = handle(&deps, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    // Refused whole; the account is still reviewed, so a retry after a failed review works.
    assert_eq!(
        log.take(),
        vec![
            ("TransactWriteItems".to_owned(), 10 + 10 + 1),
            ("Query".to_owned(), 0)
        ]
    );
}
