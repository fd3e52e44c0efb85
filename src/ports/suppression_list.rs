//! The suppression list: lookups and listing, and operators' manual changes.

use super::*;

/// Reads the suppression list.
#[async_trait]
pub trait SuppressionList: Send + Sync {
    /// The suppression of one (normalised) address, or `None` when it is not suppressed.
    async fn get(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError>;

    /// Which of these addresses are suppressed, and why: one batched read (DynamoDB:
    /// `BatchGetItem` per 100 addresses).
    async fn suppressed(
        &self,
        emails: &[EmailAddress],
    ) -> Result<HashMap<EmailAddress, Reason>, StoreError>;

    /// Suppressed addresses, optionally of one reason, at most `limit` (1 to 1,000) per page,
    /// resuming after `cursor`; a page may hold fewer, even none, and still name a next one.
    /// Each page is one bounded request on DynamoDB (a query of the index by reason, or a scan
    /// of `limit` items), so that a call stays well inside a Lambda's time however long the
    /// list is.
    async fn list(
        &self,
        reason: Option<Reason>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>, StoreError>;
}

/// An address an operator (or an import) suppresses.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualSuppression {
    /// The normalised address.
    pub email: EmailAddress,
    /// Why: `manual`, or the reason another list gives (SES's account-level list says
    /// bounce or complaint).
    pub reason: Reason,
}

/// Operators' changes to the suppression list.
#[async_trait]
pub trait SuppressionAdmin: Send + Sync {
    /// Suppresses these addresses at `now`. An address already suppressed keeps its reason and
    /// details; the rest of a record (a soft-bounce tracker) is kept too. Returns how many
    /// were not suppressed before. DynamoDB: one `UpdateItem` per address, 25 at a time.
    async fn suppress(
        &self,
        entries: &[ManualSuppression],
        now: Timestamp,
    ) -> Result<usize, StoreError>;

    /// Lifts the suppression of `email`, deleting its record: the record as it was, or `None`
    /// when it was not suppressed (nothing is changed then).
    async fn unsuppress(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError>;
}
