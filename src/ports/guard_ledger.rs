//! The guard's account states, changed conditionally, and their history.

use super::*;

/// Account states and their history.
#[async_trait]
pub trait GuardLedger: Send + Sync {
    /// Writes `next` as the account's state if the stored state is still at
    /// `expected_version` (0: never written), together with one history entry, atomically.
    /// `Ok(true)` when written; `Ok(false)` when another writer changed the state first, in
    /// which case nothing is written. This is what makes a transition happen once across
    /// concurrent instances.
    async fn transition(
        &self,
        account: &str,
        expected_version: u64,
        next: &AccountState,
        entry: &HistoryEntry,
        history_expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The states of these accounts in one batched read; missing ones are default (version 0).
    async fn states(
        &self,
        accounts: &[String],
    ) -> Result<HashMap<String, AccountState>, StoreError>;

    /// The account's history, newest first, at most `limit` entries.
    async fn history(&self, account: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError>;
}
