//! Tests of [`super`]: plan.

use super::*;
use crate::domain::feedback::attribution::{
    AccountDirectory, KnownAccount, SendSource, SenderBounces,
};
use crate::domain::feedback::bounce_reason::{BounceClass, BounceEffect, BounceReason};
use crate::domain::feedback::notification::{BounceType, Notification};

const NOW: i64 = 1_763_650_000_000;

fn directory() -> AccountDirectory {
    AccountDirectory::new(vec![KnownAccount {
        name: "primary".into(),
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        send_source: SendSource::SesEvents,
    }])
}

fn effects(json: &str) -> Effects {
    let notification = Notification::parse(json).unwrap();
    match assess(
        &notification,
        &directory(),
        SimulatorFeedback::Ignore,
        Timestamp::from_millis(NOW),
    ) {
        Assessment::Apply(effects) => *effects,
        Assessment::Ignore(reason) => panic!("ignored: {reason}"),
    }
}

#[test]
fn bounces_and_complaints_are_remembered_for_weeks_sends_and_deliveries_for_hours() {
    let policy = IngestPolicy::default();
    let ttl = |sample: &str| {
        let effects = effects(sample);
        let change = plan(
            std::slice::from_ref(&effects),
            &HashMap::new(),
            &Origins::new(),
            &policy,
            Timestamp::from_millis(NOW),
        );
        change.claims[0]
            .expires_at
            .since(Timestamp::from_millis(NOW))
    };
    let days = |n: u64| Duration::from_secs(n * 86_400);
    let hours = |n: u64| Duration::from_secs(n * 3600);
    for sample in [
        include_str!("../../../../events/ses/bounce-permanent.json"),
        include_str!("../../../../events/ses/bounce-transient.json"),
        include_str!("../../../../events/ses/complaint.json"),
        include_str!("../../../../events/ses/complaint-not-spam.json"),
        include_str!("../../../../events/ses/event-bounce.json"),
    ] {
        assert_eq!(ttl(sample), days(14));
    }
    for sample in [
        include_str!("../../../../events/ses/delivery.json"),
        include_str!("../../../../events/ses/event-delivery.json"),
        include_str!("../../../../events/ses/event-send.json"),
    ] {
        assert_eq!(ttl(sample), hours(6));
    }
}

fn bounce(kind: &str, sub: &str, id: &str, at: &str, to: &[&str]) -> Effects {
    let recipients: Vec<String> = to
        .iter()
        .map(|a| format!(r#"{{"emailAddress":"{a}"}}"#))
        .collect();
    effects(&format!(
        r#"{{"notificationType":"Bounce","mail":{{"messageId":"m-{id}","sendingAccountId":"111111111111",
           "sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com"}},
           "bounce":{{"bounceType":"{kind}","bounceSubType":"{sub}","feedbackId":"{id}","timestamp":"{at}",
           "bouncedRecipients":[{}]}}}}"#,
        recipients.join(",")
    ))
}

fn complaint(feedback_type: &str, to: &[&str]) -> Effects {
    let recipients: Vec<String> = to
        .iter()
        .map(|a| format!(r#"{{"emailAddress":"{a}"}}"#))
        .collect();
    effects(&format!(
        r#"{{"eventType":"Complaint","mail":{{"messageId":"m","tags":{{"sesguard-account":["primary"]}}}},
           "complaint":{{"complaintFeedbackType":"{feedback_type}","feedbackId":"c1","timestamp":"2026-11-20T10:00:00Z",
           "complainedRecipients":[{}]}}}}"#,
        recipients.join(",")
    ))
}

#[test]
fn both_formats_of_one_feedback_share_a_key() {
    let feedback = bounce(
        "Permanent",
        "General",
        "fb-1",
        "2026-11-20T10:00:00Z",
        &["a@example.com"],
    );
    let event = effects(
        r#"{"eventType":"Bounce","mail":{"messageId":"m-fb-1"},"bounce":{"bounceType":"Permanent",
           "feedbackId":"fb-1","bouncedRecipients":[{"emailAddress":"a@example.com"}]}}"#,
    );
    assert_eq!(feedback.key, "feedback:fb-1");
    assert_eq!(event.key, feedback.key);
}

#[test]
fn a_complaint_naming_many_recipients_counts_once_and_not_spam_not_at_all() {
    let many = complaint(
        "abuse",
        &["a@example.com", "b@example.com", "c@example.com"],
    );
    assert_eq!((many.counts.complaints, many.addresses.len()), (1, 3));
    let fine = complaint("not-spam", &["a@example.com"]);
    assert_eq!(fine.counts.complaints, 0);
    let change = plan(
        &[fine],
        &HashMap::new(),
        &Origins::new(),
        &IngestPolicy::default(),
        Timestamp::from_millis(NOW),
    );
    assert_eq!(change.suppressions[0].suppress, None);
    assert_eq!(
        change.suppressions[0]
            .feedback
            .as_ref()
            .unwrap()
            .complaint_feedback_type
            .as_deref(),
        Some("not-spam")
    );
    assert!(
        change.counters.is_empty(),
        "nothing to count, no counter write"
    );
}

#[test]
fn one_update_per_address_keeps_the_first_reason_and_the_latest_details() {
    let first = bounce(
        "Permanent",
        "NoEmail",
        "b1",
        "2026-11-20T10:00:00Z",
        &["a@example.com", "b@example.com"],
    );
    let mut later = complaint("abuse", &["A@Example.com"]);
    later.at = Timestamp::parse_rfc3339("2026-11-20T11:00:00Z").unwrap();
    let change = plan(
        &[later, first],
        &HashMap::new(),
        &Origins::new(),
        &IngestPolicy::default(),
        Timestamp::from_millis(NOW),
    );
    assert_eq!(change.claims.len(), 2);
    assert_eq!(change.suppressions.len(), 2);
    let a = &change.suppressions[0];
    assert_eq!(a.email.as_str(), "a@example.com");
    assert_eq!(
        a.suppress,
        Some(Reason::Bounce),
        "the earlier event's reason"
    );
    let feedback = a.feedback.as_ref().unwrap();
    assert_eq!(feedback.events, 2);
    assert_eq!(feedback.first_seen.to_rfc3339(), "2026-11-20T10:00:00.000Z");
    assert_eq!(feedback.last_seen.to_rfc3339(), "2026-11-20T11:00:00.000Z");
    assert_eq!(feedback.complaint_feedback_type.as_deref(), Some("abuse"));
    assert_eq!(feedback.bounce.as_ref().unwrap().bounce_subtype, "NoEmail");
    assert!(a.soft.is_none(), "hard feedback is a blind write");
}

#[test]
fn counters_are_one_delta_per_account_bucket_with_streams_inside() {
    let policy = IngestPolicy::default();
    let a = bounce(
        "Permanent",
        "General",
        "b1",
        "2026-11-20T10:01:00Z",
        &["a@example.com"],
    );
    let b = bounce(
        "Transient",
        "General",
        "b2",
        "2026-11-20T10:14:00Z",
        &["b@example.com"],
    );
    let c = bounce(
        "Permanent",
        "General",
        "b3",
        "2026-11-20T10:16:00Z",
        &["c@example.com"],
    );
    let mut tagged = complaint("abuse", &["d@example.com"]);
    tagged.attribution.stream = Some("bulk".into());
    tagged.at = a.at;
    let change = plan(
        &[a, b, c, tagged],
        &HashMap::new(),
        &Origins::new(),
        &policy,
        Timestamp::from_millis(NOW),
    );
    assert_eq!(change.counters.len(), 2);
    let first = &change.counters[0];
    assert_eq!(first.bucket.start.to_rfc3339(), "2026-11-20T10:00:00.000Z");
    assert_eq!(
        (
            first.bucket.total.hard_bounces,
            first.bucket.total.soft_bounces,
            first.bucket.total.complaints
        ),
        (1, 1, 1)
    );
    assert_eq!(first.bucket.streams["bulk"].complaints, 1);
    assert_eq!(change.counters[1].bucket.total.hard_bounces, 1);
}

#[test]
fn a_soft_bounce_write_is_conditional_on_the_version_read() {
    let soft = bounce(
        "Transient",
        "MailboxFull",
        "s1",
        "2026-11-20T10:00:00Z",
        &["a@example.com"],
    );
    let email = soft.addresses[0].email.clone();
    let states = HashMap::from([(
        email,
        AddressState {
            version: 7,
            suppressed: false,
            soft_bounces: vec![],
        },
    )]);
    let change = plan(
        &[soft],
        &states,
        &Origins::new(),
        &IngestPolicy::default(),
        Timestamp::from_millis(NOW),
    );
    let write = change.suppressions[0].soft.as_ref().unwrap();
    assert_eq!(write.expected_version, 7);
    assert_eq!(write.bounces.len(), 1);
    assert!(
        write.expires_at.is_some(),
        "an unsuppressed tracker expires"
    );
}

#[test]
fn a_delivery_to_an_address_without_soft_bounces_writes_nothing() {
    let delivery = effects(
        r#"{"notificationType":"Delivery","mail":{"messageId":"m"},
           "delivery":{"recipients":["a@example.com","b@example.com"],"timestamp":"2026-11-20T10:00:00Z"}}"#,
    );
    assert_eq!(addresses_to_read(std::slice::from_ref(&delivery)).len(), 2);
    let change = plan(
        &[delivery],
        &HashMap::new(),
        &Origins::new(),
        &IngestPolicy::default(),
        Timestamp::from_millis(NOW),
    );
    assert!(change.suppressions.is_empty());
    assert_eq!(change.counters[0].bucket.total.deliveries, 2);
}

fn assessed(json: &str, simulator: SimulatorFeedback) -> Effects {
    let notification = Notification::parse(json).unwrap();
    match assess(
        &notification,
        &directory(),
        simulator,
        Timestamp::from_millis(NOW),
    ) {
        Assessment::Apply(effects) => *effects,
        Assessment::Ignore(reason) => panic!("ignored: {reason}"),
    }
}

const SIMULATED_SEND: &str = r#"{"eventType":"Send","mail":{"messageId":"m1","sendingAccountId":"111111111111","sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com","destination":["bounce@simulator.amazonses.com","a@example.com"]}}"#;
const SIMULATED_BOUNCE: &str = r#"{"eventType":"Bounce","mail":{"messageId":"m1","sendingAccountId":"111111111111","sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com"},"bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"bounce@simulator.amazonses.com"}]}}"#;
const SIMULATED_COMPLAINT: &str = r#"{"eventType":"Complaint","mail":{"messageId":"m2","sendingAccountId":"111111111111","sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com"},"complaint":{"complainedRecipients":[{"emailAddress":"complaint@simulator.amazonses.com"}]}}"#;

#[test]
fn simulator_feedback_is_neither_counted_nor_suppressed_by_default() {
    assert_eq!(
        assessed(SIMULATED_SEND, SimulatorFeedback::Ignore)
            .counts
            .sends,
        1
    );
    let bounce = assessed(SIMULATED_BOUNCE, SimulatorFeedback::Ignore);
    assert_eq!(bounce.counts.hard_bounces, 0);
    assert!(bounce.addresses.is_empty());
    assert_eq!(
        assessed(SIMULATED_COMPLAINT, SimulatorFeedback::Ignore)
            .counts
            .complaints,
        0
    );
}

#[test]
fn counted_simulator_feedback_drives_the_rates_but_never_suppresses() {
    assert_eq!(
        assessed(SIMULATED_SEND, SimulatorFeedback::Count)
            .counts
            .sends,
        2
    );
    let bounce = assessed(SIMULATED_BOUNCE, SimulatorFeedback::Count);
    assert_eq!(bounce.counts.hard_bounces, 1);
    assert!(
        bounce.addresses.is_empty(),
        "a simulator address is never suppressed"
    );
    let complaint = assessed(SIMULATED_COMPLAINT, SimulatorFeedback::Count);
    assert_eq!(complaint.counts.complaints, 1);
    assert!(complaint.addresses.is_empty());
}

/// A permanent `General` bounce in event-publishing form, tagged with `stream`, whose
/// recipients carry these diagnostics.
fn diagnosed_bounce(stream: &str, recipients: &[(&str, &str)]) -> String {
    let recipients: Vec<String> = recipients
        .iter()
        .map(|(a, d)| format!(r#"{{"emailAddress":"{a}","diagnosticCode":"{d}"}}"#))
        .collect();
    format!(
        r#"{{"eventType":"Bounce","mail":{{"messageId":"m-diag","sendingAccountId":"111111111111",
           "sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com",
           "tags":{{"sesguard-stream":["{stream}"]}}}},
           "bounce":{{"bounceType":"Permanent","bounceSubType":"General","feedbackId":"f-diag",
           "timestamp":"2026-11-20T10:00:00.000Z","bouncedRecipients":[{}]}}}}"#,
        recipients.join(",")
    )
}

fn planned_with(directory: &AccountDirectory, json: &str) -> (Effects, ChangeSet) {
    let notification = Notification::parse(json).unwrap();
    let Assessment::Apply(effects) = assess(
        &notification,
        directory,
        SimulatorFeedback::Ignore,
        Timestamp::from_millis(NOW),
    ) else {
        panic!("ignored")
    };
    let change = plan(
        std::slice::from_ref(&effects),
        &HashMap::new(),
        &Origins::new(),
        &IngestPolicy::default(),
        Timestamp::from_millis(NOW),
    );
    (*effects, change)
}

const MIXED: &[(&str, &str)] = &[
    ("gone@example.org", "smtp; 550 5.1.1 user unknown"),
    (
        "valued@example.org",
        "smtp; 554 5.7.1 Client host rejected: blocked using zen.spamhaus.org",
    ),
    ("full@example.org", "smtp; 552 5.2.2 Mailbox full"),
];

#[test]
fn a_permanent_bounce_suppresses_only_what_says_the_address_is_bad() {
    let (effects, change) = planned_with(&directory(), &diagnosed_bounce("signup", MIXED));
    // SES counts all three: the rates are unchanged.
    assert_eq!(effects.counts.hard_bounces, 3);
    let by_email = |e: &str| {
        change
            .suppressions
            .iter()
            .find(|s| s.email.as_str() == e)
            .unwrap_or_else(|| panic!("{e} has no update"))
    };
    let gone = by_email("gone@example.org");
    assert_eq!(gone.suppress, Some(Reason::Bounce));
    let reason =
        |u: &SuppressionUpdate| u.feedback.as_ref().unwrap().bounce.as_ref().unwrap().reason;
    assert_eq!(reason(gone), BounceReason::UserUnknown);

    let valued = by_email("valued@example.org");
    assert_eq!(
        valued.suppress, None,
        "a blocklist refuses us, not the address"
    );
    let kept = valued.soft.as_ref().expect("written on the version read");
    assert!(
        kept.bounces.is_empty(),
        "nor does it count toward the soft threshold"
    );
    assert_eq!(
        kept.expires_at,
        Some(effects.at.plus(SoftBouncePolicy::default().window)),
        "the record of a sendable address expires"
    );
    assert_eq!(reason(valued), BounceReason::Blocked);

    let full = by_email("full@example.org");
    assert_eq!(
        full.suppress, None,
        "a full mailbox follows the soft-bounce policy"
    );
    assert_eq!(full.soft.as_ref().unwrap().bounces.len(), 1);
    assert_eq!(reason(full), BounceReason::MailboxFull);
}

#[test]
fn a_stream_may_ask_for_ses_behaviour_on_sender_bounces() {
    let directory = directory().with_suppressing_streams(vec!["signup".into()]);
    let (_, change) = planned_with(&directory, &diagnosed_bounce("signup", MIXED));
    let valued = change
        .suppressions
        .iter()
        .find(|s| s.email.as_str() == "valued@example.org")
        .unwrap();
    assert_eq!(valued.suppress, Some(Reason::Bounce));
    // Another stream keeps the default.
    let (_, change) = planned_with(&directory, &diagnosed_bounce("news", MIXED));
    assert_eq!(change.suppressing(), 1);
}

#[test]
fn the_class_not_the_ses_type_decides_what_becomes_of_the_address() {
    use BounceClass::*;
    use BounceEffect::*;
    use BounceType::*;
    let of = |t, c, s| BounceEffect::of(t, c, s);
    let record = SenderBounces::Record;
    let ses = SenderBounces::Suppress;
    assert_eq!(of(Permanent, Address, record), Suppress);
    assert_eq!(of(Transient, Address, record), SoftBounce);
    assert_eq!(of(Permanent, Temporary, record), SoftBounce);
    assert_eq!(of(Permanent, Temporary, ses), SoftBounce);
    assert_eq!(of(Permanent, Sender, record), Record);
    assert_eq!(of(Transient, Sender, record), Record);
    assert_eq!(of(Permanent, Sender, ses), Suppress);
    assert_eq!(of(Transient, Sender, ses), SoftBounce);
    assert_eq!(of(Undetermined, Sender, ses), SoftBounce);
}

#[test]
fn a_bounce_from_the_ses_suppression_list_counts_at_no_provider() {
    let effects = bounce(
        "Permanent",
        "OnAccountSuppressionList",
        "f-list",
        "2026-11-20T10:00:00.000Z",
        &["listed@gmail.com"],
    );
    assert!(effects.providers.is_empty(), "{:?}", effects.providers);
    let answered = bounce(
        "Permanent",
        "General",
        "f-answered",
        "2026-11-20T10:00:00.000Z",
        &["gone@gmail.com"],
    );
    assert_eq!(answered.providers["google"].address_bounces, 1);
}
