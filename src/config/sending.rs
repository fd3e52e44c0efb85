//! `[sender]`: how the sender decides what goes (duplicate windows, the in-doubt wait, what
//! it does when its store is away) and the send queue's settings that decide how long a copy
//! of a request can still arrive.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// The longest an SQS message can be delayed (`DelaySeconds`, 15 minutes): the most a requeue
/// adds before a copy comes back.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);

/// `[sender]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConfig {
    /// A second request with the same idempotency key within this window is not sent
    /// (default `10m`; in effect at least twice `in_doubt`, as long as a sent record is kept).
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// A request without an idempotency key whose content and recipients equal one sent this
    /// recently is a double submission and is not sent (default `10s`; per stream:
    /// `streams[].debounce`; `0s`: off).
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// How long a send whose outcome is unknown (a timeout or a reset after SES may have
    /// accepted it) waits for its SES `Send` event before it is tried again (default `10m`; at
    /// least `1m`: longer than the events take to arrive).
    #[serde(with = "humantime_serde")]
    pub in_doubt: Duration,
    /// The receive after which a deferred request goes back to the queue as a new message
    /// instead of waiting in it, so that a long wait never uses up the queue's
    /// `maxReceiveCount` (default 4; must be below `queue_max_receives`).
    pub requeue_after_receives: u32,
    /// The send queue's visibility timeout: a message an instance received and did not delete
    /// comes back this long after (default `3m`, the template's; the deployment sets it from
    /// the queue with `SESGUARD_SEND_VISIBILITY_TIMEOUT`, in seconds).
    #[serde(with = "humantime_serde")]
    pub queue_visibility_timeout: Duration,
    /// The send queue's `maxReceiveCount` (default 10, the template's; the deployment sets it
    /// from the queue with `SESGUARD_SEND_MAX_RECEIVES`).
    pub queue_max_receives: u32,
    /// How long an account is paused after SES refused a send for the sending rate (default `5m`).
    #[serde(with = "humantime_serde")]
    pub rate_pause: Duration,
    /// Local runs: the directory messages are written to instead of SES (default `.sesguard/outbox`).
    pub outbox: PathBuf,
    /// When the store cannot be reached to take send-rate tokens: `defer` (default) or `send`.
    pub on_store_failure: StoreFailurePolicy,
    /// How long a sender instance reuses the accounts' counter windows before reading them
    /// again (default `60s`; `0s`: every batch). Guard states are read on every batch.
    #[serde(with = "humantime_serde")]
    pub window_refresh: Duration,
    /// Consecutive transport failures on one account that open the circuit breaker (default 5).
    pub breaker_failures: u32,
    /// How long an open circuit breaker pauses the account (default `1m`).
    #[serde(with = "humantime_serde")]
    pub breaker_pause: Duration,
    /// How far any sender instance's clock may be from true time, at most (default `10ms`;
    /// Lambda's clock follows the Amazon Time Sync Service, within a millisecond). The send-rate
    /// line allows for it ([`SesLine`](crate::domain::sending::rate_limit::SesLine)).
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How long a send-rate token may wait to be used after its take (default `250ms`, about
    /// four sends to SES); a batch's tokens are taken for what it can send in that time, and
    /// older ones are dropped. A longer life takes fewer writes and leaves a lower rate.
    #[serde(with = "humantime_serde")]
    pub token_life: Duration,
    /// How long a sender instance waits for its account's next send-rate token before
    /// moving the request to the next account or deferring it (default `1s`; `0s`: never
    /// waits). An account whose burst is smaller than a batch sends the batch at its rate.
    #[serde(with = "humantime_serde")]
    pub rate_wait: Duration,
}

/// What the sender does when the rate limiter's store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailurePolicy {
    /// Defer the message (default): never exceed the rate blind.
    #[default]
    Defer,
    /// Send anyway: availability over the rate limit.
    Send,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            duplicate_window: Duration::from_secs(600),
            debounce: Duration::from_secs(10),
            in_doubt: Duration::from_secs(600),
            requeue_after_receives: 4,
            queue_visibility_timeout: Duration::from_secs(180),
            queue_max_receives: 10,
            rate_pause: Duration::from_secs(300),
            outbox: PathBuf::from(".sesguard/outbox"),
            on_store_failure: StoreFailurePolicy::Defer,
            window_refresh: Duration::from_secs(60),
            breaker_failures: 5,
            breaker_pause: Duration::from_secs(60),
            clock_skew: Duration::from_millis(10),
            token_life: Duration::from_millis(250),
            rate_wait: Duration::from_secs(1),
        }
    }
}

impl SenderConfig {
    /// The send queue's settings as the deployment passes them (`SESGUARD_SEND_VISIBILITY_TIMEOUT`
    /// in seconds, `SESGUARD_SEND_MAX_RECEIVES`), over the file's.
    pub(crate) fn queue_from_environment(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let number = |name: &str| -> Result<Option<u32>, ConfigError> {
            var(name)
                .map(|text| {
                    text.trim().parse().map_err(|_| ConfigError::Invalid {
                        key: name.to_owned(),
                        problem: format!("`{text}` is not a whole number"),
                    })
                })
                .transpose()
        };
        if let Some(seconds) = number("SESGUARD_SEND_VISIBILITY_TIMEOUT")? {
            self.queue_visibility_timeout = Duration::from_secs(u64::from(seconds));
        }
        if let Some(receives) = number("SESGUARD_SEND_MAX_RECEIVES")? {
            self.queue_max_receives = receives;
        }
        Ok(())
    }

    /// How long after a receive the send queue can still deliver a copy of the same message:
    /// every receive it allows, each a visibility timeout after the last, plus the longest
    /// delay a requeue adds. A send record is kept at least this long after an attempt
    /// (domain/sending/send_record.rs, `Retention`), derived here from the queue's own settings
    /// rather than chosen.
    pub fn redelivery(&self) -> Duration {
        self.queue_visibility_timeout * self.queue_max_receives + SQS_MAX_DELAY
    }
}

/// Where prevention's DNS questions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsServer {
    /// The resolver the host is configured with (`/etc/resolv.conf`; in Lambda, the VPC's).
    #[default]
    System,
    /// No DNS: every answer is unknown, and only the checks that need none apply.
    Off,
    /// One server at this address (`127.0.0.1:5353`): a local zone of known records.
    At(std::net::SocketAddr),
}

impl std::str::FromStr for DnsServer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "system" => Ok(DnsServer::System),
            "off" => Ok(DnsServer::Off),
            other => other
                .parse()
                .or_else(|_| other.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map(DnsServer::At)
                .map_err(|_| format!("`{other}` is not `system`, `off`, an IP address or IP:PORT")),
        }
    }
}

impl<'de> Deserialize<'de> for DnsServer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What a stream does with a recipient prevention finds undeliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreventMode {
    /// Leave it out of the message; a message left with no recipient is not sent.
    Refuse,
    /// Send, and count it (default).
    #[default]
    Flag,
    /// No checks.
    Off,
}

/// `[prevention]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreventionConfig {
    /// Where DNS questions go: `system` (default), `off`, or `IP:PORT`; `SESGUARD_DNS`
    /// overrides it.
    pub dns: DnsServer,
    /// How long one question may take before its answer counts as unknown (default `1s`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The longest a domain's answer is kept, whatever its TTL (default `1d`).
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// The shortest (default `1m`): a zone's TTL of seconds does not make every batch ask.
    #[serde(with = "humantime_serde")]
    pub min_ttl: Duration,
    /// How long a domain a bounce named as not found (`host_unknown`) counts as taking no
    /// mail (default `1d`; `0s`: bounces teach nothing).
    #[serde(with = "humantime_serde")]
    pub learned_ttl: Duration,
    /// Domains never judged (a partner the throw-away list names by mistake, a test domain),
    /// with their subdomains.
    pub allow_domains: Vec<String>,
}

impl Default for PreventionConfig {
    fn default() -> Self {
        Self {
            dns: DnsServer::System,
            timeout: Duration::from_secs(1),
            max_ttl: Duration::from_secs(86_400),
            min_ttl: Duration::from_secs(60),
            learned_ttl: Duration::from_secs(86_400),
            allow_domains: Vec::new(),
        }
    }
}
