//! Tests of [`super`]: notification.

use super::*;

fn sample(name: &str) -> Notification {
    let text = match name {
        "bounce-permanent" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/bounce-permanent.json"
        )),
        "bounce-transient" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/bounce-transient.json"
        )),
        "complaint" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/complaint.json"
        )),
        "delivery" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/delivery.json"
        )),
        "event-send" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/event-send.json"
        )),
        "event-bounce" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/event-bounce.json"
        )),
        "event-complaint" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/event-complaint.json"
        )),
        "event-open" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/event-open.json"
        )),
        other => panic!("no sample {other}"),
    };
    Notification::parse(text).unwrap()
}

#[test]
fn a_permanent_bounce_keeps_every_recipient_with_its_diagnostics() {
    let n = sample("bounce-permanent");
    assert_eq!(n.format, Format::Feedback);
    let Event::Bounce(bounce) = &n.event else {
        panic!("{n:?}")
    };
    assert_eq!(bounce.bounce_type, BounceType::Permanent);
    assert_eq!(bounce.sub_type, "General");
    assert_eq!(
        bounce.feedback_id.as_deref(),
        Some("0100018c-bounce-permanent-000001")
    );
    let emails: Vec<_> = bounce
        .recipients
        .iter()
        .map(|r| r.address.clone().unwrap().to_string())
        .collect();
    assert_eq!(emails, ["nobody@example.org", "gone@example.net"]);
    assert_eq!(
        bounce.recipients[0].diagnostic_code.as_deref(),
        Some("smtp; 550 5.1.1 user unknown")
    );
    assert_eq!(
        n.event_time().unwrap().to_rfc3339(),
        "2026-11-20T10:00:05.000Z"
    );
    assert_eq!(n.mail.source_region(), Some("us-east-1"));
}

#[test]
fn soft_bounces_complaints_deliveries_and_sends_are_typed() {
    let Event::Bounce(soft) = sample("bounce-transient").event else {
        panic!()
    };
    assert_eq!(
        (soft.bounce_type, soft.sub_type.as_str()),
        (BounceType::Transient, "MailboxFull")
    );
    let Event::Complaint(complaint) = sample("complaint").event else {
        panic!()
    };
    assert_eq!(complaint.feedback_type.as_deref(), Some("abuse"));
    assert!(!complaint.is_not_spam());
    let Event::Delivery(delivery) = sample("delivery").event else {
        panic!()
    };
    assert_eq!(delivery.recipients.len(), 1);
    let send = sample("event-send");
    assert_eq!(
        (send.format, send.event),
        (Format::EventPublishing, Event::Send)
    );
    assert_eq!(send.mail.tag("sesguard-stream"), Some("verification"));
}

#[test]
fn event_publishing_carries_the_same_types_and_a_null_subtype_is_absent() {
    let n = sample("event-complaint");
    assert_eq!(n.format, Format::EventPublishing);
    let Event::Complaint(complaint) = n.event else {
        panic!()
    };
    assert_eq!(complaint.sub_type, None);
    assert_eq!(
        complaint.recipients[0].clone().unwrap().as_str(),
        "spam.hater@example.com"
    );
    assert!(matches!(sample("event-bounce").event, Event::Bounce(_)));
}

#[test]
fn unknown_types_and_fields_are_accepted() {
    assert_eq!(sample("event-open").event, Event::Other("Open".into()));
    let n = Notification::parse(
        r#"{"eventType":"Quantum","mail":{"messageId":"m"},"newField":{"x":1}}"#,
    )
    .unwrap();
    assert_eq!(n.event.type_name(), "Quantum");
    let subscribed = Notification::parse(
        r#"{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"ok"}"#,
    )
    .unwrap();
    assert_eq!(
        subscribed.event,
        Event::Other("AmazonSnsSubscriptionSucceeded".into())
    );
    let extra = r#"{"notificationType":"Delivery","surprise":true,"mail":{"messageId":"m","future":[1]},
        "delivery":{"recipients":["a@example.com"],"timestamp":"2026-01-01T00:00:00Z","newThing":"x"}}"#;
    assert!(matches!(
        Notification::parse(extra).unwrap().event,
        Event::Delivery(_)
    ));
}

#[test]
fn malformed_notifications_name_what_is_wrong() {
    let cases = [
        (
            r#"{"notificationType":"Bounce","mail":{"messageId":"m"}}"#,
            "Bounce notification has no `bounce`",
        ),
        (
            r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent"}}"#,
            "Bounce notification has no `mail`",
        ),
        (
            r#"{"eventType":"Delivery","mail":{},"delivery":{}}"#,
            "Delivery notification has no `mail.messageId`",
        ),
        (
            r#"{"hello":"world"}"#,
            "neither `notificationType` nor `eventType`",
        ),
    ];
    for (text, expected) in cases {
        let error = Notification::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn a_damaged_mail_timestamp_is_noted_and_read_as_absent() {
    for bad in ["2016-01-27T14: 59: 38.237Z", "2021-08-23 06:56:30.087"] {
        let text = format!(
            r#"{{"notificationType":"Bounce","mail":{{"messageId":"m","timestamp":"{bad}"}},
               "bounce":{{"bounceType":"Permanent","timestamp":"2021-08-23T06:56:31Z",
                         "bouncedRecipients":[{{"emailAddress":"a@example.com"}}]}}}}"#
        );
        let n = Notification::parse(&text).unwrap();
        assert_eq!(n.mail.timestamp, None);
        assert_eq!(
            n.damaged,
            [format!(
                "`mail.timestamp` is not an RFC 3339 timestamp: `{bad}`"
            )]
        );
        assert_eq!(
            n.event_time(),
            Timestamp::parse_rfc3339("2021-08-23T06:56:31Z").ok(),
            "the bounce's own time stands in"
        );
    }
}

#[test]
fn a_bounce_or_complaint_naming_recipients_is_kept_without_its_mail_object() {
    let bounce = Notification::parse(
        r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",
            "bouncedRecipients":[{"emailAddress":"a@example.com"}]}}"#,
    )
    .unwrap();
    assert_eq!(bounce.damaged, ["no `mail` object"]);
    assert_eq!(bounce.mail, Mail::default());
    let complaint = Notification::parse(
        r#"{"eventType":"Complaint","mail":{"timestamp":"2021-08-23T06:56:30Z"},
            "complaint":{"complainedRecipients":[{"emailAddress":"a@example.com"}]}}"#,
    )
    .unwrap();
    assert_eq!(complaint.damaged, ["no `mail.messageId`"]);
    // Naming nobody, it stays refused: there is nothing to protect.
    let empty = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent"}}"#;
    assert!(Notification::parse(empty).is_err());
}
