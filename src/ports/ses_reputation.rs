//! SES's own reputation figures for an account (CloudWatch `AWS/SES` reputation metrics, or a
//! local stand-in): evidence the guard weighs beside its own window.

use super::*;

/// Where SES's own view of an account's rates comes from.
#[async_trait]
pub trait SesReputation: Any + Send + Sync {
    /// The account's latest reputation figures as SES reports them, as of `now`; `None` when
    /// SES has published none for it (no datapoint in the lookback, or a local run without
    /// figures). Adapters cache a read for a few minutes: the guard asks on every review.
    /// An error means SES or the way to it failed; the guard then judges on its own window.
    async fn reputation(
        &self,
        account: &str,
        now: Timestamp,
    ) -> Result<Option<SesFigures>, SesError>;
}
