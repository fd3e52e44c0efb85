//! SNS subscription messages once verified, wherever they arrived (the webhook over HTTPS,
//! ingest through the feedback queue: [`crate::app::queued_subscription`]). A
//! `SubscriptionConfirmation` is confirmed by visiting its `SubscribeURL` once that URL is
//! checked, with an audit entry; an `UnsubscribeConfirmation` is alerted, its URL never
//! visited.

use serde_json::{Value, json};

use crate::app::Context;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::{self, Envelope, Rejection};
use crate::ports::{AuditEntry, SubscriptionConfirmer};
use crate::telemetry::error_chain;

/// Why a subscription message could not be handled now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubscriptionError {
    /// Refused: its `SubscribeURL` is not one to visit.
    #[error(transparent)]
    Refused(Rejection),
    /// A transient failure (store, alert, the confirmation request): try again.
    #[error("{0}")]
    Unavailable(String),
}

/// Acts on subscription messages for one function (`via` names it in the audit log).
pub struct Subscriptions<'a> {
    pub(crate) deps: &'a Context,
    confirmer: &'a dyn SubscriptionConfirmer,
    pub(crate) via: &'static str,
}

impl<'a> Subscriptions<'a> {
    /// Subscription messages of `context`, confirmed through `confirmer`, audited as `via`.
    pub fn of(
        context: &'a Context,
        confirmer: &'a dyn SubscriptionConfirmer,
        via: &'static str,
    ) -> Self {
        Self {
            deps: context,
            confirmer,
            via,
        }
    }

    /// Confirms a verified `SubscriptionConfirmation`: its `SubscribeURL` checked against the
    /// topic and SNS's origin, then visited; the confirmation goes into the audit log.
    pub async fn confirm(
        &self,
        envelope: &Envelope,
        now: Timestamp,
    ) -> Result<Value, SubscriptionError> {
        let url = envelope.subscribe_url.as_deref().unwrap_or_default();
        let origin = &self.deps.config.webhook.origin;
        delivery::check_subscribe_url(url, &envelope.topic_arn, origin)
            .map_err(SubscriptionError::Refused)?;
        self.confirmer
            .confirm(url)
            .await
            .map_err(|error| SubscriptionError::Unavailable(error_chain(&error)))?;
        tracing::info!(topic = %envelope.topic_arn, via = self.via, "subscription confirmed");
        let entry = AuditEntry {
            at: now,
            actor: format!("sesguard:{}", self.via),
            action: "subscription.confirm".into(),
            target: envelope.topic_arn.clone(),
            reason: "SNS SubscriptionConfirmation, signature and topic verified".into(),
            detail: json!({"message_id": envelope.message_id, "via": self.via}),
        };
        let expires_at = now.plus(self.deps.config.guard.history_ttl);
        if let Err(error) = self.deps.store.record(&entry, expires_at).await {
            // Confirmed all the same: the subscription is SNS's, the entry only its record.
            tracing::error!(topic = %envelope.topic_arn, error = %error_chain(&error), "subscription confirmed, but not written to the audit log");
        }
        Ok(json!({"confirmed": envelope.topic_arn}))
    }

    /// Alerts a verified `UnsubscribeConfirmation`; its URL is deliberately not visited.
    pub async fn unsubscribed(&self, envelope: &Envelope) -> Result<Value, SubscriptionError> {
        let body = json!({
            "topic": envelope.topic_arn,
            "message_id": envelope.message_id,
            "via": self.via,
            "what": "sesguard was unsubscribed from the topic: its SES feedback no longer reaches sesguard",
            "action": "subscribe again from the topic's account; the UnsubscribeConfirmation URL is deliberately not visited",
        });
        let subject = "sesguard: SES feedback stopped (unsubscribed)";
        self.deps
            .alerts
            .notice(subject, &body)
            .await
            .map_err(|error| SubscriptionError::Unavailable(error_chain(&error)))?;
        Ok(json!({"unsubscribed": envelope.topic_arn}))
    }
}
