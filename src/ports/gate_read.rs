//! The sender's one read per batch.

use super::*;

/// What the sender reads once per batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateView {
    /// The template policy.
    pub policy: TemplatePolicy,
    /// The suppressed recipients among those asked for, and why.
    pub suppressed: HashMap<EmailAddress, Reason>,
    /// The guard state of every account asked for (default when never written).
    pub states: HashMap<String, AccountState>,
    /// The rate record of every account asked for.
    pub rates: HashMap<String, RateRecord>,
    /// The records of the domains asked for (prevention's DNS answers; expired ones too).
    pub domains: Vec<DomainRecord>,
}

/// The sender's read of a batch.
#[async_trait]
pub trait GateRead: Send + Sync {
    /// The template policy, the suppressions of `recipients`, the guard states and rate
    /// records of `accounts`, and the records of `domains`, in one batched read (DynamoDB: one
    /// `BatchGetItem` over both tables per 100 keys; account states and rates strongly
    /// consistent).
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
        domains: &[String],
    ) -> Result<GateView, StoreError>;
}
