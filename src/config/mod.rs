//! sesguard's configuration: one TOML file (`--config PATH`, `SESGUARD_CONFIG=PATH`, or the
//! text itself in `SESGUARD_CONFIG_TOML`), every key optional with a documented default,
//! unknown keys refused, and values validated at start with errors that name the key.
//! Environment variables override the table names (`SESGUARD_SUPPRESSION_TABLE`,
//! `SESGUARD_STATE_TABLE`), so one file serves every deployment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::common::address::EmailAddress;
use crate::domain::common::names::{AccountName, StreamName};
use crate::domain::feedback::attribution::{
    AccountDirectory, KnownAccount, SendSource, SenderBounces,
};
use crate::domain::feedback::plan::{IngestPolicy, SimulatorFeedback};
use crate::domain::feedback::suppression::SoftBouncePolicy;
use crate::domain::reputation::counters::WindowConfig;
use crate::domain::reputation::probation::Recovery;
use crate::domain::reputation::providers::ProviderLines;
use crate::domain::reputation::thresholds::Profile;
use crate::domain::reputation::thresholds::Thresholds;
use crate::domain::sending::rate_limit::{LimitsPatch, RateLimits, SesLine};
use crate::domain::sending::routing::{Priority, RoutingPolicy};
use crate::domain::sns::delivery::SnsOrigin;

mod load;
mod sending;
mod validate;

pub use sending::{
    DnsServer, PreventMode, PreventionConfig, SQS_MAX_DELAY, SenderConfig, StoreFailurePolicy,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// DynamoDB table names.
    pub tables: TablesConfig,
    /// Ingest policy.
    pub ingest: IngestConfig,
    /// The rolling window of the account counters.
    pub window: WindowSection,
    /// The reputation guard.
    pub guard: GuardConfig,
    /// Where alerts go.
    pub alerts: AlertsConfig,
    /// The SNS HTTPS webhook.
    pub webhook: WebhookConfig,
    /// The sender.
    pub sender: SenderConfig,
    /// The SES accounts sesguard guards.
    pub accounts: Vec<AccountConfig>,
    /// Streams of mail and the accounts that carry them, primary first.
    pub streams: Vec<StreamConfig>,
    /// SES's own reputation figures, read for the guard.
    pub ses_metrics: SesMetricsConfig,
    /// Prevention: recipients that cannot receive mail, found before sending.
    pub prevention: PreventionConfig,
}

/// `[guard]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Which of SES's lines the default levels keep accounts under: `standard` (its pause
    /// lines) or `no_review` (its review lines).
    pub profile: Profile,
    /// Every account's thresholds, over the profile's (`[guard.thresholds]`).
    pub thresholds: ThresholdOverrides,
    /// Share of a daily quota kept for critical mail (default 0.10).
    pub quota_reserve: f64,
    /// Retry a deferral after this long when nothing says when capacity returns (default `5m`).
    #[serde(with = "humantime_serde")]
    pub recheck: Duration,
    /// How long transition history is kept (default `90d`).
    #[serde(with = "humantime_serde")]
    pub history_ttl: Duration,
    /// Sends this recent are taken as still awaiting their bounces (default `30m`): routing
    /// counts them at the stream's known risk against a backup's bounce budget.
    #[serde(with = "humantime_serde")]
    pub feedback_lag: Duration,
    /// The probation ramp: the shares of its traffic a resumed account, or a stream back from
    /// quarantine, takes step by step before it takes all of it (default `[0.1, 0.25, 0.5]`;
    /// `[]`: none). Each step needs `min_volume` new sends under the warn levels.
    pub probation: Vec<f64>,
    /// How long an ingest instance reuses a calm account's window (rates under the warn
    /// levels, nothing quarantined or on probation) instead of reading it after every batch
    /// (default `5s`; `0s`: always read).
    #[serde(with = "humantime_serde")]
    pub window_cache: Duration,
    /// The lines per mailbox provider (`[guard.providers]`): a block, and complaint rates.
    pub providers: ProviderLines,
}

impl GuardConfig {
    /// The thresholds every account starts from: the profile's levels with
    /// `[guard.thresholds]` over them.
    pub fn levels(&self) -> Thresholds {
        self.thresholds.over(Thresholds::of(self.profile))
    }
}

impl Default for GuardConfig {
    fn default() -> Self {
        let routing = RoutingPolicy::default();
        Self {
            profile: Profile::default(),
            thresholds: ThresholdOverrides::default(),
            quota_reserve: routing.quota_reserve,
            recheck: routing.recheck,
            history_ttl: Duration::from_secs(90 * 24 * 3600),
            feedback_lag: Duration::from_secs(30 * 60),
            probation: vec![0.1, 0.25, 0.5],
            window_cache: Duration::from_secs(5),
            providers: ProviderLines::default(),
        }
    }
}

/// `[webhook]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Topic ARNs whose signed SNS messages are accepted, by the webhook and (subscription
    /// confirmations through the feedback queue) by ingest; nothing else is. The environment
    /// adds to them, comma-separated: `SESGUARD_WEBHOOK_TOPICS` (the webhook's) and
    /// `SESGUARD_FEEDBACK_TOPICS` (the topics subscribed to the feedback queue).
    pub topics: Vec<String>,
    /// Accept only SignatureVersion 2 (SHA256withRSA).
    pub signature_version_2_only: bool,
    /// Refuse messages older than this (default `2h`: SNS retries an HTTP delivery within an
    /// hour, so a retry is never refused as stale; at most the 24 h message ids are
    /// remembered for replay protection).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Timeout of a certificate fetch or subscription confirmation (default `5s`).
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Where SNS's certificates and confirmation URLs must be: real SNS, or the local
    /// emulator `AWS_ENDPOINT_URL` names when it is on a loopback address (not configurable).
    #[serde(skip)]
    pub origin: SnsOrigin,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            signature_version_2_only: false,
            max_age: Duration::from_secs(2 * 3600),
            fetch_timeout: Duration::from_secs(5),
            origin: SnsOrigin::Aws,
        }
    }
}

/// `[alerts]`: an SNS topic in AWS; locally a log line and, optionally, a JSON-lines file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// SNS topic for alerts (env `SESGUARD_ALERT_TOPIC_ARN` overrides).
    pub topic_arn: Option<String>,
    /// Local file that alerts are appended to, one JSON object per line.
    pub file: Option<PathBuf>,
}

/// `[ses_metrics]`: SES's own reputation figures (CloudWatch `AWS/SES`
/// `Reputation.BounceRate` / `Reputation.ComplaintRate`), which the guard weighs beside its own
/// window. Deployed they are read from CloudWatch; locally from `file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SesMetricsConfig {
    /// Local runs: a JSON file of figures per account (`{"primary": {"bounce_rate": 0.095,
    /// "complaint_rate": 0.0001, "at": "2026-12-05T10:00:00Z"}}`), read on every ask; none: no
    /// figures.
    pub file: Option<PathBuf>,
    /// How far back the newest datapoint is looked for (default `24h`; `5m` to `14d`).
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// How long a process reuses an account's answer (default `5m`; at most `1h`; `0s`: ask
    /// every time).
    #[serde(with = "humantime_serde")]
    pub cache: Duration,
}

impl Default for SesMetricsConfig {
    fn default() -> Self {
        Self {
            file: None,
            lookback: Duration::from_secs(24 * 3600),
            cache: Duration::from_secs(300),
        }
    }
}

/// Overrides of a profile's thresholds (`[guard.thresholds]`), or of those for one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdOverrides {
    /// See [`Thresholds::bounce_warn`].
    pub bounce_warn: Option<f64>,
    /// See [`Thresholds::bounce_pause`].
    pub bounce_pause: Option<f64>,
    /// See [`Thresholds::bounce_critical`].
    pub bounce_critical: Option<f64>,
    /// See [`Thresholds::complaint_warn`].
    pub complaint_warn: Option<f64>,
    /// See [`Thresholds::complaint_pause`].
    pub complaint_pause: Option<f64>,
    /// See [`Thresholds::complaint_critical`].
    pub complaint_critical: Option<f64>,
    /// See [`Thresholds::min_volume`].
    pub min_volume: Option<u64>,
    /// See [`Thresholds::dominance`].
    pub dominance: Option<f64>,
    /// See [`Thresholds::recovery`].
    pub recovery: Option<f64>,
    /// See [`Thresholds::min_events`].
    pub min_events: Option<u64>,
    /// See [`Thresholds::confidence`].
    pub confidence: Option<f64>,
    /// See [`Thresholds::feedback_gap`].
    pub feedback_gap: Option<f64>,
}

impl ThresholdOverrides {
    /// `base` with every value given here in its place.
    pub fn over(&self, base: Thresholds) -> Thresholds {
        Thresholds {
            bounce_warn: self.bounce_warn.unwrap_or(base.bounce_warn),
            bounce_pause: self.bounce_pause.unwrap_or(base.bounce_pause),
            bounce_critical: self.bounce_critical.unwrap_or(base.bounce_critical),
            complaint_warn: self.complaint_warn.unwrap_or(base.complaint_warn),
            complaint_pause: self.complaint_pause.unwrap_or(base.complaint_pause),
            complaint_critical: self.complaint_critical.unwrap_or(base.complaint_critical),
            min_volume: self.min_volume.unwrap_or(base.min_volume),
            dominance: self.dominance.unwrap_or(base.dominance),
            recovery: self.recovery.unwrap_or(base.recovery),
            min_events: self.min_events.unwrap_or(base.min_events),
            confidence: self.confidence.unwrap_or(base.confidence),
            feedback_gap: self.feedback_gap.unwrap_or(base.feedback_gap),
        }
    }
}

/// Enforcement at SES itself when sesguard pauses an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// sesguard's own routing only (default).
    #[default]
    Off,
    /// `PutAccountSendingAttributes(SendingEnabled=false)` on pause, enabled again on resume.
    Account,
    /// `PutConfigurationSetSendingOptions` on the account's configuration set.
    ConfigurationSet,
}

/// `[[streams]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's name (`verification`, `transactional`, `bulk`...).
    pub name: StreamName,
    /// Account names, primary first, then backups in failover order.
    pub accounts: Vec<AccountName>,
    /// Priority of its messages unless a request says otherwise (default `normal`).
    #[serde(default)]
    pub priority: Priority,
    /// How long the same content to the same recipients is held back as a double submission
    /// when the request has no idempotency key (default `sender.debounce`).
    #[serde(default, with = "humantime_serde")]
    pub debounce: Option<Duration>,
    /// What a bounce that refuses the sender (blocklist, authentication, policy) does to its
    /// recipient: `record` (default) keeps the address sendable; `suppress` does as SES does.
    #[serde(default)]
    pub sender_bounces: SenderBounces,
    /// What prevention does with an unverified recipient that cannot receive mail: `refuse`,
    /// `flag` (default: send and count) or `off`.
    #[serde(default)]
    pub prevent: PreventMode,
}

/// `[tables]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    /// Default `sesguard-suppressions`.
    pub suppressions: String,
    /// Default `sesguard-state`.
    pub state: String,
}

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            suppressions: "sesguard-suppressions".into(),
            state: "sesguard-state".into(),
        }
    }
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Soft bounces within the window that suppress an address (default 3).
    pub soft_bounce_threshold: u32,
    /// The soft-bounce window (default `14d`).
    #[serde(with = "humantime_serde")]
    pub soft_bounce_window: Duration,
    /// How long a bounce or complaint is remembered for de-duplication (default `14d`).
    #[serde(with = "humantime_serde")]
    pub dedup_ttl: Duration,
    /// How long a Send or Delivery event is remembered (default `6h`).
    #[serde(with = "humantime_serde")]
    pub report_dedup_ttl: Duration,
    /// Feedback about SES mailbox-simulator recipients: `ignore` (default, as SES's rates do)
    /// or `count` (counted, never suppressed: for rehearsals on an emulator).
    pub simulator_feedback: SimulatorFeedback,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let policy = IngestPolicy::default();
        Self {
            soft_bounce_threshold: policy.soft_bounce.threshold,
            soft_bounce_window: policy.soft_bounce.window,
            dedup_ttl: policy.dedup_ttl,
            report_dedup_ttl: policy.report_dedup_ttl,
            simulator_feedback: policy.simulator,
        }
    }
}

/// `[window]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    /// How far back rates look (default `24h`).
    #[serde(with = "humantime_serde")]
    pub length: Duration,
    /// Counter bucket size (default `15m`); `length` must be a whole number of buckets.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
}

impl Default for WindowSection {
    fn default() -> Self {
        let window = WindowConfig::default();
        Self {
            length: window.length,
            bucket: window.bucket,
        }
    }
}

/// `[[accounts]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// sesguard's name for the account: lower-case letters, digits, `-` and `_`.
    pub name: AccountName,
    /// The SES region, for example `us-east-1`.
    pub region: String,
    /// The 12-digit AWS account id.
    pub account_id: String,
    /// `ses_events` (default) or `sender`.
    #[serde(default)]
    pub send_count_source: SendSource,
    /// Role to assume for sending from another AWS account.
    pub role_arn: Option<String>,
    /// SES configuration set every message is sent with.
    pub configuration_set: Option<String>,
    /// Default From identity.
    pub from: Option<String>,
    /// 24-hour sending quota; when absent, read from SES `GetAccount` (refreshed every 5 min).
    pub daily_quota: Option<u64>,
    /// Maximum sends per second; when absent, read from SES `GetAccount`.
    pub max_send_rate: Option<f64>,
    /// Send-rate limits over the defaults (a bucket of `max_send_rate` refilled at that rate):
    /// `capacity`, `refill_per_second`, `per_minute`, `per_hour`, `per_day`, `enabled`.
    /// Operators change them at run time (`sesguard accounts limits`), over these.
    #[serde(default)]
    pub limits: LimitsPatch,
    /// Overrides of `[guard.thresholds]` for this account.
    #[serde(default)]
    pub thresholds: ThresholdOverrides,
    /// Lift rate pauses and quarantines by themselves once the rate is under the warn level.
    #[serde(default)]
    pub auto_resume: bool,
    /// Pause at SES too: `off` (default), `account`, `configuration_set`.
    #[serde(default)]
    pub enforce_at_ses: Enforcement,
    /// Virtual Deliverability Manager is enabled for the account: SES's figures are also read
    /// from SESv2 `BatchGetMetricData` (namespace `VDM`), and the worse of those and
    /// CloudWatch's counts (default `false`).
    #[serde(default)]
    pub vdm: bool,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a key that is unknown or has the wrong type.
    #[error("configuration {origin} is invalid: {source}")]
    Parse {
        /// Where it came from.
        origin: String,
        /// The parser's message, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value that parses but cannot be used.
    #[error("configuration key `{key}` {problem}")]
    Invalid {
        /// The key, for example `accounts[1].region`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Valid, but too long for a deployed function's environment.
    #[error(
        "configuration {origin} takes {bytes} bytes without its comments; a deployment carries \
         at most {limit} (Lambda allows 4 KB for all of a function's environment variables)"
    )]
    TooLarge {
        /// Where it came from.
        origin: String,
        /// Its length without comments and layout.
        bytes: usize,
        /// [`DEPLOYED_TEXT_LIMIT`].
        limit: usize,
    },
}

/// The most configuration text a deployed function carries in `SESGUARD_CONFIG_TOML`. Lambda
/// allows 4 KB for all of a function's environment variables, names and values together; the
/// template's others (table names, topic ARNs, the webhook's further topics, the log level)
/// take up to about 1 KB of it.
pub const DEPLOYED_TEXT_LIMIT: usize = 3 * 1024;

impl Config {
    /// The named account.
    pub fn account(&self, name: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.name == name)
    }

    /// The named stream.
    pub fn stream(&self, name: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The accounts of every stream, each once, in stream order.
    pub fn routed_accounts(&self) -> Vec<String> {
        let mut accounts: Vec<String> = Vec::new();
        for name in self.streams.iter().flat_map(|s| &s.accounts) {
            if !accounts.iter().any(|a| name == a) && self.account(name).is_some() {
                accounts.push(name.to_string());
            }
        }
        accounts
    }

    /// An account's configured send-rate limits: the line of its `max_send_rate` (`send_rate`
    /// from SES when not configured) with `[accounts.limits]` over it, held to the line.
    pub fn rate_limits(&self, account: &str, send_rate: f64) -> RateLimits {
        let base = self.ses_line(send_rate).limits();
        match self.account(account) {
            // Validated at load time.
            Some(a) => a.limits.apply(base).unwrap_or(base),
            None => base,
        }
    }

    /// The send-rate line of an account SES allows `send_rate` sends a second, with the
    /// sender's clock skew and token life.
    pub fn ses_line(&self, send_rate: f64) -> SesLine {
        SesLine {
            max_send_rate: send_rate,
            clock_skew: self.sender.clock_skew,
            token_life: self.sender.token_life,
        }
    }

    /// The thresholds of an account: `[guard.thresholds]` with the account's overrides.
    pub fn thresholds_for(&self, account: &str) -> Thresholds {
        let base = self.default_thresholds();
        match self.account(account) {
            Some(a) => a.thresholds.over(base),
            None => base,
        }
    }

    /// The thresholds of an account without overrides of its own: the profile's levels with
    /// `[guard.thresholds]` over them.
    pub fn default_thresholds(&self) -> Thresholds {
        self.guard.levels()
    }

    /// Whether the account lifts rate pauses by itself.
    pub fn auto_resume(&self, account: &str) -> bool {
        self.account(account).is_some_and(|a| a.auto_resume)
    }

    /// How the account comes back from a pause or a quarantine: by itself or not, and the
    /// probation ramp.
    pub fn recovery(&self, account: &str) -> Recovery<'_> {
        Recovery {
            auto_resume: self.auto_resume(account),
            ramp: &self.guard.probation,
            settle: self.guard.feedback_lag,
        }
    }

    /// Routing settings.
    pub fn routing_policy(&self) -> RoutingPolicy {
        RoutingPolicy {
            quota_reserve: self.guard.quota_reserve,
            recheck: self.guard.recheck,
        }
    }

    /// The ingest policy these settings describe.
    pub fn ingest_policy(&self) -> IngestPolicy {
        IngestPolicy {
            soft_bounce: SoftBouncePolicy {
                threshold: self.ingest.soft_bounce_threshold,
                window: self.ingest.soft_bounce_window,
            },
            window: WindowConfig {
                length: self.window.length,
                bucket: self.window.bucket,
            },
            dedup_ttl: self.ingest.dedup_ttl,
            report_dedup_ttl: self.ingest.report_dedup_ttl,
            simulator: self.ingest.simulator_feedback,
        }
    }

    /// The configured accounts, for attribution.
    pub fn directory(&self) -> AccountDirectory {
        AccountDirectory::new(
            self.accounts
                .iter()
                .map(|a| KnownAccount {
                    name: a.name.to_string(),
                    account_id: a.account_id.clone(),
                    region: a.region.clone(),
                    send_source: a.send_count_source,
                })
                .collect(),
        )
        .with_suppressing_streams(
            self.streams
                .iter()
                .filter(|s| s.sender_bounces == SenderBounces::Suppress)
                .map(|s| s.name.to_string())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
