//! The records that make a send happen once: claimed before the mail service is called, marked
//! sent after it accepted, settled from its `Send` events, given up when it surely did not.

use super::*;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendClaim {
    /// The caller holds the identity now.
    Claimed,
    /// A live record holds it.
    Held(SendRecord),
}

/// Records of send identities (see [`crate::domain::sending::send_record`]).
#[async_trait]
pub trait SendLedger: Send + Sync {
    /// Writes `record` (state sending) unless a live record of its key exists at `now`: a
    /// conditional write, which answers with the record in the way (DynamoDB:
    /// `ReturnValuesOnConditionCheckFailure`).
    async fn claim_send(
        &self,
        record: &SendRecord,
        now: Timestamp,
    ) -> Result<SendClaim, StoreError>;

    /// Marks these records sent, unconditionally (their claims are the caller's): one batched
    /// write per 25 (DynamoDB `BatchWriteItem`).
    async fn mark_sent(&self, records: &[SendRecord]) -> Result<(), StoreError>;

    /// Settles the records of these keys that are still sending as sent (their `Send` events
    /// arrived): one batched read per 100 keys, and a conditional write for each record found
    /// sending (in doubt, or whose sender's mark failed). Keys without a record are ignored.
    /// Returns how many were settled.
    async fn settle(&self, keys: &[SendKey], now: Timestamp) -> Result<usize, StoreError>;

    /// Gives up these records (the caller's claims of sends that surely did not happen):
    /// one batched delete per 25.
    async fn give_up(&self, keys: &[SendKey]) -> Result<(), StoreError>;
}
