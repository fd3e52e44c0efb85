//! SES notifications in both formats — feedback notifications (`notificationType`) and event
//! publishing (`eventType`) — parsed into typed events. Unknown fields are ignored and unknown
//! event types become [`Event::Other`], never an error: SES adds both without notice.
//! Wrappers (SNS, SQS) are peeled off elsewhere; this module sees the SES JSON itself.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::common::address::{AddressError, EmailAddress};
use crate::domain::common::timestamp::Timestamp;

/// One SES notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Which of the two SES formats it came in.
    pub format: Format,
    /// The `mail` object: the message the feedback is about.
    pub mail: Mail,
    /// What happened.
    pub event: Event,
    /// Optional fields found damaged and read as absent (a `mail.timestamp` that is not RFC
    /// 3339, a bounce or complaint without its `mail` object), each described: the feedback is
    /// still recorded, with fallbacks, and the ingest warns.
    pub damaged: Vec<String>,
}

/// The two SES notification formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Identity feedback notifications: `notificationType`.
    Feedback,
    /// Configuration-set event publishing: `eventType`.
    EventPublishing,
}

/// The `mail` object common to every notification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mail {
    /// SES message id.
    pub message_id: String,
    /// When SES accepted the message.
    pub timestamp: Option<Timestamp>,
    /// The sending identity's ARN (`arn:aws:ses:REGION:ACCOUNT:identity/...`).
    pub source_arn: Option<String>,
    /// The AWS account that sent the message.
    pub sending_account_id: Option<String>,
    /// The envelope recipients, as SES wrote them.
    pub destination: Vec<String>,
    /// Message tags (event publishing only): name to values.
    pub tags: BTreeMap<String, Vec<String>>,
}

impl Mail {
    /// The first value of a message tag.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.get(name)?.first().map(String::as_str)
    }

    /// The region in `sourceArn`, when there is one.
    pub fn source_region(&self) -> Option<&str> {
        let arn = self.source_arn.as_deref()?;
        let region = arn.split(':').nth(3)?;
        (!region.is_empty()).then_some(region)
    }
}

/// What a notification reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A bounce, hard or soft.
    Bounce(Bounce),
    /// A complaint (feedback loop report).
    Complaint(Complaint),
    /// Delivery to the receiving mail server.
    Delivery(Delivery),
    /// SES accepted the message for sending (event publishing only).
    Send,
    /// Any other type (`Reject`, `Open`, `Click`, `DeliveryDelay`, a type SES adds later...):
    /// accepted and ignored.
    Other(String),
}

impl Event {
    /// The SES name of the event type.
    pub fn type_name(&self) -> &str {
        match self {
            Event::Bounce(_) => "Bounce",
            Event::Complaint(_) => "Complaint",
            Event::Delivery(_) => "Delivery",
            Event::Send => "Send",
            Event::Other(name) => name,
        }
    }
}

/// How SES classified a bounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceType {
    /// Hard: the address does not exist or must not be mailed again.
    Permanent,
    /// Soft: SES retried and gave up for now (mailbox full, content rejected, ...).
    Transient,
    /// SES could not tell; treated like a soft bounce. Also any type SES adds later.
    Undetermined,
}

impl BounceType {
    /// The type of SES's `bounceType` name; any name SES adds later is `Undetermined`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "Permanent" => BounceType::Permanent,
            "Transient" => BounceType::Transient,
            _ => BounceType::Undetermined,
        }
    }
}

/// A bounce notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounce {
    /// Hard, soft or undetermined.
    pub bounce_type: BounceType,
    /// `bounceType` as received.
    pub type_name: String,
    /// `bounceSubType` as received (`General`, `NoEmail`, `OnAccountSuppressionList`, ...).
    pub sub_type: String,
    /// Every bounced recipient; each must be handled, not just the first.
    pub recipients: Vec<BouncedRecipient>,
    /// When the bounce happened.
    pub timestamp: Option<Timestamp>,
    /// SES's unique id for this feedback.
    pub feedback_id: Option<String>,
}

impl Bounce {
    /// A bounce of an address already on the account-level suppression list: SES did not
    /// send, and it does not count toward the bounce rate.
    pub fn on_account_suppression_list(&self) -> bool {
        self.sub_type == "OnAccountSuppressionList"
    }
}

/// One recipient of a bounce.
#[derive(Debug, Clone, PartialEq)]
pub struct BouncedRecipient {
    /// The address, normalised, or why it could not be.
    pub address: Result<EmailAddress, AddressError>,
    /// DSN action (`failed`).
    pub action: Option<String>,
    /// DSN status (`5.1.1`).
    pub status: Option<String>,
    /// The remote server's diagnostic (`smtp; 550 5.1.1 user unknown`).
    pub diagnostic_code: Option<String>,
}

/// A complaint notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Complaint {
    /// Complained recipients; may name every recipient at the complaining domain.
    pub recipients: Vec<Result<EmailAddress, AddressError>>,
    /// `abuse`, `fraud`, `not-spam`, ...; absent in many reports.
    pub feedback_type: Option<String>,
    /// `OnAccountSuppressionList` when SES did not send because of its own list.
    pub sub_type: Option<String>,
    /// When the complaint was received.
    pub timestamp: Option<Timestamp>,
    /// SES's unique id for this feedback.
    pub feedback_id: Option<String>,
}

impl Complaint {
    /// The recipient said the message is not spam: recorded, never suppressed.
    pub fn is_not_spam(&self) -> bool {
        self.feedback_type.as_deref() == Some("not-spam")
    }

    /// SES did not send because of its own list: does not count toward the complaint rate.
    pub fn on_account_suppression_list(&self) -> bool {
        self.sub_type.as_deref() == Some("OnAccountSuppressionList")
    }
}

/// A delivery notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The recipients delivered to.
    pub recipients: Vec<Result<EmailAddress, AddressError>>,
    /// When the receiving server accepted the message.
    pub timestamp: Option<Timestamp>,
    /// The receiving server's reply (`250 2.0.0 OK ... - gsmtp`): it names the provider.
    pub smtp_response: Option<String>,
}

/// Why a text is not a usable SES notification.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// Not JSON, or JSON whose known fields have the wrong shape.
    #[error("SES notification is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but with neither `notificationType` nor `eventType`.
    #[error("not an SES notification: it has neither `notificationType` nor `eventType`")]
    NotSes,
    /// A field this event type cannot be handled without.
    #[error("{event} notification has no `{field}`")]
    Missing {
        /// The event type.
        event: String,
        /// The missing field.
        field: &'static str,
    },
    /// A timestamp field that is not RFC 3339.
    #[error("`{field}` is not an RFC 3339 timestamp: `{value}`")]
    Timestamp {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

impl Notification {
    /// Parses the SES JSON text of one notification.
    pub fn parse(text: &str) -> Result<Self, NotificationError> {
        let raw: RawNotification = serde_json::from_str(text)?;
        raw.into_notification()
    }

    /// Reads an SES notification already decoded as JSON.
    pub fn from_value(value: serde_json::Value) -> Result<Self, NotificationError> {
        let raw: RawNotification = serde_json::from_value(value)?;
        raw.into_notification()
    }

    /// The time the event itself happened, falling back to when the mail was accepted.
    pub fn event_time(&self) -> Option<Timestamp> {
        let own = match &self.event {
            Event::Bounce(b) => b.timestamp,
            Event::Complaint(c) => c.timestamp,
            Event::Delivery(d) => d.timestamp,
            Event::Send | Event::Other(_) => None,
        };
        own.or(self.mail.timestamp)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNotification {
    notification_type: Option<String>,
    event_type: Option<String>,
    mail: Option<RawMail>,
    bounce: Option<RawBounce>,
    complaint: Option<RawComplaint>,
    delivery: Option<RawDelivery>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawMail {
    timestamp: Option<String>,
    message_id: Option<String>,
    source_arn: Option<String>,
    sending_account_id: Option<String>,
    destination: Vec<String>,
    tags: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<RawBouncedRecipient>,
    timestamp: Option<String>,
    feedback_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBouncedRecipient {
    email_address: String,
    action: Option<String>,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComplaint {
    #[serde(default)]
    complained_recipients: Vec<RawRecipient>,
    complaint_feedback_type: Option<String>,
    complaint_sub_type: Option<String>,
    timestamp: Option<String>,
    feedback_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecipient {
    email_address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDelivery {
    #[serde(default)]
    recipients: Vec<String>,
    timestamp: Option<String>,
    smtp_response: Option<String>,
}

/// Reads an optional timestamp; one that is not RFC 3339 reads as absent and is noted in
/// `damaged` (real SES fixtures carry `2016-01-27T14: 59: 38.237Z`): a bad time must not lose
/// the feedback it came with.
fn parse_time(
    field: &'static str,
    value: Option<String>,
    damaged: &mut Vec<String>,
) -> Option<Timestamp> {
    let text = value?;
    match Timestamp::parse_rfc3339(&text) {
        Ok(at) => Some(at),
        Err(_) => {
            damaged.push(NotificationError::Timestamp { field, value: text }.to_string());
            None
        }
    }
}

fn addresses<'a>(
    raw: impl IntoIterator<Item = &'a str>,
) -> Vec<Result<EmailAddress, AddressError>> {
    raw.into_iter().map(EmailAddress::parse).collect()
}

impl RawNotification {
    fn into_notification(self) -> Result<Notification, NotificationError> {
        let (format, type_name) = match (self.notification_type, self.event_type) {
            (Some(name), _) => (Format::Feedback, name),
            (None, Some(name)) => (Format::EventPublishing, name),
            (None, None) => return Err(NotificationError::NotSes),
        };
        let missing = |field| NotificationError::Missing {
            event: type_name.clone(),
            field,
        };
        let known = matches!(
            type_name.as_str(),
            "Bounce" | "Complaint" | "Delivery" | "Send"
        );
        let mut damaged = Vec::new();
        let event = match type_name.as_str() {
            "Bounce" => Event::Bounce(
                self.bounce
                    .ok_or_else(|| missing("bounce"))?
                    .into_bounce(&mut damaged),
            ),
            "Complaint" => Event::Complaint(
                self.complaint
                    .ok_or_else(|| missing("complaint"))?
                    .into_complaint(&mut damaged),
            ),
            "Delivery" => {
                let raw = self.delivery.ok_or_else(|| missing("delivery"))?;
                Event::Delivery(Delivery {
                    recipients: addresses(raw.recipients.iter().map(String::as_str)),
                    timestamp: parse_time("delivery.timestamp", raw.timestamp, &mut damaged),
                    smtp_response: raw.smtp_response,
                })
            }
            "Send" => Event::Send,
            _ => Event::Other(type_name.clone()),
        };
        // A bounce or complaint that names its recipients is kept without its `mail`: losing
        // it would leave bad addresses unsuppressed.
        let names_recipients = match &event {
            Event::Bounce(b) => !b.recipients.is_empty(),
            Event::Complaint(c) => !c.recipients.is_empty(),
            _ => false,
        };
        let mail = match self.mail {
            Some(mail) => mail.into_mail(&mut damaged),
            None if names_recipients => {
                damaged.push("no `mail` object".into());
                Mail::default()
            }
            None if known => return Err(missing("mail")),
            None => Mail::default(),
        };
        if known && mail.message_id.is_empty() {
            if !names_recipients {
                return Err(missing("mail.messageId"));
            }
            if !damaged.iter().any(|d| d == "no `mail` object") {
                damaged.push("no `mail.messageId`".into());
            }
        }
        Ok(Notification {
            format,
            mail,
            event,
            damaged,
        })
    }
}

impl RawMail {
    fn into_mail(self, damaged: &mut Vec<String>) -> Mail {
        Mail {
            message_id: self.message_id.unwrap_or_default(),
            timestamp: parse_time("mail.timestamp", self.timestamp, damaged),
            source_arn: self.source_arn,
            sending_account_id: self.sending_account_id,
            destination: self.destination,
            tags: self.tags,
        }
    }
}

impl RawBounce {
    fn into_bounce(self, damaged: &mut Vec<String>) -> Bounce {
        let bounce_type = BounceType::from_name(&self.bounce_type);
        Bounce {
            bounce_type,
            type_name: self.bounce_type,
            sub_type: self.bounce_sub_type.unwrap_or_default(),
            recipients: self
                .bounced_recipients
                .into_iter()
                .map(|r| BouncedRecipient {
                    address: EmailAddress::parse(&r.email_address),
                    action: r.action,
                    status: r.status,
                    diagnostic_code: r.diagnostic_code,
                })
                .collect(),
            timestamp: parse_time("bounce.timestamp", self.timestamp, damaged),
            feedback_id: self.feedback_id,
        }
    }
}

impl RawComplaint {
    fn into_complaint(self, damaged: &mut Vec<String>) -> Complaint {
        Complaint {
            recipients: addresses(
                self.complained_recipients
                    .iter()
                    .map(|r| r.email_address.as_str()),
            ),
            feedback_type: self.complaint_feedback_type,
            sub_type: self.complaint_sub_type,
            timestamp: parse_time("complaint.timestamp", self.timestamp, damaged),
            feedback_id: self.feedback_id,
        }
    }
}

#[cfg(test)]
mod tests;
