//! SNS subscription messages that reach ingest through the feedback queue. A topic of
//! another account (a backup account's feedback) subscribed to the queue by the topic's owner
//! stays *PendingConfirmation* until the queue's owner confirms it: SNS puts a signed
//! `SubscriptionConfirmation` into the queue, and without this the account's feedback would
//! never arrive. Each message is verified exactly as the webhook verifies a delivery, then
//! confirmed or alerted ([`crate::app::subscription`]); one that does not verify is refused
//! with one alert per topic a day, and nothing of it is kept.

use serde_json::json;

use crate::app::subscription::{SubscriptionError, Subscriptions};
use crate::app::webhook::{Answer, Certificates, check};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::{Envelope, MessageType, REPLAY_MEMORY, Rejection};
use crate::telemetry::error_chain;

/// How long a refused topic is not alerted again.
const REFUSAL_MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What became of a subscription message.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Confirmed: the topic's messages now reach sesguard.
    Confirmed(String),
    /// The queue was unsubscribed from the topic: alerted.
    Unsubscribed(String),
    /// Already handled (the same `MessageId`).
    Duplicate,
    /// Refused and kept nowhere: the topic is not allowed or the message did not verify.
    Refused(Rejection),
}

impl Handled {
    /// How the ingest report names it.
    pub fn describe(&self, kind: &str) -> String {
        match self {
            Handled::Confirmed(topic) => format!("SNS {kind}: confirmed {topic}"),
            Handled::Unsubscribed(topic) => {
                format!("SNS {kind}: unsubscribed from {topic}, alerted")
            }
            Handled::Duplicate => format!("SNS {kind}: handled before"),
            Handled::Refused(rejection) => format!("SNS {kind} refused: {rejection}"),
        }
    }
}

/// The feedback queue's subscription messages, for one function.
pub struct QueuedSubscriptions<'a> {
    subscriptions: Subscriptions<'a>,
    certificates: &'a Certificates,
}

impl<'a> QueuedSubscriptions<'a> {
    /// Acting through `subscriptions`, verifying with `certificates`.
    pub fn new(subscriptions: Subscriptions<'a>, certificates: &'a Certificates) -> Self {
        Self {
            subscriptions,
            certificates,
        }
    }

    /// A subscription message that reached the feedback queue: verified exactly as the
    /// webhook verifies (allowed topic, signature version, certificate URL, age, signature),
    /// de-duplicated by `MessageId`, then confirmed or alerted. One that does not verify is
    /// alerted once per topic a day and kept nowhere.
    pub async fn handle(
        &self,
        envelope: Envelope,
        now: Timestamp,
    ) -> Result<Handled, SubscriptionError> {
        let settings = &self.subscriptions.deps.config.webhook;
        let allowed = |topic: &str| settings.topics.iter().any(|t| t == topic);
        let topic = envelope.topic_arn.clone();
        let envelope = match check(envelope, &allowed, settings, self.certificates, now).await {
            Ok(envelope) => envelope,
            Err(Answer::Rejected(rejection)) => {
                self.refused(&topic, &rejection, now).await?;
                return Ok(Handled::Refused(rejection));
            }
            Err(answer) => return Err(SubscriptionError::Unavailable(answer.body().to_string())),
        };
        let replay_key = format!("sns:{}", envelope.message_id);
        if self.seen(&replay_key, now).await? {
            return Ok(Handled::Duplicate);
        }
        let handled = match envelope.kind {
            MessageType::SubscriptionConfirmation => {
                match self.subscriptions.confirm(&envelope, now).await {
                    Ok(_) => Handled::Confirmed(topic),
                    Err(SubscriptionError::Refused(rejection)) => {
                        self.refused(&topic, &rejection, now).await?;
                        Handled::Refused(rejection)
                    }
                    Err(error) => return Err(error),
                }
            }
            MessageType::UnsubscribeConfirmation => {
                self.subscriptions.unsubscribed(&envelope).await?;
                Handled::Unsubscribed(topic)
            }
            // Notifications go the ingest path; one handed here is refused, not alerted.
            MessageType::Notification => {
                let why = "a notification is not a subscription message".to_owned();
                return Ok(Handled::Refused(Rejection::Malformed(why)));
            }
        };
        self.remember(&replay_key, now.plus(REPLAY_MEMORY)).await;
        Ok(handled)
    }

    /// One alert per refused topic a day: what came, why it was refused, what to do.
    async fn refused(
        &self,
        topic: &str,
        rejection: &Rejection,
        now: Timestamp,
    ) -> Result<(), SubscriptionError> {
        tracing::warn!(topic, via = self.subscriptions.via, reason = rejection.code(), error = %rejection, "SNS subscription message refused");
        let key = format!("sns-refused:{topic}");
        if self.seen(&key, now).await? {
            return Ok(());
        }
        let body = json!({
            "topic": topic,
            "via": self.subscriptions.via,
            "reason": rejection.code(),
            "error": rejection.to_string(),
            "what": "an SNS subscription message for this topic was refused and not acted on",
            "action": "if the topic is yours (a backup account's feedback), add it to the stack's BackupFeedbackTopicArns and subscribe the queue again from the topic's account",
        });
        self.subscriptions
            .deps
            .alerts
            .notice("sesguard: SNS subscription refused", &body)
            .await
            .map_err(|error| SubscriptionError::Unavailable(error_chain(&error)))?;
        self.remember(&key, now.plus(REFUSAL_MEMORY)).await;
        Ok(())
    }

    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, SubscriptionError> {
        self.subscriptions
            .deps
            .store
            .seen(key, now)
            .await
            .map_err(|error| SubscriptionError::Unavailable(error_chain(&error)))
    }

    async fn remember(&self, key: &str, until: Timestamp) {
        if let Err(error) = self.subscriptions.deps.store.remember(key, until).await {
            tracing::error!(key, error = %error_chain(&error), "handled, but not remembered");
        }
    }
}
