//! SES account calls: quotas and enforcement (pausing an account or configuration set), and
//! the account-level suppression list.

use super::*;

/// An account's sending limits as SES reports them (`GetAccount`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendQuota {
    /// `Max24HourSend`.
    pub max_24_hour_send: u64,
    /// `MaxSendRate` (per second).
    pub max_send_rate: f64,
    /// `SentLast24Hours`.
    pub sent_last_24_hours: u64,
}

/// A failed SES account call.
#[derive(Debug, thiserror::Error)]
#[error("SES {action} failed for account `{account}`")]
pub struct SesError {
    /// The account.
    pub account: String,
    /// What was asked.
    pub action: &'static str,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
    /// Whether asking again cannot help: the account is not one SES can be asked about (not
    /// configured, or a local run without SES). Otherwise SES or the way to it failed.
    pub permanent: bool,
}

/// Account-level SES calls: quotas, and sending switched off and on (enforcement).
#[async_trait]
pub trait SesAccount: Any + Send + Sync {
    /// The account's quota and send rate (`GetAccount`), cached by the adapter.
    async fn send_quota(&self, account: &str) -> Result<SendQuota, SesError>;

    /// Switches sending at SES off or on for the account, as its `enforce_at_ses` setting
    /// says (account-wide or its configuration set); does nothing when that is `off`.
    /// Returns whether SES was asked.
    async fn set_sending(&self, account: &str, enabled: bool) -> Result<bool, SesError>;

    /// One page of the account's SES account-level suppression list
    /// (`ListSuppressedDestinations`): addresses with SES's reason, and the token of the next
    /// page. Addresses SES holds that sesguard cannot parse are skipped (and logged).
    async fn list_suppressed(
        &self,
        account: &str,
        next: Option<String>,
    ) -> Result<(Vec<(EmailAddress, Reason)>, Option<String>), SesError>;

    /// Adds one address to the account's SES account-level suppression list
    /// (`PutSuppressedDestination`; SES knows only bounce and complaint: others go as bounce).
    async fn put_suppressed(
        &self,
        account: &str,
        email: &EmailAddress,
        reason: Reason,
    ) -> Result<(), SesError>;
}
