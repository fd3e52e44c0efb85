//! Keeping a deferred message in its queue until its retry time.

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
}
