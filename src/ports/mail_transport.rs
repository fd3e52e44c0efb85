//! Where mail goes: SES `SendEmail`, or the local outbox.

use super::*;

/// A send that did not happen, classified so the sender can react.
#[derive(Debug, thiserror::Error)]
#[error("send through `{account}` failed ({failure:?}): {detail}")]
pub struct TransportError {
    /// The account.
    pub account: String,
    /// What kind of failure.
    pub failure: SendFailure,
    /// The error as reported.
    pub detail: String,
}

/// Hands messages to a mail service.
#[async_trait]
pub trait MailTransport: Any + Send + Sync {
    /// Sends one message; returns the provider's message id. Transient faults are retried
    /// inside (the SDK's standard retry with backoff) before an error is returned.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError>;
}
