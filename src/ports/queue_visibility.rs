//! Keeping a deferred message in its queue until its retry time: hidden in it, or put back
//! into it as a new message when its receives would run out.

use super::*;

/// A failed queue call.
#[derive(Debug, thiserror::Error)]
#[error("queue call failed for {queue}")]
pub struct QueueError {
    /// The queue.
    pub queue: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Keeps deferred messages in their queue until their retry time.
#[async_trait]
pub trait QueueVisibility: Any + Send + Sync {
    /// Hides received messages of one queue, each for its number of seconds (at most 12 h),
    /// in batched calls (SQS `ChangeMessageVisibilityBatch`, 10 per call). Returns the
    /// receipt handles that were not changed, with why.
    async fn delay(
        &self,
        queue_url: &str,
        messages: &[(String, u64)],
    ) -> Result<Vec<(String, String)>, QueueError>;

    /// Sends these as new messages of one queue, in batched calls (SQS `SendMessageBatch`, 10
    /// per call). Returns the indexes of those that were not sent, with why.
    async fn requeue(
        &self,
        queue_url: &str,
        messages: &[Requeue],
    ) -> Result<Vec<(usize, String)>, QueueError>;
}

/// The message attribute that names the queue message a request first came in.
pub const ORIGIN_ATTRIBUTE: &str = "sesguard-origin";
/// The message attribute that counts how often a request was put back into its queue.
pub const HOPS_ATTRIBUTE: &str = "sesguard-hops";

/// A deferred request put back into its queue as a new message (a fresh receive count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeue {
    /// The message body, unchanged.
    pub body: String,
    /// Seconds before it is visible (SQS allows at most 900).
    pub delay_seconds: u64,
    /// The queue message it first came in ([`ORIGIN_ATTRIBUTE`]).
    pub origin: String,
    /// How often it was put back, this time included ([`HOPS_ATTRIBUTE`]).
    pub hops: u32,
}
