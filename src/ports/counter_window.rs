//! An account's counters over its rolling window, read with its guard state.

use super::*;

/// An account's counter buckets and its guard state, read together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountWindow {
    /// Buckets whose start lies in the range asked for, oldest first.
    pub buckets: Vec<Bucket>,
    /// The guard state ([`AccountState::default`] with version 0 when never written).
    pub state: AccountState,
}

/// Reads the per-account counters.
#[async_trait]
pub trait CounterWindow: Send + Sync {
    /// The account's buckets whose start lies in `[first, last]`, with its guard state, read
    /// strongly consistent: the guard decides on it. One query on DynamoDB (paginated): the
    /// state item sorts after the buckets.
    async fn window(
        &self,
        account: &str,
        first: Timestamp,
        last: Timestamp,
    ) -> Result<AccountWindow, StoreError>;

    /// Accounts that received feedback but are not in the configuration.
    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError>;
}
