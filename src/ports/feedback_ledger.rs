//! Recording feedback: one batch's change set applied atomically, and the address states a
//! plan starts from.

use super::*;

/// Records ingested feedback: the write side of the ingest path.
#[async_trait]
pub trait FeedbackLedger: Send + Sync {
    /// The stored state of these addresses; addresses without a record are left out.
    /// One batched read (DynamoDB: one `BatchGetItem` per 100 addresses, with unprocessed
    /// keys retried). Expired records read as having no soft bounces.
    async fn address_states(
        &self,
        emails: &[EmailAddress],
        now: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError>;

    /// Applies the whole change atomically — every claim, address update and counter
    /// delta — or nothing. Fails with [`ApplyError::AlreadyApplied`] if any claim's key is
    /// held by an unexpired claim, and with [`ApplyError::Conflict`] if an address with a
    /// soft-bounce write is no longer at the version read. Safe to retry after any error.
    async fn apply(&self, change: &ChangeSet) -> Result<(), ApplyError>;

    /// The most items (claims + addresses + counters + accounts) one `apply` can write.
    fn max_items_per_apply(&self) -> usize;
}
