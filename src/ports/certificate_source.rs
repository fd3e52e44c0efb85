//! SNS over HTTPS: signing certificates fetched, subscriptions confirmed.

use super::*;

/// A failed HTTPS request to SNS.
#[derive(Debug, thiserror::Error)]
#[error("request to {url} failed")]
pub struct FetchError {
    /// The URL.
    pub url: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where signing certificates come from (HTTPS in AWS; a file in tests and `sns verify --cert`).
#[async_trait]
pub trait CertificateSource: Send + Sync {
    /// The PEM at `url` (already checked to be an SNS certificate URL).
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// Confirms SNS subscriptions.
#[async_trait]
pub trait SubscriptionConfirmer: Send + Sync {
    /// Requests `url` (already checked to be a ConfirmSubscription URL), following no redirect.
    async fn confirm(&self, url: &str) -> Result<(), FetchError>;
}
