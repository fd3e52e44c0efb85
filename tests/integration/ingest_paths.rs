//! The ingest function end to end through its Lambda handler: every wrapper, partial batch
//! failures, replays, store failures, and concurrent instances.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use sesguard::app::Context;
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::feedback::plan::ChangeSet;
use sesguard::domain::feedback::suppression::{AddressState, Reason, Suppression};
use sesguard::domain::reputation::counters::{Counts, WindowTotals};
use sesguard::domain::reputation::history::HistoryEntry;
use sesguard::domain::reputation::state::AccountState as GuardState;
use sesguard::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits};
use sesguard::domain::sending::send_record::{SendKey, SendRecord};
use sesguard::domain::sending::template_policy::TemplatePolicy;
use sesguard::lambda::ingest::handle;
use sesguard::ports::{
    AccountWindow, ApplyError, AuditEntry, AuditLog, CounterWindow, DomainLedger, DomainRecord,
    FeedbackLedger, GateRead, GateView, GuardLedger, JobLedger, JobProgress, ManualSuppression,
    MessageLedger, Page, PolicyStore, PreventedKey, RateLedger, RateRecord, SendClaim, SendLedger,
    StoreError, SuppressionAdmin, SuppressionList,
};

use crate::helpers::{
    deps, dynamodb, example_config, ingest_function, sample_json, sqlite, sqs_batch,
};
use crate::world::World;

async fn invoke(deps: &Context, event: Value) -> Result<Value, lambda_runtime::Error> {
    handle(
        &ingest_function(deps),
        LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .expect("an SQS batch response")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

async fn suppression(deps: &Context, address: &str) -> Option<Suppression> {
    deps.store
        .get(&EmailAddress::parse(address).unwrap())
        .await
        .unwrap()
}

async fn totals(deps: &Context, account: &str) -> Counts {
    let now = deps.clock.now();
    let (first, last) = deps.policy.window.buckets_ending(now);
    let window = deps.store.window(account, first, last).await.unwrap();
    WindowTotals::sum(&window.buckets, first, last).total
}

/// An SES sample with edits applied.
fn ses(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut value = sample_json(&format!("ses/{name}.json"));
    edit(&mut value);
    value
}

fn sqlite_deps() -> (tempfile::TempDir, Context) {
    let world = World::builder().build();
    (world.dir.expect("a SQLite world"), world.deps)
}

#[tokio::test]
async fn an_sqs_batch_lists_only_its_malformed_records_as_failures_and_stores_the_rest() {
    let (_dir, deps) = sqlite_deps();
    let response = invoke(&deps, sample_json("sqs-batch-with-malformed.json"))
        .await
        .unwrap();
    assert_eq!(
        failures(&response),
        [
            "22222222-0000-4000-8000-000000000002",
            "22222222-0000-4000-8000-000000000003"
        ]
    );
    assert_eq!(
        suppression(&deps, "typo@exmaple.com").await.unwrap().reason,
        Reason::Bounce
    );
    assert_eq!(
        suppression(&deps, "angry@example.com")
            .await
            .unwrap()
            .reason,
        Reason::Complaint
    );
}

#[tokio::test]
async fn the_same_feedback_in_every_wrapper_is_recorded_once() {
    let (_dir, deps) = sqlite_deps();
    let first = invoke(&deps, sample_json("ses/bounce-permanent.json"))
        .await
        .unwrap();
    assert_eq!(
        (first["processed"].as_u64(), first["suppressed"].as_u64()),
        (Some(1), Some(2))
    );

    let http = invoke(&deps, sample_json("sns-http-bounce.json"))
        .await
        .unwrap();
    assert_eq!(
        (http["processed"].as_u64(), http["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let sqs = invoke(&deps, sample_json("sqs-sns-bounce.json"))
        .await
        .unwrap();
    assert!(failures(&sqs).is_empty());

    assert_eq!(
        suppression(&deps, "nobody@example.org")
            .await
            .unwrap()
            .count,
        1
    );
    assert_eq!(totals(&deps, "primary").await.hard_bounces, 2);
}

const EVERY_SAMPLE: [&str; 18] = [
    "ses/bounce-permanent.json",
    "ses/bounce-transient.json",
    "ses/complaint.json",
    "ses/complaint-not-spam.json",
    "ses/delivery.json",
    "ses/event-send.json",
    "ses/event-bounce.json",
    "ses/event-complaint.json",
    "ses/event-delivery.json",
    "ses/event-open.json",
    "sns-http-bounce.json",
    "sns-lambda-delivery.json",
    "sns-lambda-complaint.json",
    "sqs-sns-bounce.json",
    "sqs-sns-soft-bounce.json",
    "sqs-raw-complaint.json",
    "sqs-raw-send.json",
    "sqs-batch-with-malformed.json",
];

async fn snapshot(deps: &Context) -> (Vec<Suppression>, Counts, Vec<AddressState>) {
    let listed = deps.store.list(None, None, 1000).await.unwrap().items;
    let tracked =
        ["full@example.org", "happy@example.com"].map(|e| EmailAddress::parse(e).unwrap());
    let states = deps
        .store
        .address_states(&tracked, deps.clock.now())
        .await
        .unwrap();
    let mut states: Vec<AddressState> = tracked
        .iter()
        .filter_map(|e| states.get(e).cloned())
        .collect();
    states.sort_by_key(|s| s.version);
    (listed, totals(deps, "primary").await, states)
}

#[tokio::test]
async fn replaying_every_sample_changes_nothing_the_second_time() {
    let (_dir, deps) = sqlite_deps();
    for name in EVERY_SAMPLE {
        let _ = invoke(&deps, sample_json(name)).await.unwrap();
    }
    let once = snapshot(&deps).await;
    assert_eq!(once.0.len(), 5, "suppressed after one pass: {:?}", once.0);
    assert_eq!(
        once.1,
        Counts {
            sends: 2,
            deliveries: 3,
            hard_bounces: 3,
            soft_bounces: 1,
            complaints: 2
        }
    );

    for name in EVERY_SAMPLE {
        let response = invoke(&deps, sample_json(name)).await.unwrap();
        if let Some(processed) = response.get("processed") {
            assert_eq!(processed, 0, "{name} was recorded again");
        }
    }
    assert_eq!(snapshot(&deps).await, once);
}

/// A store whose every request fails as if DynamoDB were unreachable.
pub struct Unreachable;

fn down() -> StoreError {
    StoreError::Unavailable {
        action: "testing".into(),
        source: "connection refused".into(),
    }
}

#[async_trait]
impl FeedbackLedger for Unreachable {
    async fn address_states(
        &self,
        _: &[EmailAddress],
        _: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError> {
        Err(down())
    }
    async fn apply(&self, _: &ChangeSet) -> Result<(), ApplyError> {
        Err(ApplyError::Store(down()))
    }
    fn max_items_per_apply(&self) -> usize {
        100
    }
}

#[async_trait]
impl SuppressionList for Unreachable {
    async fn suppressed(
        &self,
        _: &[EmailAddress],
    ) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
        Err(down())
    }
    async fn get(&self, _: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        Err(down())
    }
    async fn list(
        &self,
        _: Option<Reason>,
        _: Option<&str>,
        _: usize,
    ) -> Result<Page<Suppression>, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl CounterWindow for Unreachable {
    async fn window(
        &self,
        _: &str,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<AccountWindow, StoreError> {
        Err(down())
    }
    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl RateLedger for Unreachable {
    async fn rate(&self, _: &str) -> Result<RateRecord, StoreError> {
        Err(down())
    }
    async fn take(
        &self,
        _: &str,
        _: &RateLimits,
        _: u64,
        _: Timestamp,
        _: Option<&RateRecord>,
    ) -> Result<Grant, StoreError> {
        Err(down())
    }
    async fn set_limits(&self, _: &str, _: &LimitsPatch) -> Result<(), StoreError> {
        Err(down())
    }
    async fn refill(&self, _: &str, _: &RateLimits, _: Timestamp) -> Result<(), StoreError> {
        Err(down())
    }
}

#[async_trait]
impl SuppressionAdmin for Unreachable {
    async fn suppress(&self, _: &[ManualSuppression], _: Timestamp) -> Result<usize, StoreError> {
        Err(down())
    }
    async fn unsuppress(&self, _: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl AuditLog for Unreachable {
    async fn record(&self, _: &AuditEntry, _: Timestamp) -> Result<(), StoreError> {
        Err(down())
    }
    async fn audit(&self, _: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl JobLedger for Unreachable {
    async fn job(&self, _: &str) -> Result<Option<JobProgress>, StoreError> {
        Err(down())
    }
    async fn save_job(&self, _: &JobProgress) -> Result<bool, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl DomainLedger for Unreachable {
    async fn domains(&self, _: &[String], _: Timestamp) -> Result<Vec<DomainRecord>, StoreError> {
        Err(down())
    }
    async fn put_domains(&self, _: &[DomainRecord]) -> Result<(), StoreError> {
        Err(down())
    }
    async fn count_prevented(
        &self,
        _: &str,
        _: &BTreeMap<PreventedKey, u64>,
    ) -> Result<(), StoreError> {
        Err(down())
    }
    async fn prevented(&self, _: &str) -> Result<BTreeMap<PreventedKey, u64>, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl GateRead for Unreachable {
    async fn gate_view(
        &self,
        _: &[EmailAddress],
        _: &[String],
        _: &[String],
    ) -> Result<GateView, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl MessageLedger for Unreachable {
    async fn claim(
        &self,
        _: &str,
        _: &str,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn release(&self, _: &[String]) -> Result<(), StoreError> {
        Err(down())
    }
    async fn seen(&self, _: &str, _: Timestamp) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn remember(&self, _: &str, _: Timestamp) -> Result<(), StoreError> {
        Err(down())
    }
}

#[async_trait]
impl SendLedger for Unreachable {
    async fn claim_send(&self, _: &SendRecord, _: Timestamp) -> Result<SendClaim, StoreError> {
        Err(down())
    }
    async fn mark_sent(&self, _: &[SendRecord]) -> Result<(), StoreError> {
        Err(down())
    }
    async fn settle(&self, _: &[SendKey], _: Timestamp) -> Result<usize, StoreError> {
        Err(down())
    }
    async fn give_up(&self, _: &[SendKey]) -> Result<(), StoreError> {
        Err(down())
    }
}

#[async_trait]
impl PolicyStore for Unreachable {
    async fn template_policy(&self) -> Result<TemplatePolicy, StoreError> {
        Err(down())
    }
    async fn put_template_policy(&self, _: &TemplatePolicy) -> Result<(), StoreError> {
        Err(down())
    }
}

#[async_trait]
impl GuardLedger for Unreachable {
    async fn transition(
        &self,
        _: &str,
        _: u64,
        _: &GuardState,
        _: &HistoryEntry,
        _: Timestamp,
    ) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn states(&self, _: &[String]) -> Result<HashMap<String, GuardState>, StoreError> {
        Err(down())
    }
    async fn history(&self, _: &str, _: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        Err(down())
    }
}

#[tokio::test]
async fn an_unreachable_store_fails_every_storable_record_for_retry() {
    let deps = deps(Arc::new(Unreachable));
    let response = invoke(&deps, sample_json("sqs-batch-with-malformed.json"))
        .await
        .unwrap();
    assert_eq!(
        failures(&response).len(),
        4,
        "malformed ones for the DLQ, the rest for retry"
    );

    let error = invoke(&deps, sample_json("sns-lambda-complaint.json"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not stored"), "{error}");
    assert!(
        invoke(&deps, sample_json("ses/delivery.json"))
            .await
            .is_err()
    );
    // Nothing to store, nothing to fail.
    assert!(
        invoke(&deps, sample_json("ses/event-open.json"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_malformed_sns_record_is_skipped_and_the_others_are_stored() {
    let (_dir, deps) = sqlite_deps();
    let mut event = sample_json("sns-lambda-complaint.json");
    let mut broken = event["Records"][0].clone();
    broken["Sns"]["MessageId"] = json!("broken-one");
    broken["Sns"]["Message"] = json!("{\"notificationType\":\"Bounce\"");
    event["Records"].as_array_mut().unwrap().push(broken);

    let response = invoke(&deps, event).await.unwrap();
    assert_eq!(
        (response["processed"].as_u64(), response["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(response["errors"][0]["record"], "broken-one");
    assert!(suppression(&deps, "angry@example.com").await.is_some());
}

fn soft(id: &str, at: &str, to: &str) -> Value {
    ses("bounce-transient", |v| {
        v["bounce"]["feedbackId"] = json!(id);
        v["bounce"]["timestamp"] = json!(at);
        v["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!(to);
    })
}

fn delivered(id: &str, at: &str, to: &str) -> Value {
    ses("delivery", |v| {
        v["mail"]["messageId"] = json!(id);
        v["delivery"]["timestamp"] = json!(at);
        v["delivery"]["recipients"] = json!([to]);
    })
}

#[tokio::test]
async fn the_third_soft_bounce_suppresses_unless_a_delivery_came_between() {
    let (_dir, deps) = sqlite_deps();
    let days = [
        "2026-11-08T10:00:00.000Z",
        "2026-11-12T10:00:00.000Z",
        "2026-11-19T10:00:00.000Z",
    ];
    let bodies = days.iter().enumerate().flat_map(|(i, at)| {
        [
            soft(&format!("fa{i}"), at, "always-full@example.com"),
            soft(&format!("fb{i}"), at, "sometimes-full@example.com"),
        ]
    });
    let delivery = delivered(
        "m-d",
        "2026-11-13T10:00:00.000Z",
        "sometimes-full@example.com",
    );
    let event = sqs_batch(bodies.chain([delivery]).collect());
    let response = invoke(&deps, event).await.unwrap();
    assert!(failures(&response).is_empty());

    let s = suppression(&deps, "always-full@example.com")
        .await
        .expect("three soft bounces in 14 days");
    assert_eq!((s.reason, s.count), (Reason::SoftBounce, 3));
    assert!(
        suppression(&deps, "sometimes-full@example.com")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn soft_bounces_further_apart_than_the_window_do_not_suppress() {
    let (_dir, deps) = sqlite_deps();
    for (i, at) in [
        "2026-10-01T00:00:00.000Z",
        "2026-10-10T00:00:00.000Z",
        "2026-10-20T00:00:00.000Z",
    ]
    .iter()
    .enumerate()
    {
        invoke(&deps, soft(&format!("w{i}"), at, "seasonal@example.com"))
            .await
            .unwrap();
    }
    assert!(suppression(&deps, "seasonal@example.com").await.is_none());
}

#[tokio::test]
async fn account_suppression_list_feedback_suppresses_without_touching_the_rates() {
    let (_dir, deps) = sqlite_deps();
    invoke(
        &deps,
        ses("bounce-permanent", |v| {
            v["bounce"]["bounceSubType"] = json!("OnAccountSuppressionList")
        }),
    )
    .await
    .unwrap();
    invoke(
        &deps,
        ses("complaint", |v| {
            v["complaint"]["complaintSubType"] = json!("OnAccountSuppressionList")
        }),
    )
    .await
    .unwrap();
    assert!(suppression(&deps, "gone@example.net").await.is_some());
    assert!(suppression(&deps, "angry@example.com").await.is_some());
    let counts = totals(&deps, "primary").await;
    assert_eq!((counts.hard_bounces, counts.complaints), (0, 0));
}

#[tokio::test]
async fn mailbox_simulator_and_unparseable_addresses_are_never_stored() {
    let (_dir, deps) = sqlite_deps();
    let event = ses("bounce-permanent", |v| {
        v["bounce"]["bouncedRecipients"][0]["emailAddress"] =
            json!("bounce@simulator.amazonses.com");
        v["bounce"]["bouncedRecipients"][1]["emailAddress"] = json!("not an address");
    });
    let response = invoke(&deps, event).await.unwrap();
    assert_eq!(response["processed"], 1);
    assert!(
        deps.store
            .list(None, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(totals(&deps, "primary").await.hard_bounces, 0);
}

#[tokio::test]
async fn send_events_count_only_where_ses_events_are_the_send_source() {
    let (_dir, store) = sqlite();
    let mut config = example_config();
    config.accounts[0].send_count_source =
        sesguard::domain::feedback::attribution::SendSource::Sender;
    let deps = crate::helpers::deps_with(config, Arc::new(store)).0;
    let response = invoke(&deps, sample_json("ses/event-send.json"))
        .await
        .unwrap();
    assert_eq!(response["ignored"], 1);
    assert_eq!(totals(&deps, "primary").await.sends, 0);

    let (_dir2, deps2) = sqlite_deps();
    invoke(&deps2, sample_json("ses/event-send.json"))
        .await
        .unwrap();
    assert_eq!(totals(&deps2, "primary").await.sends, 2);
}

#[tokio::test]
async fn concurrent_instances_record_a_redelivered_batch_exactly_once() {
    let deps = deps(Arc::new(dynamodb().await));
    let batch = sample_json("sqs-batch-with-malformed.json");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (deps, batch) = (deps.clone(), batch.clone());
            tokio::spawn(async move { invoke(&deps, batch).await.unwrap() })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(
            failures(&response).len(),
            2,
            "only the malformed ones: {response}"
        );
    }
    assert_eq!(
        suppression(&deps, "typo@exmaple.com").await.unwrap().count,
        1
    );
    let counts = totals(&deps, "primary").await;
    assert_eq!((counts.hard_bounces, counts.complaints), (1, 1));
}

#[tokio::test]
async fn concurrent_soft_bounces_of_one_address_are_all_counted() {
    let deps = deps(Arc::new(dynamodb().await));
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let deps = deps.clone();
            let event = soft(
                &format!("c{i}"),
                &format!("2026-11-20T0{i}:00:00.000Z"),
                "busy@example.com",
            );
            tokio::spawn(async move { invoke(&deps, event).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap()["processed"], 1);
    }
    let s = suppression(&deps, "busy@example.com")
        .await
        .expect("suppressed");
    assert_eq!((s.reason, s.count), (Reason::SoftBounce, 5));
    assert_eq!(totals(&deps, "primary").await.soft_bounces, 5);
}

/// Buckets of `account` holding hard bounces, by start.
async fn bounce_buckets(deps: &Context, account: &str) -> Vec<(String, u64)> {
    let (first, last) = deps.policy.window.buckets_ending(deps.clock.now());
    let window = deps.store.window(account, first, last).await.unwrap();
    window
        .buckets
        .iter()
        .filter(|b| b.total.hard_bounces + b.total.complaints > 0)
        .map(|b| {
            let bad = b.total.hard_bounces + b.total.complaints;
            (b.start.to_rfc3339(), bad)
        })
        .collect()
}

#[tokio::test]
async fn damaged_feedback_that_names_its_recipients_is_recorded_with_fallbacks() {
    let (_dir, deps) = sqlite_deps();
    let tags = json!({"sesguard-account": ["primary"]});
    let recipient = |address: &str| json!([{"emailAddress": address}]);
    // A `mail.timestamp` that is not RFC 3339 and no bounce time: counted when SNS published it.
    let in_sns = json!({"Type": "Notification", "MessageId": "sns-1",
        "TopicArn": "arn:aws:sns:us-east-1:111111111111:ses-feedback",
        "Timestamp": "2026-11-20T11:05:00.000Z",
        "Message": json!({"notificationType": "Bounce",
            "mail": {"messageId": "m1", "timestamp": "2016-01-27T14: 59: 38.237Z", "tags": tags},
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": recipient("sns@example.com")}}).to_string()});
    // No `mail` object at all: the unattributed account, at the bounce's own time.
    let no_mail = json!({"notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "timestamp": "2026-11-20T12:20:00.000Z",
                   "bouncedRecipients": recipient("orphan@example.com")}});
    // A damaged time and nothing else to go by: counted when received (13:00).
    let received = json!({"eventType": "Complaint",
        "mail": {"messageId": "m3", "timestamp": "2021-08-23 06:56:30.087", "tags": tags},
        "complaint": {"complaintFeedbackType": "abuse", "complainedRecipients": recipient("late@example.com")}});
    // Naming no recipient, it protects nobody: refused as before.
    let nobody = json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent"}});
    let response = invoke(&deps, sqs_batch(vec![in_sns, no_mail, received, nobody]))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["r3"]);
    for address in ["sns@example.com", "orphan@example.com", "late@example.com"] {
        assert!(suppression(&deps, address).await.is_some(), "{address}");
    }
    assert_eq!(
        bounce_buckets(&deps, "primary").await,
        [
            ("2026-11-20T11:00:00.000Z".to_owned(), 1),
            ("2026-11-20T13:00:00.000Z".to_owned(), 1)
        ]
    );
    assert_eq!(
        bounce_buckets(&deps, "unattributed").await,
        [("2026-11-20T12:15:00.000Z".to_owned(), 1)]
    );
}

/// A silent account is visible: each account's status names when its feedback last arrived
/// (to the bucket), and `check-feedback` calls an account silent when mail went out in the
/// last 24 hours, by SES's count or sesguard's, but no feedback came within the period.
#[tokio::test]
async fn each_account_says_when_its_feedback_last_arrived_and_a_silent_one_is_named() {
    use sesguard::app::feedback_watch::{Verdict, check_all, judge};
    use sesguard::app::status::status;
    use sesguard::domain::feedback::attribution::SendSource;

    use crate::ses_event::SesEvent;

    let world = World::builder()
        .configure(|config| {
            // backup's sends are counted by the sender: its Send events are not its feedback.
            config.accounts[1].send_count_source = SendSource::Sender;
        })
        .build();
    let deps = &world.deps;
    let at = |id: &str, account: &str| {
        SesEvent::delivery(id)
            .to(["someone@example.net"])
            .at("2026-11-20T12:50:00.000Z")
            .sent_at("2026-11-20T12:49:00.000Z")
            .tagged(account, "transactional")
            .published()
    };
    let sent_by_backup = SesEvent::send("b1")
        .to(["else@example.net"])
        .at("2026-11-20T12:55:00.000Z")
        .tagged("backup", "transactional")
        .published();
    invoke(deps, sqs_batch(vec![at("p1", "primary"), sent_by_backup]))
        .await
        .unwrap();

    let now = deps.clock.now();
    let statuses = status(deps, now, None).await.unwrap();
    let last = |name: &str| {
        statuses
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .last_feedback
    };
    let bucket = Timestamp::parse_rfc3339("2026-11-20T12:45:00.000Z").unwrap();
    assert_eq!(
        last("primary"),
        Some(bucket),
        "the 15-minute bucket of the delivery"
    );
    assert_eq!(
        last("backup"),
        None,
        "a Send the sender counts is not feedback"
    );

    let hour = std::time::Duration::from_secs(3600);
    let checks = check_all(deps, now, hour).await.unwrap();
    let verdict = |name: &str| checks.iter().find(|c| c.account == name).unwrap().verdict;
    assert_eq!(verdict("primary"), Verdict::Receiving);
    assert_eq!(
        checks
            .iter()
            .find(|c| c.account == "primary")
            .unwrap()
            .age_seconds,
        Some(15 * 60)
    );
    // Locally there is no SES to ask; SES's own count of B's sends makes B silent.
    let backup = statuses.iter().find(|s| s.name == "backup").unwrap();
    assert_eq!(judge(backup, None, now, hour).verdict, Verdict::Quiet);
    assert_eq!(judge(backup, Some(20), now, hour).verdict, Verdict::Silent);
    // Feedback older than the period asked about is not enough.
    let primary = statuses.iter().find(|s| s.name == "primary").unwrap();
    let later = now.plus(2 * hour);
    assert_eq!(
        judge(primary, Some(5), later, hour).verdict,
        Verdict::Silent
    );
    assert_eq!(
        judge(primary, Some(5), later, 3 * hour).verdict,
        Verdict::Receiving
    );
}
