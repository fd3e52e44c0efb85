//! The send-rate limiter's shared state per account.

use super::*;

/// One account's record in the rate limiter's store: the shared bucket and window counts, and
/// the limits operators set at run time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateRecord {
    /// Write version (0: never written); takes write conditionally on it.
    pub version: u64,
    /// The bucket and the window counts (`None`: never taken from: a full bucket).
    pub state: Option<RateState>,
    /// Operators' changes over the configured limits.
    pub patch: LimitsPatch,
    /// Where the store paces the bucket ([`Pace`](crate::domain::sending::rate_limit::Pace)) instead of keeping it in `state`: each
    /// part's arrival time in microseconds. Read by [`RateLedger::rate`] only.
    pub paced: std::collections::BTreeMap<u16, i64>,
}

impl RateRecord {
    /// The limits in force: `configured` with the operators' patch over them.
    pub fn limits(&self, configured: &RateLimits) -> RateLimits {
        // A stored patch was validated when it was set; an invalid one cannot loosen anything.
        self.patch.apply(*configured).unwrap_or(*configured)
    }

    /// The bucket and the window counts at `now` under `limits`, as operators see them.
    pub fn state_at(&self, limits: &RateLimits, now: Timestamp) -> Option<RateState> {
        if self.paced.is_empty() {
            return self.state;
        }
        let pace = limits.pace();
        let tokens = (0..pace.parts)
            .map(|part| pace.available(self.paced.get(&part).copied(), now))
            .sum();
        Some(RateState {
            tokens,
            at: now,
            ..self.state.unwrap_or_default()
        })
    }
}

/// The send-rate limiter's shared state: one item per account.
#[async_trait]
pub trait RateLedger: Send + Sync {
    /// The account's record (default when never written).
    async fn rate(&self, account: &str) -> Result<RateRecord, StoreError>;

    /// Takes up to `wanted` sends for `account` at `now` under `configured` with the stored
    /// patch over it, and writes the new state back conditionally on the version read (a
    /// conflict with another instance reads again and retries). `read` is the record as the
    /// caller already read it in this batch, which saves the read: one write per call.
    async fn take(
        &self,
        account: &str,
        configured: &RateLimits,
        wanted: u64,
        now: Timestamp,
        read: Option<&RateRecord>,
    ) -> Result<Grant, StoreError>;

    /// Replaces the operators' patch of the account's limits.
    async fn set_limits(&self, account: &str, patch: &LimitsPatch) -> Result<(), StoreError>;

    /// Fills the account's bucket to its capacity at `now` (window counts are kept).
    async fn refill(
        &self,
        account: &str,
        configured: &RateLimits,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}
