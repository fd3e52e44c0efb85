//! The template policy.

use super::*;

/// The template policy, read on every send batch and changed by operators.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The current policy (empty lists when never written).
    async fn template_policy(&self) -> Result<TemplatePolicy, StoreError>;

    /// Replaces the policy. Last writer wins; callers read, change and write back.
    async fn put_template_policy(&self, policy: &TemplatePolicy) -> Result<(), StoreError>;
}
