//! The text of one delivered message — an SQS body, an HTTP POST body, a file — peeled down to
//! the SES notification inside: either an SNS envelope whose `Message` is the SES JSON, or
//! (SNS raw message delivery) the SES JSON itself. Lambda event wrappers (`Records[]`) are
//! the entry points' business; signatures are verified by the webhook, not here.

use serde_json::Value;

use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::Envelope;

use crate::domain::feedback::notification::{Notification, NotificationError};

/// What one message body held.
#[derive(Debug)]
pub struct Delivered {
    /// The SNS envelope's ids, when the body was an envelope.
    pub sns: Option<SnsIds>,
    /// The SES notification, or the SNS control message that took its place.
    pub content: Content,
}

/// Identifiers of an SNS envelope, kept for logs and replay checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsIds {
    /// SNS `MessageId`; retries reuse it.
    pub message_id: String,
    /// The topic that published it.
    pub topic_arn: String,
    /// When SNS published it (`Timestamp`), when readable: feedback whose own times are
    /// missing or damaged is counted at it.
    pub timestamp: Option<Timestamp>,
}

/// The payload of a delivered message.
#[derive(Debug)]
pub enum Content {
    /// An SES notification.
    Notification(Box<Notification>),
    /// An SNS message that is not a notification (`SubscriptionConfirmation`,
    /// `UnsubscribeConfirmation`): nothing to record, but the subscription to act on.
    SnsControl {
        /// Its `Type`.
        kind: String,
        /// The whole envelope, when the body was one (an SQS message's: a subscription of
        /// the queue to confirm); `None` when a wrapper gave only its fields.
        envelope: Option<Box<Envelope>>,
    },
}

/// Why a body is not a usable message.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON at all.
    #[error("message body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON that is neither an SNS envelope nor an SES notification.
    #[error("message body is neither an SNS envelope nor an SES notification")]
    Unrecognised,
    /// An SNS envelope without a field every envelope has.
    #[error("SNS envelope has no string `{0}`")]
    Envelope(&'static str),
    /// The SES notification inside is malformed.
    #[error(transparent)]
    Notification(#[from] NotificationError),
}

/// Peels one message body.
pub fn open(body: &str) -> Result<Delivered, EnvelopeError> {
    open_value(serde_json::from_str(body).map_err(EnvelopeError::NotJson)?)
}

/// Peels one message body already decoded as JSON.
pub fn open_value(value: Value) -> Result<Delivered, EnvelopeError> {
    let Value::Object(object) = &value else {
        return Err(EnvelopeError::Unrecognised);
    };
    if object.contains_key("notificationType") || object.contains_key("eventType") {
        let notification = Notification::from_value(value)?;
        return Ok(Delivered {
            sns: None,
            content: Content::Notification(Box::new(notification)),
        });
    }
    if !(object.contains_key("Type") && object.contains_key("TopicArn")) {
        return Err(EnvelopeError::Unrecognised);
    }
    let kind = object.get("Type").and_then(Value::as_str);
    if kind.is_some_and(|kind| kind != "Notification") {
        // A control message keeps its whole envelope, to be verified and acted on.
        let mut delivered = open_fields(object)?;
        if let Content::SnsControl { envelope, .. } = &mut delivered.content {
            *envelope = Envelope::from_value(value).ok().map(Box::new);
        }
        return Ok(delivered);
    }
    open_fields(object)
}

/// The fields every envelope has, read from its JSON object.
fn open_fields(object: &serde_json::Map<String, Value>) -> Result<Delivered, EnvelopeError> {
    let field = |name: &'static str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .ok_or(EnvelopeError::Envelope(name))
    };
    let timestamp = object
        .get("Timestamp")
        .and_then(Value::as_str)
        .and_then(|text| Timestamp::parse_rfc3339(text).ok());
    open_sns(
        field("Type")?,
        field("MessageId")?,
        field("TopicArn")?,
        timestamp,
        field("Message")?,
    )
}

/// Reads the fields of an SNS message, whichever wrapper it came in.
pub fn open_sns(
    kind: &str,
    message_id: &str,
    topic_arn: &str,
    timestamp: Option<Timestamp>,
    message: &str,
) -> Result<Delivered, EnvelopeError> {
    let sns = Some(SnsIds {
        message_id: message_id.to_owned(),
        topic_arn: topic_arn.to_owned(),
        timestamp,
    });
    let content = if kind == "Notification" {
        Content::Notification(Box::new(Notification::parse(message)?))
    } else {
        Content::SnsControl {
            kind: kind.to_owned(),
            envelope: None,
        }
    };
    Ok(Delivered { sns, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sns_envelope_yields_its_ids_and_the_notification_inside() {
        let delivered = open(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/sns-http-bounce.json"
        )))
        .unwrap();
        let sns = delivered.sns.unwrap();
        assert_eq!(sns.message_id, "a1b2c3d4-0000-4000-8000-000000000001");
        assert_eq!(
            sns.topic_arn,
            "arn:aws:sns:us-east-1:111111111111:ses-feedback"
        );
        assert!(matches!(delivered.content, Content::Notification(_)));
    }

    #[test]
    fn raw_ses_json_is_accepted_without_an_envelope() {
        let delivered = open(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/ses/complaint.json"
        )))
        .unwrap();
        assert!(delivered.sns.is_none());
        assert!(matches!(delivered.content, Content::Notification(_)));
    }

    #[test]
    fn sns_control_messages_are_not_notifications() {
        let body = r#"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"confirm"}"#;
        assert!(matches!(
            open(body).unwrap().content,
            Content::SnsControl { kind, envelope: None } if kind == "SubscriptionConfirmation"
        ));
        // Signed and complete, the envelope comes along to be verified and confirmed.
        let signed = r#"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"confirm","Timestamp":"2026-12-06T08:00:00Z","SignatureVersion":"2","Signature":"c2ln","SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem","SubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription","Token":"k"}"#;
        let Content::SnsControl {
            envelope: Some(envelope),
            ..
        } = open(signed).unwrap().content
        else {
            panic!("no envelope kept");
        };
        assert_eq!(envelope.token.as_deref(), Some("k"));
    }

    #[test]
    fn bodies_that_are_not_messages_are_refused_with_the_reason() {
        assert!(matches!(open("{nope"), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(open("[1,2]"), Err(EnvelopeError::Unrecognised)));
        assert!(matches!(
            open(r#"{"Type":"Notification","TopicArn":"t","MessageId":"m"}"#),
            Err(EnvelopeError::Envelope("Message"))
        ));
        let inner = r#"{"Type":"Notification","TopicArn":"t","MessageId":"m","Message":"{\"notificationType\":\"Bounce\"}"}"#;
        assert!(open(inner).unwrap_err().to_string().contains("no `bounce`"));
    }
}
