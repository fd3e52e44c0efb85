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
    /// Whether the service may have accepted the message all the same: the request went out
    /// and no clear answer came back (a timeout, a reset connection, a 5xx, an unreadable
    /// response). Such a send is in doubt, not failed.
    pub ambiguous: bool,
}

/// Hands messages to a mail service.
#[async_trait]
pub trait MailTransport: Any + Send + Sync {
    /// Sends one message once; returns the provider's message id. Not retried inside: a retry
    /// after an ambiguous failure could send twice, so the sender decides.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError>;
}
