//! One contract, every store: the same cases run against the SQLite adapter and the DynamoDB
//! adapter (on the local DynamoDB-compatible server), so both behave the same.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::feedback::bounce_reason::BounceReason;
use sesguard::domain::feedback::notification::Notification;
use sesguard::domain::feedback::plan::{self, Assessment, ChangeSet, Effects, IngestPolicy};
use sesguard::domain::feedback::suppression::Reason;
use sesguard::domain::reputation::counters::{Bucket, CounterDelta, Counts};
use sesguard::domain::reputation::history::HistoryEntry;
use sesguard::domain::reputation::state::StateName;
use sesguard::domain::reputation::state::{AccountState as GuardState, Cause, Quarantine, Status};
use sesguard::domain::sending::prevention::{MailDomain, Undeliverable};
use sesguard::domain::sending::rate_limit::{LimitsPatch, RateLimits};
use sesguard::domain::sending::template_policy::TemplatePolicy;
use sesguard::ports::{
    AnswerSource, ApplyError, CounterWindow, DomainRecord, FeedbackLedger, PreventAction,
    PreventedKey, RateLedger, Store, SuppressionList,
};

use crate::helpers::{SAMPLE_NOW, example_config, sample_json};
use crate::ses_event::SesEvent;

fn now() -> Timestamp {
    Timestamp::parse_rfc3339(SAMPLE_NOW).unwrap()
}

fn email(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

/// The effects of an `events/ses/` sample.
fn effects(name: &str) -> Effects {
    effects_of(sample_json(&format!("ses/{name}.json")))
}

/// The effects of one SES event.
fn effects_of(event: serde_json::Value) -> Effects {
    let notification = Notification::from_value(event).unwrap();
    match plan::assess(
        &notification,
        &example_config().directory(),
        plan::SimulatorFeedback::Ignore,
        now(),
    ) {
        Assessment::Apply(effects) => *effects,
        Assessment::Ignore(reason) => panic!("ignored: {reason}"),
    }
}

/// A soft bounce of `to` with its own feedback id, `day` days after the sample's time.
fn soft_bounce(to: &str, id: &str, day: i64) -> Effects {
    let mut effects = effects("bounce-transient");
    effects.key = format!("feedback:{id}");
    effects.feedback_id = Some(id.to_owned());
    effects.at = Timestamp::from_millis(effects.at.as_millis() + day * 86_400_000);
    effects.addresses[0].email = email(to);
    effects
}

async fn planned(store: &dyn Store, batch: &[Effects], at: Timestamp) -> ChangeSet {
    let states = store
        .address_states(&plan::addresses_to_read(batch), at)
        .await
        .unwrap();
    plan::plan(
        batch,
        &states,
        &plan::Origins::new(),
        &IngestPolicy::default(),
        at,
    )
}

async fn window_total(store: &dyn Store, account: &str) -> Counts {
    let buckets = store
        .window(
            account,
            Timestamp::EPOCH,
            Timestamp::from_millis(i64::MAX / 2),
        )
        .await
        .unwrap()
        .buckets;
    let mut total = Counts::default();
    for bucket in &buckets {
        total += bucket.total;
    }
    total
}

async fn a_hard_bounce_suppresses_every_recipient_with_its_details(store: &dyn Store) {
    let change = planned(store, &[effects("bounce-permanent")], now()).await;
    store.apply(&change).await.unwrap();

    let s = store
        .get(&email("nobody@example.org"))
        .await
        .unwrap()
        .expect("suppressed");
    assert_eq!(s.reason, Reason::Bounce);
    assert_eq!(s.bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(s.bounce_subtype.as_deref(), Some("General"));
    assert_eq!(s.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        s.diagnostic_code.as_deref(),
        Some("smtp; 550 5.1.1 user unknown")
    );
    assert_eq!(s.bounce_reason, Some(BounceReason::UserUnknown));
    assert_eq!(s.count, 1);
    assert_eq!(s.first_seen.to_rfc3339(), "2026-11-20T10:00:05.000Z");
    assert_eq!(s.message_id.as_deref(), Some("0100018c-msg-000001"));
    assert_eq!(
        s.feedback_id.as_deref(),
        Some("0100018c-bounce-permanent-000001")
    );
    assert!(
        store
            .get(&email("gone@example.net"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get(&email("someone-else@example.net"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(window_total(store, "primary").await.hard_bounces, 2);
}

async fn a_claimed_notification_is_refused_and_nothing_of_it_is_written(store: &dyn Store) {
    let change = planned(store, &[effects("bounce-permanent")], now()).await;
    store.apply(&change).await.unwrap();

    let again = planned(
        store,
        &[effects("bounce-permanent"), effects("complaint")],
        now(),
    )
    .await;
    match store.apply(&again).await {
        Err(ApplyError::AlreadyApplied(keys)) => {
            assert_eq!(
                keys,
                vec!["feedback:0100018c-bounce-permanent-000001".to_owned()]
            );
        }
        other => panic!("expected AlreadyApplied, got {other:?}"),
    }
    // The complaint travelled in the refused change: none of it may be stored.
    assert!(
        store
            .get(&email("angry@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get(&email("nobody@example.org"))
            .await
            .unwrap()
            .unwrap()
            .count,
        1
    );
    assert_eq!(window_total(store, "primary").await.hard_bounces, 2);
    assert_eq!(window_total(store, "primary").await.complaints, 0);
}

async fn an_expired_claim_no_longer_blocks(store: &dyn Store) {
    let mut change = planned(store, &[effects("complaint")], now()).await;
    change.claims[0].expires_at = now().plus(std::time::Duration::from_secs(60));
    store.apply(&change).await.unwrap();

    let later = now().plus(std::time::Duration::from_secs(3600));
    let again = planned(store, &[effects("complaint")], later).await;
    store.apply(&again).await.unwrap();
    assert_eq!(
        store
            .get(&email("angry@example.com"))
            .await
            .unwrap()
            .unwrap()
            .count,
        2
    );
}

async fn the_first_reason_stays_and_later_feedback_adds_to_the_count(store: &dyn Store) {
    let mut complaint = effects("complaint");
    complaint.addresses[0].email = email("nobody@example.org");
    store
        .apply(&planned(store, &[effects("bounce-permanent")], now()).await)
        .await
        .unwrap();
    store
        .apply(&planned(store, &[complaint], now()).await)
        .await
        .unwrap();

    let s = store
        .get(&email("nobody@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.reason, Reason::Bounce);
    assert_eq!(s.count, 2);
    assert_eq!(s.complaint_feedback_type.as_deref(), Some("abuse"));
    assert_eq!(s.bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(s.last_seen.to_rfc3339(), "2026-11-20T11:00:00.000Z");
}

async fn soft_bounces_are_tracked_until_the_threshold_suppresses(store: &dyn Store) {
    for (i, day) in [0, 3].into_iter().enumerate() {
        let change = planned(
            store,
            &[soft_bounce("flaky@example.com", &format!("s{i}"), day)],
            now(),
        )
        .await;
        store.apply(&change).await.unwrap();
    }
    assert!(
        store
            .get(&email("flaky@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    let states = store
        .address_states(&[email("flaky@example.com")], now())
        .await
        .unwrap();
    let state = &states[&email("flaky@example.com")];
    assert_eq!(state.soft_bounces.len(), 2);
    assert!(!state.suppressed);
    assert_eq!(state.version, 2);

    let third = planned(store, &[soft_bounce("flaky@example.com", "s2", 5)], now()).await;
    store.apply(&third).await.unwrap();
    let s = store
        .get(&email("flaky@example.com"))
        .await
        .unwrap()
        .expect("suppressed after 3");
    assert_eq!(s.reason, Reason::SoftBounce);
    assert_eq!(s.count, 3);
    assert!(
        store
            .address_states(&[email("flaky@example.com")], now())
            .await
            .unwrap()[&email("flaky@example.com")]
            .suppressed
    );
}

async fn a_soft_write_planned_on_a_stale_read_is_a_conflict(store: &dyn Store) {
    let first = planned(store, &[soft_bounce("race@example.com", "r1", 0)], now()).await;
    let stale = planned(store, &[soft_bounce("race@example.com", "r2", 1)], now()).await;
    store.apply(&first).await.unwrap();
    assert!(matches!(
        store.apply(&stale).await,
        Err(ApplyError::Conflict)
    ));
    // Nothing of the stale change was written: its claim is free to take.
    let fresh = planned(store, &[soft_bounce("race@example.com", "r2", 1)], now()).await;
    store.apply(&fresh).await.unwrap();
    let states = store
        .address_states(&[email("race@example.com")], now())
        .await
        .unwrap();
    assert_eq!(states[&email("race@example.com")].soft_bounces.len(), 2);
}

async fn an_expired_soft_bounce_tracker_reads_as_empty(store: &dyn Store) {
    store
        .apply(&planned(store, &[soft_bounce("old@example.com", "o1", 0)], now()).await)
        .await
        .unwrap();
    let much_later = now().plus(std::time::Duration::from_secs(30 * 86_400));
    let states = store
        .address_states(&[email("old@example.com")], much_later)
        .await
        .unwrap();
    let state = &states[&email("old@example.com")];
    assert!(state.soft_bounces.is_empty());
    assert_eq!(
        state.version, 1,
        "the version is kept so the next write's condition holds"
    );
}

async fn counters_add_up_per_bucket_and_stream_and_read_by_range(store: &dyn Store) {
    let at = |ms: i64| Timestamp::from_millis(1_800_000_000_000 + ms);
    let delta = |start: Timestamp, sends: u64, hard: u64, stream: &str| CounterDelta {
        account: "primary".into(),
        bucket: Bucket {
            start,
            total: Counts {
                sends,
                hard_bounces: hard,
                ..Counts::default()
            },
            streams: [(
                stream.to_owned(),
                Counts {
                    sends,
                    hard_bounces: hard,
                    ..Counts::default()
                },
            )]
            .into(),
            providers: Default::default(),
        },
        expires_at: start.plus(std::time::Duration::from_secs(3 * 86_400)),
    };
    for (start, sends, hard, stream) in [
        (at(0), 10, 1, "a"),
        (at(0), 5, 0, "b"),
        (at(900_000), 7, 2, "a"),
    ] {
        let change = ChangeSet {
            now: now(),
            counters: vec![delta(start, sends, hard, stream)],
            ..ChangeSet::default()
        };
        store.apply(&change).await.unwrap();
    }
    let buckets = store
        .window("primary", at(0), at(900_000))
        .await
        .unwrap()
        .buckets;
    assert_eq!(buckets.len(), 2);
    assert_eq!(
        buckets[0].total,
        Counts {
            sends: 15,
            hard_bounces: 1,
            ..Counts::default()
        }
    );
    assert_eq!(
        buckets[0].streams["a"],
        Counts {
            sends: 10,
            hard_bounces: 1,
            ..Counts::default()
        }
    );
    assert_eq!(buckets[0].streams["b"].sends, 5);
    assert_eq!(buckets[1].total.hard_bounces, 2);
    assert_eq!(
        store
            .window("primary", at(1), at(900_000))
            .await
            .unwrap()
            .buckets
            .len(),
        1
    );
    assert!(
        store
            .window("backup", at(0), at(900_000))
            .await
            .unwrap()
            .buckets
            .is_empty()
    );
}

async fn unconfigured_accounts_are_registered_once(store: &dyn Store) {
    let mut stranger = effects("bounce-permanent");
    stranger.attribution.account = "999999999999-ap-south-1".into();
    stranger.attribution.configured = false;
    store
        .apply(&planned(store, &[stranger], now()).await)
        .await
        .unwrap();
    let mut again = effects("complaint");
    again.attribution.account = "999999999999-ap-south-1".into();
    again.attribution.configured = false;
    store
        .apply(&planned(store, &[again], now()).await)
        .await
        .unwrap();
    assert_eq!(
        store.unconfigured_accounts().await.unwrap(),
        vec!["999999999999-ap-south-1".to_owned()]
    );
}

async fn listing_pages_through_every_suppression_once_and_filters_by_reason(store: &dyn Store) {
    let batch = [
        effects("bounce-permanent"),
        effects("complaint"),
        effects("event-bounce"),
        effects("event-complaint"),
    ];
    store
        .apply(&planned(store, &batch, now()).await)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(None, cursor.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|s| s.email.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "angry@example.com",
            "gone@example.net",
            "nobody@example.org",
            "spam.hater@example.com",
            "typo@exmaple.com"
        ]
    );

    let complaints = store
        .list(Some(Reason::Complaint), None, 100)
        .await
        .unwrap();
    let mut emails: Vec<String> = complaints
        .items
        .iter()
        .map(|s| s.email.to_string())
        .collect();
    emails.sort();
    assert_eq!(emails, ["angry@example.com", "spam.hater@example.com"]);
    assert!(complaints.next.is_none());
}

async fn a_not_spam_complaint_is_recorded_without_suppressing(store: &dyn Store) {
    store
        .apply(&planned(store, &[effects("complaint-not-spam")], now()).await)
        .await
        .unwrap();
    assert!(
        store
            .get(&email("happy@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list(None, None, 10).await.unwrap().items.is_empty());
    let states: HashMap<_, _> = store
        .address_states(&[email("happy@example.com")], now())
        .await
        .unwrap();
    assert_eq!(states[&email("happy@example.com")].version, 1, "recorded");
}

async fn a_bounce_that_refuses_the_sender_leaves_its_addresses_sendable(store: &dyn Store) {
    let batch = [effects("bounce-blocked"), effects("bounce-mailbox-full")];
    store
        .apply(&planned(store, &batch, now()).await)
        .await
        .unwrap();
    let recipients = [
        email("valued@example.org"),
        email("customer@example.net"),
        email("hoarder@example.org"),
    ];
    let view = store.suppressed(&recipients).await.unwrap();
    assert!(view.is_empty(), "nothing suppressed: {view:?}");
    assert!(store.list(None, None, 10).await.unwrap().items.is_empty());
    let states = store.address_states(&recipients, now()).await.unwrap();
    assert!(
        recipients.iter().all(|r| states[r].version == 1),
        "each recorded"
    );
    assert!(
        states[&recipients[0]].soft_bounces.is_empty(),
        "a block is not a soft bounce"
    );
    assert_eq!(
        states[&recipients[2]].soft_bounces.len(),
        1,
        "a full mailbox is one"
    );
    // SES counts all three as hard bounces, and so do sesguard's rates.
    assert_eq!(window_total(store, "primary").await.hard_bounces, 3);
}

async fn provider_counters_add_up_exactly_and_a_replay_adds_nothing(store: &dyn Store) {
    let blocklist = "smtp; 550-5.7.1 [203.0.113.10] Our system has detected that this message is \
                     likely suspicious due to the very low reputation of the sending domain - gsmtp";
    let batch = [
        effects_of(
            SesEvent::delivery("p1")
                .to(["a@gmail.com", "b@example.org"])
                .smtp_response("250 2.0.0 OK 1763650000 - gsmtp")
                .tagged("primary", "verification")
                .published(),
        ),
        effects_of(
            SesEvent::bounce("p2")
                .to(["c@gmail.com", "d@corp.example"])
                .diagnostic(blocklist)
                .tagged("primary", "verification")
                .published(),
        ),
        effects_of(
            SesEvent::bounce("p3")
                .to(["e@yahoo.com"])
                .diagnostic(
                    "smtp; 554 delivery error: dd This user doesn't have a yahoo.com account",
                )
                .tagged("primary", "verification")
                .published(),
        ),
        effects_of(
            SesEvent::complaint("p4")
                .to(["f@yahoo.com"])
                .tagged("primary", "verification")
                .published(),
        ),
    ];
    let change = planned(store, &batch, now()).await;
    store.apply(&change).await.unwrap();
    let providers = || async {
        let window = store
            .window(
                "primary",
                Timestamp::EPOCH,
                Timestamp::from_millis(i64::MAX / 2),
            )
            .await
            .unwrap();
        sesguard::domain::reputation::counters::WindowTotals::sum(
            &window.buckets,
            Timestamp::EPOCH,
            Timestamp::from_millis(i64::MAX / 2),
        )
        .providers
    };
    let counted = providers().await;
    let google = counted["google"];
    // A delivery to a company domain says `gsmtp`: Google hosts it.
    assert_eq!(
        (google.deliveries, google.blocked, google.sender_bounces()),
        (2, 2, 2)
    );
    let yahoo = counted["yahoo"];
    assert_eq!((yahoo.address_bounces, yahoo.complaints), (1, 1));
    assert_eq!(counted.len(), 2, "{counted:?}");

    // The same batch again is refused whole: nothing counted twice.
    assert!(matches!(
        store.apply(&change).await,
        Err(ApplyError::AlreadyApplied(_))
    ));
    assert_eq!(providers().await, counted);
}

fn entry(account: &str, at: Timestamp, to: StateName) -> HistoryEntry {
    HistoryEntry {
        at,
        account: account.into(),
        stream: Some("verification".into()),
        from: StateName::Active,
        to,
        cause: Cause::BounceRate,
        note: None,
        share: None,
        bounce_rate: 0.081,
        complaint_rate: 0.0,
        window_sends: 1200,
        bounds: None,
        ses: None,
        actor: "guard".into(),
    }
}

async fn a_transition_applies_once_per_version_with_one_history_entry(store: &dyn Store) {
    let mut next = GuardState::default();
    next.quarantined.insert(
        "verification".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: now(),
            bounce_rate: 0.16,
            complaint_rate: 0.0,
        },
    );
    let later = now().plus(std::time::Duration::from_secs(90 * 86_400));
    assert!(
        store
            .transition(
                "primary",
                0,
                &next,
                &entry("primary", now(), StateName::Quarantined),
                later
            )
            .await
            .unwrap()
    );
    // A second instance that read version 0 too loses, and writes nothing.
    let other = GuardState {
        status: Status::Paused,
        ..GuardState::default()
    };
    assert!(
        !store
            .transition(
                "primary",
                0,
                &other,
                &entry("primary", now(), StateName::Paused),
                later
            )
            .await
            .unwrap()
    );

    let window = store.window("primary", now(), now()).await.unwrap();
    assert_eq!(window.state.version, 1);
    assert!(window.state.is_quarantined("verification"));
    assert_eq!(window.state.quarantined["verification"].bounce_rate, 0.16);
    let history = store.history("primary", 10).await.unwrap();
    assert_eq!(
        history,
        vec![entry("primary", now(), StateName::Quarantined)]
    );

    let mut paused = window.state.clone();
    paused.status = Status::Paused;
    let at = now().plus(std::time::Duration::from_secs(60));
    assert!(
        store
            .transition(
                "primary",
                1,
                &paused,
                &entry("primary", at, StateName::Paused),
                later
            )
            .await
            .unwrap()
    );
    let states = store
        .states(&["primary".into(), "backup".into()])
        .await
        .unwrap();
    assert_eq!(
        (states["primary"].version, states["primary"].status),
        (2, Status::Paused)
    );
    assert_eq!(states["backup"], GuardState::default());
    let newest_first: Vec<StateName> = store
        .history("primary", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.to)
        .collect();
    assert_eq!(newest_first, [StateName::Paused, StateName::Quarantined]);
    assert_eq!(store.history("primary", 1).await.unwrap().len(), 1);
    assert!(store.history("backup", 10).await.unwrap().is_empty());
}

async fn the_template_policy_reads_back_what_was_written(store: &dyn Store) {
    assert_eq!(
        store.template_policy().await.unwrap(),
        TemplatePolicy::default()
    );
    let policy = TemplatePolicy {
        blocked: ["newsletter".to_owned()].into(),
        verified_only: ["receipt".to_owned(), "reset".to_owned()].into(),
    };
    store.put_template_policy(&policy).await.unwrap();
    assert_eq!(store.template_policy().await.unwrap(), policy);
    store
        .put_template_policy(&TemplatePolicy::default())
        .await
        .unwrap();
    assert_eq!(
        store.template_policy().await.unwrap(),
        TemplatePolicy::default()
    );
}

async fn suppressions_are_read_in_one_batch_and_claims_are_exclusive_until_released(
    store: &dyn Store,
) {
    store
        .apply(
            &planned(
                store,
                &[effects("bounce-permanent"), effects("complaint")],
                now(),
            )
            .await,
        )
        .await
        .unwrap();
    let asked = [
        email("nobody@example.org"),
        email("angry@example.com"),
        email("fine@example.com"),
    ];
    let found = store.suppressed(&asked).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[&email("nobody@example.org")], Reason::Bounce);
    assert_eq!(found[&email("angry@example.com")], Reason::Complaint);

    let later = now().plus(std::time::Duration::from_secs(600));
    let key = "send:hash:a";
    assert!(store.claim(key, "m1", now(), later).await.unwrap());
    assert!(
        !store.claim(key, "m2", now(), later).await.unwrap(),
        "held by the first request's claim"
    );
    assert!(
        store.claim(key, "m1", now(), later).await.unwrap(),
        "a redelivery of the same request takes its own claim again"
    );
    store
        .release(&[key.into(), "send:hash:never-claimed".into()])
        .await
        .unwrap();
    assert!(
        store.claim(key, "m2", now(), later).await.unwrap(),
        "free again once released"
    );
    assert!(
        store
            .claim(
                key,
                "m3",
                later,
                later.plus(std::time::Duration::from_secs(600))
            )
            .await
            .unwrap(),
        "expired claims are taken over"
    );
}

async fn send_rate_tokens_are_shared_and_refill_at_the_rate(store: &dyn Store) {
    let limits = RateLimits::from_send_rate(14.0);
    let first = store
        .take("primary", &limits, 10, now(), None)
        .await
        .unwrap();
    assert_eq!(first.granted, 10);
    let second = store
        .take("primary", &limits, 10, now(), None)
        .await
        .unwrap();
    assert_eq!(second.granted, 4, "the bucket holds 14");
    assert!(second.next_at.is_some());
    let later = store
        .take(
            "primary",
            &limits,
            10,
            now().plus(std::time::Duration::from_millis(500)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(later.granted, 7, "half a second refills 7");
    assert_eq!(
        store
            .take("backup", &limits, 3, now(), None)
            .await
            .unwrap()
            .granted,
        3,
        "accounts are apart"
    );
}

async fn limits_set_at_run_time_bind_the_next_take_and_a_refill_fills_the_bucket(
    store: &dyn Store,
) {
    let configured = RateLimits::from_send_rate(14.0);
    let patch: LimitsPatch = serde_json::from_str(r#"{"capacity": 3, "per_minute": 5}"#).unwrap();
    store.set_limits("primary", &patch).await.unwrap();
    assert_eq!(store.rate("primary").await.unwrap().patch, patch);
    let first = store
        .take("primary", &configured, 10, now(), None)
        .await
        .unwrap();
    assert_eq!(first.granted, 3, "the patched capacity binds");
    store.refill("primary", &configured, now()).await.unwrap();
    let refilled = store
        .take("primary", &configured, 10, now(), None)
        .await
        .unwrap();
    assert_eq!(
        refilled.granted, 2,
        "a full bucket again, but the minute allows 5 in all"
    );
    let record = store.rate("primary").await.unwrap();
    assert_eq!(record.patch, patch, "takes keep the operators' patch");
    assert_eq!(record.state.unwrap().minute.count, 5);
}

async fn a_take_from_a_stale_read_reads_again_and_never_over_grants(store: &dyn Store) {
    let limits = RateLimits::from_send_rate(14.0);
    let stale = store.rate("primary").await.unwrap();
    let other = store
        .take("primary", &limits, 10, now(), None)
        .await
        .unwrap();
    assert_eq!(other.granted, 10);
    let mine = store
        .take("primary", &limits, 10, now(), Some(&stale))
        .await
        .unwrap();
    assert_eq!(mine.granted, 4, "the read was stale: 14 - 10 left, not 14");
}

async fn the_gate_view_reads_policy_suppressions_states_and_rates_together(store: &dyn Store) {
    store
        .apply(&planned(store, &[effects("bounce-permanent")], now()).await)
        .await
        .unwrap();
    let policy = TemplatePolicy {
        blocked: ["promo".to_owned()].into(),
        ..TemplatePolicy::default()
    };
    store.put_template_policy(&policy).await.unwrap();
    store
        .take("primary", &RateLimits::from_send_rate(14.0), 4, now(), None)
        .await
        .unwrap();
    let recipients = [email("nobody@example.org"), email("fine@example.com")];
    let accounts = ["primary".to_owned(), "backup".to_owned()];
    let answer = DomainRecord {
        domain: "parked.example".into(),
        answer: MailDomain::NoMailDomain,
        source: AnswerSource::Dns,
        expires_at: now().plus(Duration::from_secs(60)),
    };
    store
        .put_domains(std::slice::from_ref(&answer))
        .await
        .unwrap();
    let domains = ["parked.example".to_owned(), "unasked.example".to_owned()];
    let view = store
        .gate_view(&recipients, &accounts, &domains)
        .await
        .unwrap();
    assert_eq!(
        view.domains,
        [answer],
        "the domain answers come with the same read"
    );
    assert_eq!(view.policy, policy);
    assert_eq!(
        view.suppressed.keys().collect::<Vec<_>>(),
        [&email("nobody@example.org")]
    );
    assert_eq!(view.states.len(), 2, "every account, written or not");
    assert_eq!(view.states["backup"], Default::default());
    assert_eq!(view.rates["backup"], Default::default());
    let limits = RateLimits::from_send_rate(14.0);
    let tokens = store
        .rate("primary")
        .await
        .unwrap()
        .state_at(&limits, now())
        .unwrap()
        .tokens;
    assert!((tokens - 10.0).abs() < 1e-3, "{tokens}");
}

async fn domain_answers_are_kept_until_they_expire_and_prevented_counts_add_up(store: &dyn Store) {
    let record = |domain: &str, answer, seconds| DomainRecord {
        domain: domain.into(),
        answer,
        source: AnswerSource::Dns,
        expires_at: now().plus(Duration::from_secs(seconds)),
    };
    let dead = record("dead.example", MailDomain::NoSuchDomain, 300);
    let stale = record("stale.example", MailDomain::Receives, 1);
    store.put_domains(&[dead.clone(), stale]).await.unwrap();
    let asked = ["dead.example", "stale.example", "never.example"].map(String::from);
    let later = now().plus(Duration::from_secs(2));
    assert_eq!(
        store.domains(&asked, later).await.unwrap(),
        std::slice::from_ref(&dead)
    );
    // A bounce's lesson replaces the DNS answer.
    let learned = DomainRecord {
        source: AnswerSource::Feedback,
        answer: MailDomain::NoMailDomain,
        ..dead
    };
    store
        .put_domains(std::slice::from_ref(&learned))
        .await
        .unwrap();
    assert_eq!(store.domains(&asked, later).await.unwrap(), [learned]);

    let key = |stream: &str, reason, action| PreventedKey {
        stream: stream.into(),
        reason,
        action,
    };
    let refused = key(
        "verification",
        Undeliverable::NoSuchDomain,
        PreventAction::Refused,
    );
    let flagged = key("bulk", Undeliverable::Disposable, PreventAction::Flagged);
    let day = now().day();
    let batch = BTreeMap::from([(refused.clone(), 2), (flagged.clone(), 1)]);
    store.count_prevented(&day, &batch).await.unwrap();
    store
        .count_prevented(&day, &BTreeMap::from([(refused.clone(), 3)]))
        .await
        .unwrap();
    assert_eq!(
        store.prevented(&day).await.unwrap(),
        BTreeMap::from([(refused, 5), (flagged, 1)])
    );
    assert!(store.prevented("2020-01-01").await.unwrap().is_empty());
}

async fn manual_suppressions_keep_an_earlier_reason_and_lift_with_their_record(store: &dyn Store) {
    use sesguard::ports::{AuditEntry, ManualSuppression};
    store
        .apply(&planned(store, &[effects("bounce-permanent")], now()).await)
        .await
        .unwrap();
    let manual = |e: &str| ManualSuppression {
        email: email(e),
        reason: Reason::Manual,
    };
    let added = store
        .suppress(
            &[
                manual("nobody@example.org"),
                manual("new@example.com"),
                manual("new@example.com"),
            ],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        added, 1,
        "the bounced address was suppressed already; a repeat counts once"
    );
    let kept = store
        .get(&email("nobody@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.reason, Reason::Bounce, "the first reason stays");
    let new = store.get(&email("new@example.com")).await.unwrap().unwrap();
    assert_eq!((new.reason, new.first_seen), (Reason::Manual, now()));

    let removed = store
        .unsuppress(&email("nobody@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.reason, Reason::Bounce);
    assert_eq!(store.get(&email("nobody@example.org")).await.unwrap(), None);
    assert_eq!(
        store
            .unsuppress(&email("nobody@example.org"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.unsuppress(&email("never@example.com")).await.unwrap(),
        None
    );

    let entry = |n: i64| AuditEntry {
        at: Timestamp::from_millis(now().as_millis() + n),
        actor: "operator:ana".into(),
        action: "suppression.remove".into(),
        target: "nobody@example.org".into(),
        reason: format!("ticket {n}"),
        detail: serde_json::json!({"n": n}),
    };
    for n in [1, 3, 2] {
        store
            .record(&entry(n), now().plus(std::time::Duration::from_secs(3600)))
            .await
            .unwrap();
    }
    let log = store.audit(2).await.unwrap();
    assert_eq!(
        log,
        vec![entry(3), entry(2)],
        "newest first, at most the limit"
    );
}

async fn a_send_record_is_claimed_once_marked_settled_given_up_and_runs_out(store: &dyn Store) {
    use sesguard::domain::sending::send_record::{Retention, SendKey, SendRecord, SendState};
    use sesguard::ports::SendClaim;
    let minutes = |m: u64| std::time::Duration::from_secs(60 * m);
    let key = |k: &str| SendKey::new(Some(k), "-");
    let claim = |k: &str, owner: &str, at: Timestamp| {
        SendRecord::claim(
            key(k),
            owner,
            at,
            Retention {
                in_doubt: minutes(10),
                window: minutes(60),
                redelivery: std::time::Duration::ZERO,
            },
        )
    };

    let first = claim("a", "m1", now());
    assert_eq!(
        store.claim_send(&first, now()).await.unwrap(),
        SendClaim::Claimed
    );
    assert_eq!(
        store
            .claim_send(&claim("a", "m2", now()), now())
            .await
            .unwrap(),
        SendClaim::Held(first.clone()),
        "the record in the way comes back whole"
    );
    // Still sending after its ten minutes: it runs out, and the owner's retry claims again.
    let retry = claim("a", "m1", now().plus(minutes(10)));
    assert_eq!(
        store.claim_send(&retry, retry.claimed_at).await.unwrap(),
        SendClaim::Claimed
    );

    // Settled by its Send event: sent, and kept for the key's window.
    // A message's Send and Delivery events name it twice.
    let settled = store
        .settle(
            &[key("a"), key("never-claimed"), key("a")],
            retry.claimed_at,
        )
        .await
        .unwrap();
    assert_eq!(settled, 1);
    let later = retry.claimed_at.plus(minutes(30));
    match store
        .claim_send(&claim("a", "m3", later), later)
        .await
        .unwrap()
    {
        SendClaim::Held(held) => {
            assert_eq!((held.state, held.owner.as_str()), (SendState::Sent, "m1"));
            assert_eq!(held.expires_at, retry.sent_until);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.settle(&[key("a")], later).await.unwrap(),
        0,
        "sent already: nothing to settle"
    );

    // Marked sent by the sender, in a batch; given up, free again.
    let b = claim("b", "m4", now());
    let c = claim("c", "m5", now());
    for record in [&b, &c] {
        store.claim_send(record, now()).await.unwrap();
    }
    store.mark_sent(std::slice::from_ref(&b)).await.unwrap();
    assert_eq!(
        store
            .claim_send(&claim("b", "m6", now()), now())
            .await
            .unwrap(),
        SendClaim::Held(b.sent())
    );
    store
        .give_up(&[key("c"), key("never-claimed")])
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_send(&claim("c", "m7", now()), now())
            .await
            .unwrap(),
        SendClaim::Claimed,
        "given up: free"
    );
}

async fn a_jobs_progress_is_saved_only_over_the_version_it_was_read_at(store: &dyn Store) {
    use sesguard::ports::JobProgress;
    assert_eq!(store.job("push:primary").await.unwrap(), None);
    let first = JobProgress {
        id: "push:primary".into(),
        cursor: Some("m@example.com".into()),
        handled: 200,
        steps: 1,
        started_at: now(),
        updated_at: now(),
        ..JobProgress::default()
    };
    assert!(store.save_job(&first).await.unwrap(), "a new job");
    assert!(
        !store.save_job(&first).await.unwrap(),
        "a second new one loses"
    );
    let read = store.job("push:primary").await.unwrap().unwrap();
    assert_eq!(
        (read.version, &read.cursor, read.handled),
        (1, &first.cursor, 200)
    );
    let next = JobProgress {
        cursor: None,
        handled: 450,
        steps: 2,
        finished: true,
        ..read.clone()
    };
    assert!(store.save_job(&next).await.unwrap());
    assert!(
        !store.save_job(&next).await.unwrap(),
        "the same step twice: the second loses"
    );
    let done = store.job("push:primary").await.unwrap().unwrap();
    assert_eq!((done.version, done.finished, done.handled), (2, true, 450));
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_dir, store) = crate::helpers::sqlite();
                    super::$case(&store).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = crate::helpers::dynamodb().await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

contract!(
    a_hard_bounce_suppresses_every_recipient_with_its_details,
    a_claimed_notification_is_refused_and_nothing_of_it_is_written,
    an_expired_claim_no_longer_blocks,
    the_first_reason_stays_and_later_feedback_adds_to_the_count,
    soft_bounces_are_tracked_until_the_threshold_suppresses,
    a_soft_write_planned_on_a_stale_read_is_a_conflict,
    an_expired_soft_bounce_tracker_reads_as_empty,
    counters_add_up_per_bucket_and_stream_and_read_by_range,
    unconfigured_accounts_are_registered_once,
    listing_pages_through_every_suppression_once_and_filters_by_reason,
    a_not_spam_complaint_is_recorded_without_suppressing,
    a_bounce_that_refuses_the_sender_leaves_its_addresses_sendable,
    provider_counters_add_up_exactly_and_a_replay_adds_nothing,
    a_transition_applies_once_per_version_with_one_history_entry,
    the_template_policy_reads_back_what_was_written,
    suppressions_are_read_in_one_batch_and_claims_are_exclusive_until_released,
    send_rate_tokens_are_shared_and_refill_at_the_rate,
    limits_set_at_run_time_bind_the_next_take_and_a_refill_fills_the_bucket,
    a_take_from_a_stale_read_reads_again_and_never_over_grants,
    the_gate_view_reads_policy_suppressions_states_and_rates_together,
    manual_suppressions_keep_an_earlier_reason_and_lift_with_their_record,
    a_send_record_is_claimed_once_marked_settled_given_up_and_runs_out,
    a_jobs_progress_is_saved_only_over_the_version_it_was_read_at,
    domain_answers_are_kept_until_they_expire_and_prevented_counts_add_up,
);

#[tokio::test]
async fn concurrent_senders_never_get_more_tokens_than_the_bucket_holds() {
    let store = std::sync::Arc::new(crate::helpers::dynamodb().await);
    let limits = RateLimits::from_send_rate(14.0);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                sesguard::ports::RateLedger::take(&*store, "primary", &limits, 5, now(), None)
                    .await
                    .unwrap()
                    .granted
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap();
    }
    assert_eq!(
        granted, 14,
        "6 instances asking 5 each share one bucket of 14"
    );
}

#[tokio::test]
async fn each_instance_writes_a_bucket_shard_of_its_own_and_readers_add_them_up() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = crate::helpers::dynamodb().await;
    let client = crate::helpers::dynamodb_client(None);
    // Four instances (each its own store over the same tables), four writes each.
    let instances: Vec<sesguard::adapters::dynamodb::DynamoStore> = (0..4)
        .map(|_| {
            sesguard::adapters::dynamodb::DynamoStore::new(client.clone(), store.tables().clone())
        })
        .collect();
    let start = Timestamp::from_millis(1_800_000_000_000);
    let one_send = |stream: &str| CounterDelta {
        account: "primary".into(),
        bucket: Bucket::of(
            start,
            &[(
                stream,
                Counts {
                    sends: 1,
                    ..Counts::default()
                },
            )],
        ),
        expires_at: start.plus(std::time::Duration::from_secs(86_400)),
    };
    for i in 0..16 {
        let change = ChangeSet {
            now: now(),
            counters: vec![one_send(if i % 2 == 0 { "a" } else { "b" })],
            ..ChangeSet::default()
        };
        instances[i % 4].apply(&change).await.unwrap();
    }
    // A bucket written before shards existed (`bucket#MILLIS`) still counts.
    let tables = store.tables();
    client
        .put_item()
        .table_name(&tables.state)
        .item("pk", AttributeValue::S("account#primary".into()))
        .item(
            "sk",
            AttributeValue::S(format!("bucket#{:015}", start.as_millis())),
        )
        .item(
            "bucket_start",
            AttributeValue::N(start.as_millis().to_string()),
        )
        .item("sends", AttributeValue::N("5".into()))
        .send()
        .await
        .unwrap();
    let items = client
        .query()
        .table_name(&tables.state)
        .key_condition_expression("pk = :pk AND begins_with(sk, :bucket)")
        .expression_attribute_values(":pk", AttributeValue::S("account#primary".into()))
        .expression_attribute_values(":bucket", AttributeValue::S("bucket#".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    let written: Vec<u64> = items
        .iter()
        .map(|item| match item.get("sends") {
            Some(AttributeValue::N(n)) => n.parse().unwrap(),
            _ => 0,
        })
        .collect();
    // Each instance keeps to its shard (two may have drawn the same one).
    assert!(
        (2..=5).contains(&items.len()),
        "four instances' shards and the old item: {written:?}"
    );
    assert!(
        written[1..].iter().all(|&n| n % 4 == 0),
        "each instance's four writes in one shard: {written:?}"
    );
    let window = store.window("primary", start, start).await.unwrap();
    assert_eq!(window.buckets.len(), 1, "one bucket, however many items");
    assert_eq!(window.buckets[0].total.sends, 21);
    assert_eq!(window.buckets[0].streams["a"].sends, 8);
    assert_eq!(window.buckets[0].streams["b"].sends, 8);
}

#[tokio::test]
async fn a_fast_bucket_is_paced_in_parts_that_together_never_give_more_than_it_holds() {
    let store = std::sync::Arc::new(crate::helpers::dynamodb().await);
    let limits = RateLimits::from_send_rate(1_000.0);
    assert_eq!(limits.pace().parts, 4);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut granted = 0;
                for _ in 0..4 {
                    granted += sesguard::ports::RateLedger::take(
                        &*store,
                        "primary",
                        &limits,
                        40,
                        now(),
                        None,
                    )
                    .await
                    .unwrap()
                    .granted;
                }
                granted
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap();
    }
    assert!(
        (900..=1_000).contains(&granted),
        "8 instances asking 160 each from a bucket of 1,000 split in 4: {granted}"
    );
    let record = store.rate("primary").await.unwrap();
    assert_eq!(
        record.paced.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "every part taken from"
    );
    let left = record.state_at(&limits, now()).unwrap().tokens;
    assert!(
        (left - (1_000 - granted) as f64).abs() < 1.0,
        "{left} left after {granted}"
    );
    store.refill("primary", &limits, now()).await.unwrap();
    let full = store.rate("primary").await.unwrap();
    assert!(full.paced.is_empty(), "a refill removes the parts: full");
}

#[tokio::test]
async fn an_embedded_store_from_before_bounce_reasons_gains_their_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // The suppression table as earlier versions created it, with one suppression in it.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE suppressions (email TEXT PRIMARY KEY, reason TEXT, bounce_type TEXT,
             bounce_subtype TEXT, status TEXT, diagnostic_code TEXT,
             complaint_feedback_type TEXT, count INTEGER NOT NULL DEFAULT 0, first_seen INTEGER,
             last_seen INTEGER, message_id TEXT, feedback_id TEXT,
             soft_bounces TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL DEFAULT 0,
             expires_at INTEGER);
         INSERT INTO suppressions (email, reason, count, version)
             VALUES ('old@example.org', 'bounce', 1, 1);",
    )
    .unwrap();
    drop(old);

    let store = sesguard::adapters::sqlite::SqliteStore::open(&path).unwrap();
    let kept = store.get(&email("old@example.org")).await.unwrap().unwrap();
    assert_eq!((kept.reason, kept.bounce_reason), (Reason::Bounce, None));
    store
        .apply(&planned(&store, &[effects("bounce-permanent")], now()).await)
        .await
        .unwrap();
    let new = store
        .get(&email("nobody@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.bounce_reason, Some(BounceReason::UserUnknown));
    // A second open of the migrated file adds nothing twice.
    drop(store);
    sesguard::adapters::sqlite::SqliteStore::open(&path).unwrap();
}
