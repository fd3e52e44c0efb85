//! The store as a whole: its failures, the one [`Store`] every adapter is (all store
//! capabilities together), and pages of listings.

use super::*;

/// A failure of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; retrying may succeed.
    #[error("store unavailable while {action}")]
    Unavailable {
        /// What sesguard was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store refused the request as invalid (a missing table, a bad key): retrying
    /// will not help.
    #[error("store rejected the request while {action}")]
    Rejected {
        /// What sesguard was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store holds something sesguard cannot read.
    #[error("store holds a malformed {what}: {detail}")]
    Corrupt {
        /// The kind of item.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Why an atomic [`ChangeSet`] was not applied. Nothing was written in every case.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// These de-duplication keys are already claimed: those notifications were recorded
    /// before. Plan again without them.
    #[error("{} notification(s) were already recorded", .0.len())]
    AlreadyApplied(Vec<String>),
    /// An address changed after its state was read (another instance wrote it). Read again
    /// and plan again.
    #[error("an address record changed after it was read")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Everything a store adapter provides.
pub trait Store:
    Any
    + FeedbackLedger
    + SuppressionList
    + CounterWindow
    + GuardLedger
    + PolicyStore
    + MessageLedger
    + SendLedger
    + RateLedger
    + GateRead
    + SuppressionAdmin
    + AuditLog
    + JobLedger
    + DomainLedger
{
}

impl<T> Store for T where
    T: Any
        + FeedbackLedger
        + SuppressionList
        + CounterWindow
        + GuardLedger
        + PolicyStore
        + MessageLedger
        + SendLedger
        + RateLedger
        + GateRead
        + SuppressionAdmin
        + AuditLog
        + JobLedger
        + DomainLedger
{
}
