//! Where alerts about transitions go.

use super::*;

/// A failed alert delivery.
#[derive(Debug, thiserror::Error)]
#[error("alert not delivered to {destination}")]
pub struct AlertError {
    /// Where it was going.
    pub destination: String,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Tells operators about transitions, and about other things they must act on.
#[async_trait]
pub trait AlertSink: Any + Send + Sync {
    /// Delivers one transition alert. Called once per applied transition, by the instance
    /// whose conditional write won.
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError>;

    /// Delivers a notice that is not a transition (feedback stopped flowing, ...).
    async fn notice(&self, subject: &str, body: &serde_json::Value) -> Result<(), AlertError>;
}
