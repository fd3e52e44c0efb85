//! Keys claimed once and remembered: the sender's content claims (claimed by a request,
//! released) and the webhook's SNS replay checks (seen, remembered).

use super::*;

/// Remembers which SNS messages were processed, for replay checks.
#[async_trait]
pub trait MessageLedger: Send + Sync {
    /// Whether `key` was remembered and has not expired at `now`.
    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Remembers `key` until `expires_at`. Idempotent.
    async fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError>;

    /// Claims `key` for `owner` until `expires_at` unless another owner's live claim holds it
    /// (a conditional write; the owner's own claim is taken again, so that a redelivery of a
    /// request is never its own duplicate): `true` when `owner` holds it now.
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives claims up (a send that did not happen must not block its retry): one batched
    /// write (DynamoDB: `BatchWriteItem` per 25 keys).
    async fn release(&self, keys: &[String]) -> Result<(), StoreError>;
}
