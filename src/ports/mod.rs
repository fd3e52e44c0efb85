//! The narrow interfaces the application needs from the outside world, owned here and
//! implemented by [`crate::adapters`]. Each trait is one capability, so a function
//! asks only for what it uses (`&dyn SuppressionList` to look up, `&dyn FeedbackLedger` to
//! record). The domain types cross these interfaces; no AWS or SQL type does.

use std::any::Any;
use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::ChangeSet;
use crate::domain::feedback::suppression::{AddressState, Reason, Suppression};
use crate::domain::reputation::counters::Bucket;
use crate::domain::reputation::guard::{AccountState, Alert, HistoryEntry};
use crate::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits, RateState};
use crate::domain::sending::request::OutgoingMail;
use crate::domain::sending::ses_failure::SendFailure;
use crate::domain::sending::template_policy::TemplatePolicy;

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

/// Records ingested feedback: the write side of the ingest path.
#[async_trait]
pub trait FeedbackLedger: Send + Sync {
    /// The stored state of these addresses; addresses without a record are left out.
    /// One batched read (DynamoDB: one `BatchGetItem` per 100 addresses, with unprocessed
    /// keys retried). Expired records read as having no soft bounces.
    async fn address_states(
        &self,
        emails: &[EmailAddress],
        now: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError>;

    /// Applies the whole change atomically — every claim, address update and counter
    /// delta — or nothing. Fails with [`ApplyError::AlreadyApplied`] if any claim's key is
    /// held by an unexpired claim, and with [`ApplyError::Conflict`] if an address with a
    /// soft-bounce write is no longer at the version read. Safe to retry after any error.
    async fn apply(&self, change: &ChangeSet) -> Result<(), ApplyError>;

    /// The most items (claims + addresses + counters + accounts) one `apply` can write.
    fn max_items_per_apply(&self) -> usize;
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

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

    /// Suppressed addresses, optionally of one reason, at most `limit` per page, resuming
    /// after `cursor`. On DynamoDB this scans the table: an operator's tool, not a hot path.
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
    /// The account's buckets whose start lies in `[first, last]`, with its guard state. One
    /// query on DynamoDB (paginated): the state item sorts after the buckets.
    async fn window(
        &self,
        account: &str,
        first: Timestamp,
        last: Timestamp,
    ) -> Result<AccountWindow, StoreError>;

    /// Accounts that received feedback but are not in the configuration.
    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError>;
}

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

/// The template policy, read on every send batch and changed by operators.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The current policy (empty lists when never written).
    async fn template_policy(&self) -> Result<TemplatePolicy, StoreError>;

    /// Replaces the policy. Last writer wins; callers read, change and write back.
    async fn put_template_policy(&self, policy: &TemplatePolicy) -> Result<(), StoreError>;
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
    + RateLedger
    + GateRead
    + SuppressionAdmin
    + AuditLog
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
        + RateLedger
        + GateRead
        + SuppressionAdmin
        + AuditLog
{
}

/// A failed alert delivery.
#[derive(Debug, thiserror::Error)]
#[error("alert not delivered to {destination}")]
pub struct AlertError {
    /// Where it was going.
    pub destination: String,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Tells operators about transitions, and about other things they must act on.
#[async_trait]
pub trait AlertSink: Any + Send + Sync {
    /// Delivers one transition alert. Called once per applied transition, by the instance
    /// whose conditional write won.
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError>;

    /// Delivers a notice that is not a transition (feedback stopped flowing, ...).
    async fn notice(&self, subject: &str, body: &serde_json::Value) -> Result<(), AlertError>;
}

/// Remembers which SNS messages were processed, for replay checks.
#[async_trait]
pub trait MessageLedger: Send + Sync {
    /// Whether `key` was remembered and has not expired at `now`.
    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Remembers `key` until `expires_at`. Idempotent.
    async fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError>;

    /// Claims `key` until `expires_at` if no live claim holds it (a conditional write):
    /// `true` when this caller holds it now.
    async fn claim(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives claims up (a send that did not happen must not block its retry): one batched
    /// write (DynamoDB: `BatchWriteItem` per 25 keys).
    async fn release(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// A failed HTTPS request to SNS.
#[derive(Debug, thiserror::Error)]
#[error("request to {url} failed")]
pub struct FetchError {
    /// The URL.
    pub url: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where signing certificates come from (HTTPS in AWS; a file in tests and `sns verify --cert`).
#[async_trait]
pub trait CertificateSource: Send + Sync {
    /// The PEM at `url` (already checked to be an SNS certificate URL).
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// Confirms SNS subscriptions.
#[async_trait]
pub trait SubscriptionConfirmer: Send + Sync {
    /// Requests `url` (already checked to be a ConfirmSubscription URL), following no redirect.
    async fn confirm(&self, url: &str) -> Result<(), FetchError>;
}

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

/// A send that did not happen, classified so the sender can react.
#[derive(Debug, thiserror::Error)]
#[error("send through `{account}` failed ({failure:?}): {detail}")]
pub struct TransportError {
    /// The account.
    pub account: String,
    /// What kind of failure.
    pub failure: SendFailure,
    /// The error as reported.
    pub detail: String,
}

/// Hands messages to a mail service.
#[async_trait]
pub trait MailTransport: Any + Send + Sync {
    /// Sends one message; returns the provider's message id. Transient faults are retried
    /// inside (the SDK's standard retry with backoff) before an error is returned.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError>;
}

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
}

impl RateRecord {
    /// The limits in force: `configured` with the operators' patch over them.
    pub fn limits(&self, configured: &RateLimits) -> RateLimits {
        // A stored patch was validated when it was set; an invalid one cannot loosen anything.
        self.patch.apply(*configured).unwrap_or(*configured)
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
}

/// The sender's read of a batch.
#[async_trait]
pub trait GateRead: Send + Sync {
    /// The template policy, the suppressions of `recipients`, and the guard states and rate
    /// records of `accounts`, in one batched read (DynamoDB: one `BatchGetItem` over both
    /// tables per 100 keys; account states and rates strongly consistent).
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
    ) -> Result<GateView, StoreError>;
}

/// A failed queue call.
#[derive(Debug, thiserror::Error)]
#[error("queue call failed for {queue}")]
pub struct QueueError {
    /// The queue.
    pub queue: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Keeps deferred messages in their queue until their retry time.
#[async_trait]
pub trait QueueVisibility: Any + Send + Sync {
    /// Hides received messages of one queue, each for its number of seconds (at most 12 h),
    /// in batched calls (SQS `ChangeMessageVisibilityBatch`, 10 per call). Returns the
    /// receipt handles that were not changed, with why.
    async fn delay(
        &self,
        queue_url: &str,
        messages: &[(String, u64)],
    ) -> Result<Vec<(String, String)>, QueueError>;
}

/// The current time. Handlers read it once per event; the domain never does.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_millis(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}
