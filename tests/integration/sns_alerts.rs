//! The SNS alert sink against the local AWS-compatible server: an alert published to a topic
//! arrives, subject and JSON body intact, at a queue subscribed to it.

use serde_json::Value;
use sesguard::adapters::alerts::SnsAlerts;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::reputation::history::{Alert, HistoryEntry};
use sesguard::domain::reputation::state::Cause;
use sesguard::domain::reputation::state::StateName;
use sesguard::ports::AlertSink;

use crate::helpers::{local_queue, local_sdk, unique_tables};

#[tokio::test]
async fn an_alert_reaches_the_topics_subscribers_with_its_subject_and_fields() {
    let sdk = local_sdk();
    let (sns, sqs) = (
        aws_sdk_sns::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    );
    let name = unique_tables().state.replace("state-", "alerts-");
    let topic = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (queue, queue_arn) = local_queue(&sqs, "alerts").await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();

    let alert = Alert {
        change: HistoryEntry {
            at: Timestamp::from_millis(1_795_179_600_000),
            account: "primary".into(),
            stream: Some("verification".into()),
            from: StateName::Active,
            to: StateName::Quarantined,
            cause: Cause::BounceRate,
            note: None,
            share: None,
            bounce_rate: 0.0802,
            complaint_rate: 0.0,
            window_sends: 99_820,
            bounds: None,
            ses: None,
            actor: "guard".into(),
        },
        traffic: "verification fails over to backup".into(),
    };
    SnsAlerts::new(sns, topic).publish(&alert).await.unwrap();

    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let envelope: Value = serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        envelope["Subject"],
        "sesguard: primary stream verification active -> quarantined"
    );
    let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["account"], "primary");
    assert_eq!(body["to"], "quarantined");
    assert_eq!(body["cause"], "bounce_rate");
    assert_eq!(body["window_sends"], 99_820);
    assert_eq!(body["traffic"], "verification fails over to backup");
}
