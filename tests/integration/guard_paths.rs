//! The guard through the ingest path: thresholds crossed by real batches, one transition
//! with one history entry and one alert, also under concurrent instances on DynamoDB.

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::reputation::state::StateName;
use sesguard::domain::reputation::state::{Cause, Status};
use sesguard::lambda::ingest::handle;
use sesguard::ports::Store;

use crate::helpers::{
    RecordedAlerts, SAMPLE_NOW, deps_with, dynamodb, example_config, ingest_function, sqlite,
    sqs_batch,
};
use crate::ses_event::SesEvent;

/// A Send event for `count` recipients of `stream`, at `minute` past 10:00 on the sample day.
pub(crate) fn send(id: &str, stream: &str, count: usize, minute: u32) -> Value {
    SesEvent::send(id)
        .to((0..count).map(|i| format!("{stream}-{id}-{i}@example.com")))
        .sent_at(&format!("2026-11-20T10:{minute:02}:00.000Z"))
        .tagged("primary", stream)
        .published()
}

/// A hard bounce of `id@example.com`, on `stream`, at `minute` and a half past 10:00.
pub(crate) fn bounce(id: &str, stream: &str, minute: u32) -> Value {
    SesEvent::bounce(&format!("m-{id}"))
        .to([format!("{id}@example.com")])
        .feedback_id(id)
        .at(&format!("2026-11-20T10:{minute:02}:30.000Z"))
        .tagged("primary", stream)
        .published()
}

pub(crate) async fn invoke(deps: &Context, event: Value) -> Value {
    handle(
        &ingest_function(deps),
        LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .unwrap()
}

/// 150 verification and 150 transactional sends.
async fn traffic(deps: &Context) {
    invoke(
        deps,
        sqs_batch(vec![
            send("s1", "verification", 150, 0),
            send("s2", "transactional", 150, 0),
        ]),
    )
    .await;
}

/// 26 verification bounces: 8.7 % of the account's 300 sends, all from one stream.
fn bounces() -> Value {
    sqs_batch(
        (0..26)
            .map(|i| bounce(&format!("b{i}"), "verification", 5))
            .collect(),
    )
}

fn guarded(store: Arc<dyn Store>) -> (Context, RecordedAlerts) {
    deps_with(example_config(), store)
}

#[tokio::test]
async fn a_dominant_stream_crossing_the_pause_level_is_quarantined_once_with_an_alert() {
    let (_dir, store) = sqlite();
    let (deps, alerts) = guarded(Arc::new(store));
    traffic(&deps).await;
    invoke(
        &deps,
        sqs_batch(
            (0..5)
                .map(|i| bounce(&format!("w{i}"), "transactional", 2))
                .collect(),
        ),
    )
    .await;
    assert_eq!(alerts.all().len(), 0, "1.7 % is under every level");

    // 20 more from verification: 25 of 300 (8.3 %), 80 % of them verification's.
    invoke(
        &deps,
        sqs_batch(
            (0..20)
                .map(|i| bounce(&format!("b{i}"), "verification", 5))
                .collect(),
        ),
    )
    .await;
    let state = deps
        .store
        .states(&["primary".into()])
        .await
        .unwrap()
        .remove("primary")
        .unwrap();
    assert!(state.is_quarantined("verification"));
    assert_eq!(
        state.status,
        Status::Active,
        "transactional mail keeps flowing"
    );

    let alerts = alerts.all();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0].change;
    assert_eq!(
        (alert.account.as_str(), alert.stream.as_deref()),
        ("primary", Some("verification"))
    );
    assert_eq!(
        (alert.from, alert.to, alert.cause),
        (StateName::Active, StateName::Quarantined, Cause::BounceRate)
    );
    assert_eq!(alert.window_sends, 300);
    assert!((alert.bounce_rate - 25.0 / 300.0).abs() < 1e-9);
    assert_eq!(alerts[0].traffic, "verification fails over to backup");

    let history = deps.store.history("primary", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].to, history[0].actor.as_str()),
        (StateName::Quarantined, "guard")
    );
    assert_eq!(history[0].at, Timestamp::parse_rfc3339(SAMPLE_NOW).unwrap());

    // Late feedback from the isolated stream (26 of 300, under the 9 % critical level)
    // changes nothing more.
    let (_, late) = sesguard::lambda::ingest::decode(
        sqs_batch(vec![bounce("late", "verification", 6)]),
        "late",
    );
    let report = Ingestor::of(&deps).ingest(late, deps.clock.now()).await;
    assert_eq!(deps.store.history("primary", 10).await.unwrap().len(), 1);
    assert!(report.transitions.is_empty());
    // What the alarms watch: the reviewed account's rate and state as they are now.
    assert_eq!(report.gauges.len(), 1);
    let gauge = &report.gauges[0];
    assert_eq!(
        (
            gauge.account.as_str(),
            gauge.window_sends,
            gauge.paused,
            gauge.quarantined
        ),
        ("primary", 300, false, 1)
    );
    assert!((gauge.bounce_rate - 26.0 / 300.0).abs() < 1e-9);
}

#[tokio::test]
async fn concurrent_instances_apply_one_transition_with_one_history_entry_and_one_alert() {
    let (deps, alerts) = guarded(Arc::new(dynamodb().await));
    traffic(&deps).await;
    let batch = bounces();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let deps = deps.clone();
        // Eight instances get the same batch (a redelivery race); four others record unrelated
        // deliveries on the same account and review it too.
        let event = if i < 8 {
            batch.clone()
        } else {
            let delivery = SesEvent::delivery(&format!("d{i}"))
                .to([format!("r{i}@example.com")])
                .at("2026-11-20T10:06:00.000Z")
                .tagged("primary", "transactional");
            sqs_batch(vec![delivery.published()])
        };
        tasks.push(tokio::spawn(async move { invoke(&deps, event).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap()["batchItemFailures"], json!([]));
    }
    let history = deps.store.history("primary", 10).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].to, StateName::Quarantined);
    assert_eq!(alerts.all().len(), 1);
    let state = deps
        .store
        .states(&["primary".into()])
        .await
        .unwrap()
        .remove("primary")
        .unwrap();
    assert_eq!(state.version, 1);
}

/// A permanent bounce of `to` whose receiver refused the sender through a blocklist, as
/// Google words it (the `gsmtp` suffix names the provider of a hosted domain).
fn refused(id: &str, to: &str) -> Value {
    SesEvent::bounce(&format!("m-{id}"))
        .to([to])
        .feedback_id(id)
        .status("5.7.1")
        .diagnostic(
            "smtp; 550-5.7.1 [203.0.113.10] Our system has detected that this message is likely \
             suspicious due to the very low reputation of the sending domain. - gsmtp",
        )
        .at("2026-11-20T10:05:30.000Z")
        .tagged("primary", "verification")
        .published()
}

async fn a_block_at_one_provider_alerts_once_and_leaves_its_addresses_sendable(
    store: Arc<dyn Store>,
) {
    let world = crate::world::World::builder()
        .store(store)
        .configure(|c| c.guard.providers.route_around_blocks = true)
        .build();
    let deps = &world.deps;
    let mut first = vec![
        send("s", "verification", 1_000, 1),
        SesEvent::delivery("m-d")
            .to((0..200).map(|i| format!("ok{i}@gmail.com")))
            .tagged("primary", "verification")
            .published(),
    ];
    first.extend((0..30).map(|i| refused(&format!("b{i}"), &format!("valued{i}@gmail.com"))));
    let (_, records) = sesguard::lambda::ingest::decode(sqs_batch(first), "first");
    let report = Ingestor::of(deps).ingest(records, deps.clock.now()).await;
    assert!(
        report.transitions.is_empty(),
        "3 % bounces: the account is fine"
    );

    let blocks = || {
        world
            .alerts
            .notices()
            .into_iter()
            .filter(|(subject, _)| subject.contains("blocked at google"))
            .collect::<Vec<_>>()
    };
    let told = blocks();
    assert_eq!(told.len(), 1, "{:?}", world.alerts.notices());
    let body = &told[0].1;
    assert_eq!(
        (
            &body["alert"],
            &body["account"],
            &body["provider"],
            &body["reason"]
        ),
        (
            &json!("provider_blocked"),
            &json!("primary"),
            &json!("google"),
            &json!("blocked")
        )
    );
    assert_eq!(
        (&body["refused"], &body["answered"]),
        (&json!(30), &json!(230))
    );

    // More refusals, a later review: the block is told once.
    let more: Vec<Value> = (30..35)
        .map(|i| refused(&format!("b{i}"), &format!("valued{i}@gmail.com")))
        .collect();
    let (_, records) = sesguard::lambda::ingest::decode(sqs_batch(more), "more");
    Ingestor::of(deps).ingest(records, deps.clock.now()).await;
    assert_eq!(blocks().len(), 1);

    // The addresses were refused for the sender's sake: every one of them stays sendable.
    let addresses: Vec<_> = (0..35)
        .map(|i| {
            sesguard::domain::common::address::EmailAddress::parse(&format!("valued{i}@gmail.com"))
                .unwrap()
        })
        .collect();
    assert!(deps.store.suppressed(&addresses).await.unwrap().is_empty());

    // Status shows the provider, its figures and the block.
    let status = sesguard::app::status::status(deps, deps.clock.now(), Some("primary"))
        .await
        .unwrap();
    let google = &status[0].providers[0];
    assert_eq!(
        (
            google.provider.as_str(),
            google.counts.deliveries,
            google.counts.blocked
        ),
        ("google", 200, 35)
    );
    let finding = serde_json::to_value(&status[0].provider_findings).unwrap();
    assert_eq!(finding[0]["finding"], "provider_blocked", "{finding}");
    // And so does the status page.
    let series = sesguard::app::status::rate_series(
        deps.store.as_ref(),
        &deps.config,
        "primary",
        deps.clock.now(),
    )
    .await
    .unwrap();
    let view = sesguard::lambda::status_page::AccountView {
        status: &status[0],
        series: &series,
        history: &[],
        provider_lines: &deps.config.guard.providers,
    };
    let page = sesguard::lambda::status_page::status(
        &[view],
        &sesguard::lambda::status_page::Lookup::None,
        None,
        deps.clock.now(),
    );
    let row = &page[page.find("data-provider=\"google\"").expect("a google row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("<td>35 / 0 / 0</td>") && row.contains("blocked (blocked)"),
        "{row}"
    );
    assert!(page.contains("primary — refusals by mailbox provider through the window"));
    assert_eq!(series.providers["google"].last().unwrap().1, 35.0 / 235.0);

    // With `route_around_blocks`, mail to Gmail goes through the backup while the block
    // lasts; mail to other providers stays on the primary.
    let account_for = |to: &str| {
        let to = [sesguard::domain::common::address::EmailAddress::parse(to).unwrap()];
        async move {
            let request = sesguard::app::check::Request {
                stream: "verification",
                to: &to,
                template: None,
                recipient_verified: true,
                priority: None,
            };
            sesguard::app::check::check(
                deps.store.as_ref(),
                deps.ses.as_ref(),
                &deps.config,
                deps.clock.now(),
                &request,
            )
            .await
            .unwrap()
            .account
        }
    };
    assert_eq!(
        account_for("new@gmail.com").await.as_deref(),
        Some("backup")
    );
    assert_eq!(
        account_for("new@yahoo.com").await.as_deref(),
        Some("primary")
    );
}

#[tokio::test]
async fn a_block_at_one_provider_alerts_once_on_the_embedded_store() {
    let (dir, store) = sqlite();
    a_block_at_one_provider_alerts_once_and_leaves_its_addresses_sendable(Arc::new(store)).await;
    drop(dir);
}

#[tokio::test]
async fn a_block_at_one_provider_alerts_once_on_dynamodb() {
    a_block_at_one_provider_alerts_once_and_leaves_its_addresses_sendable(Arc::new(
        dynamodb().await,
    ))
    .await;
}
