//! The operators' audit log.

use super::*;

/// One operator change, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who: `operator:NAME` or the IAM caller.
    pub actor: String,
    /// What, for example `suppression.remove` or `account.limits`.
    pub action: String,
    /// What it was done to: an address, an account, `templates`.
    pub target: String,
    /// Why, as the operator said.
    pub reason: String,
    /// The change itself.
    pub detail: serde_json::Value,
}

/// The log of operator changes that are not account transitions (those are in the
/// account's history).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `entry`, kept until `expires_at`.
    async fn record(&self, entry: &AuditEntry, expires_at: Timestamp) -> Result<(), StoreError>;

    /// The latest entries, newest first, at most `limit`.
    async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}
