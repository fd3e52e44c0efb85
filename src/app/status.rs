//! Account status: each account's guard state, its counters summed over the current rolling
//! window with its rates (overall and per stream), its daily quota, and the use of its
//! send-rate limits — and from those, whether it can send now and if not, what blocks it and
//! for how long. Shared by the CLI and the admin function.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::app::Context;
use crate::app::review::ses_figures;
use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::SendSource;
use crate::domain::reputation::confidence::Confidence;
use crate::domain::reputation::counters::ProviderCounts;
use crate::domain::reputation::counters::{Bucket, Counts, WindowTotals};
use crate::domain::reputation::evidence::Evidence;
use crate::domain::reputation::history::Bounds;
use crate::domain::reputation::probation::Probation;
use crate::domain::reputation::providers::{ProviderFigures, ProviderFinding, findings};
use crate::domain::reputation::ses_view::SesView;
use crate::domain::reputation::state::{AccountState, Cause, Signal, StateName, stream_name};
use crate::domain::reputation::thresholds::Thresholds;
use crate::domain::sending::rate_limit::Periods;
use crate::domain::sending::rate_limit::RateLimits;
use crate::ports::{SesAccount, SesError, Store, StoreError};

/// One account's state, window totals, quota and limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountStatus {
    /// The account's name.
    pub name: String,
    /// Whether it is in the configuration.
    pub configured: bool,
    /// `active`, `warning`, `paused` or `probation`.
    pub state: StateName,
    /// The probation step, while the account is on one.
    pub probation: Option<Probation>,
    /// When the account was last resumed: mail sent before is counted (the window totals
    /// below) but judged no more; `judged` is what the guard decides on.
    pub judged_since: Option<Timestamp>,
    /// The part of the window the guard judges: the mail sent since the last resume, each
    /// stream's since it came back from quarantine.
    pub judged: Rates,
    /// How sure the judged rates are: their confidence intervals `[low, high]` at the
    /// account's `confidence`.
    pub judged_bounds: Bounds,
    /// The account as SES sees it: the whole window's rates, or SES's own figures (shown in
    /// `reported` when read) where worse.
    pub ses: SesView,
    /// The rate SES reports higher than sesguard counts (feedback missing), while it does.
    pub feedback_missing: Option<Signal>,
    /// When the account's SES feedback last arrived, to the bucket (`[ingest] window`'s
    /// bucket, 15 min by default): the start of the latest bucket of the window and the last
    /// 24 hours that holds any of its events (`Send` events too, where they count its sends).
    /// `None` when none did: a silent account (`sesguard accounts check-feedback`).
    pub last_feedback: Option<Timestamp>,
    /// When an operator resumed the account over SES's line, while that override stands.
    pub line_override: Option<Timestamp>,
    /// Why it is in that state.
    pub cause: Option<Cause>,
    /// The operator's note on the last change.
    pub note: Option<String>,
    /// Since when.
    pub since: Option<Timestamp>,
    /// When a timed pause ends.
    pub until: Option<Timestamp>,
    /// Whether it takes no mail now.
    pub is_paused: bool,
    /// Seconds until a timed pause ends by itself.
    pub pause_remaining_seconds: Option<u64>,
    /// Whether a message could go through it now.
    pub can_send: bool,
    /// What stops it: `paused`, `daily_quota`, `send_rate`, `unconfigured`.
    pub blocked_by: Vec<&'static str>,
    /// Seconds until it could send, when something stops it and that ends by itself.
    pub wait_seconds: Option<u64>,
    /// Streams quarantined on the account.
    pub quarantined: Vec<String>,
    /// Window totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// Hard bounces per send over the window.
    pub bounce_rate: f64,
    /// Complaints per send over the window.
    pub complaint_rate: f64,
    /// The thresholds the guard applies to it.
    pub thresholds: Thresholds,
    /// The first bucket of the window.
    pub window_start: Timestamp,
    /// The window's length in seconds.
    pub window_seconds: u64,
    /// Per-stream totals and rates.
    pub streams: BTreeMap<String, StreamStatus>,
    /// Per mailbox provider: what it answered and its rates, busiest first.
    pub providers: Vec<ProviderFigures>,
    /// What the guard finds at the providers now (blocks, complaint lines).
    pub provider_findings: Vec<ProviderFinding>,
    /// The 24-hour quota (configured accounts whose quota is known).
    pub daily_quota: Option<QuotaUse>,
    /// Use of the send-rate limits (configured accounts whose rate is known).
    pub periods: Option<Periods>,
}

/// Counts and their rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// Hard bounces per send.
    pub bounce_rate: f64,
    /// Complaints per send.
    pub complaint_rate: f64,
}

impl Rates {
    fn of(counts: Counts) -> Self {
        Self {
            counts,
            bounce_rate: counts.bounce_rate(),
            complaint_rate: counts.complaint_rate(),
        }
    }
}

/// One stream's totals on an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatus {
    /// Window totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// Hard bounces per send.
    pub bounce_rate: f64,
    /// Complaints per send.
    pub complaint_rate: f64,
    /// Whether the stream is quarantined on the account.
    pub quarantined: bool,
    /// `active`, `quarantined` or `probation`.
    pub state: StateName,
    /// The share of the stream's traffic the account takes now (1 unless on probation).
    pub share: f64,
}

/// The 24-hour quota and its use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QuotaUse {
    /// Sends allowed per 24 hours.
    pub limit: u64,
    /// Sends in the last 24 hours (sesguard's count or SES's, whichever is larger).
    pub used: u64,
    /// What is left.
    pub remaining: u64,
}

/// Why a status could not be given.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Unknown name.
    #[error("unknown account `{0}`: not in the configuration and no feedback seen for it")]
    UnknownAccount(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Status of every account (configured ones first, then unconfigured ones seen in feedback),
/// or of the one named. An account whose quota or rate SES cannot tell is shown without them.
pub async fn status(
    context: &Context,
    now: Timestamp,
    only: Option<&str>,
) -> Result<Vec<AccountStatus>, StatusError> {
    let names = account_names(context, only).await?;
    let mut statuses = Vec::with_capacity(names.len());
    for (name, configured) in names {
        statuses.push(account_status(context, name, configured, now).await?);
    }
    Ok(statuses)
}

/// The accounts to show, each with whether it is configured: the configured ones, then the
/// others seen in feedback; only `only` when it is given.
async fn account_names(
    context: &Context,
    only: Option<&str>,
) -> Result<Vec<(String, bool)>, StatusError> {
    let mut names: Vec<(String, bool)> = context
        .config
        .accounts
        .iter()
        .map(|a| (a.name.to_string(), true))
        .collect();
    for name in context.store.unconfigured_accounts().await? {
        if !names.iter().any(|(n, _)| *n == name) {
            names.push((name, false));
        }
    }
    if let Some(only) = only {
        names.retain(|(name, _)| name == only);
        if names.is_empty() {
            return Err(StatusError::UnknownAccount(only.to_owned()));
        }
    }
    Ok(names)
}

/// One account's status: one window read (the rate window and the last 24 hours), SES's
/// figures and its limits for a configured one.
async fn account_status(
    context: &Context,
    name: String,
    configured: bool,
    now: Timestamp,
) -> Result<AccountStatus, StatusError> {
    let (store, ses, config) = (
        context.store.as_ref(),
        context.ses.as_ref(),
        context.config.as_ref(),
    );
    let window = config.ingest_policy().window;
    let (first, last) = window.buckets_ending(now);
    let quota_first = window.day_starting_bucket(now);
    let read = store.window(&name, first.min(quota_first), last).await?;
    let totals = WindowTotals::sum(&read.buckets, first, last);
    let figures = match configured {
        true => ses_figures(context.reputation.as_ref(), &name, now).await,
        false => None,
    };
    let judged = Evidence::gather(&read.buckets, first, last, &read.state).judged;
    let last_feedback = last_feedback(config, &name, &read.buckets);
    let thresholds = config.thresholds_for(&name);
    let providers = ProviderFigures::of_all(&totals.providers);
    let provider_findings = findings(
        &providers,
        &config.guard.providers,
        Confidence::new(thresholds.confidence),
    );
    let sent_24h = WindowTotals::sum(&read.buckets, quota_first, last)
        .total
        .sends;
    let state = read.state;
    let (daily_quota, periods) = if configured {
        limits(store, ses, config, &name, sent_24h, now).await?
    } else {
        (None, None)
    };
    let is_paused = state.is_paused(now);
    let pause_remaining = state
        .until
        .filter(|until| is_paused && *until > now)
        .map(|until| until.since(now));
    let (blocked_by, wait_seconds) =
        blocks(configured, is_paused, pause_remaining, daily_quota, periods);
    Ok(AccountStatus {
        configured,
        state: state.name(),
        probation: state.probation,
        judged_since: state.judged_since,
        judged: Rates::of(judged.total),
        judged_bounds: Bounds::of(&judged.total, thresholds.bounds()),
        ses: SesView::of(&totals.total, figures),
        feedback_missing: state.feedback_missing,
        last_feedback,
        line_override: state.line_override,
        cause: state.cause,
        note: state.note.clone(),
        since: state.since,
        until: state.until,
        is_paused,
        pause_remaining_seconds: pause_remaining.map(|d| d.as_secs().max(1)),
        can_send: blocked_by.is_empty(),
        blocked_by,
        wait_seconds,
        quarantined: state.quarantined.keys().cloned().collect(),
        counts: totals.total,
        bounce_rate: totals.total.bounce_rate(),
        complaint_rate: totals.total.complaint_rate(),
        thresholds,
        window_start: first,
        window_seconds: window.length.as_secs(),
        streams: stream_statuses(totals.streams, &state),
        providers,
        provider_findings,
        daily_quota,
        periods,
        name,
    })
}

/// The start of the latest bucket holding SES feedback of the account: deliveries, bounces,
/// complaints, and sends where SES's `Send` events count them.
fn last_feedback(config: &Config, name: &str, buckets: &[Bucket]) -> Option<Timestamp> {
    let sends_are_feedback = config
        .account(name)
        .is_none_or(|account| account.send_count_source == SendSource::SesEvents);
    buckets
        .iter()
        .filter(|bucket| {
            let c = bucket.total;
            c.deliveries + c.hard_bounces + c.soft_bounces + c.complaints > 0
                || (sends_are_feedback && c.sends > 0)
        })
        .map(|bucket| bucket.start)
        .max()
}

/// What stops an account from sending now, and the seconds until it could.
fn blocks(
    configured: bool,
    is_paused: bool,
    pause_remaining: Option<Duration>,
    daily_quota: Option<QuotaUse>,
    periods: Option<Periods>,
) -> (Vec<&'static str>, Option<u64>) {
    let mut blocked_by = Vec::new();
    let mut waits = Vec::new();
    if !configured {
        blocked_by.push("unconfigured");
    }
    if is_paused {
        blocked_by.push("paused");
        waits.push(pause_remaining);
    }
    if daily_quota.is_some_and(|q| q.remaining == 0) {
        blocked_by.push("daily_quota");
        waits.push(None);
    }
    if periods.is_some_and(|p| {
        [p.second, p.minute, p.hour, p.day]
            .iter()
            .any(|period| period.status == "exhausted")
    }) {
        blocked_by.push("send_rate");
        waits.push(Some(Duration::from_secs(1)));
    }
    // The longest of the waits, unless one of them does not end by itself.
    let wait_seconds = if waits.is_empty() || !configured {
        None
    } else {
        waits
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .and_then(|w| w.into_iter().max())
            .map(|w| w.as_secs().max(1))
    };
    (blocked_by, wait_seconds)
}

/// Each stream's window totals on the account, with its rates and its state there.
fn stream_statuses(
    streams: BTreeMap<String, Counts>,
    state: &AccountState,
) -> BTreeMap<String, StreamStatus> {
    streams
        .into_iter()
        .map(|(stream, counts)| {
            let status = StreamStatus {
                counts,
                bounce_rate: counts.bounce_rate(),
                complaint_rate: counts.complaint_rate(),
                quarantined: state.is_quarantined(&stream),
                state: stream_name(state, &stream),
                share: state.share_for(&stream),
            };
            (stream, status)
        })
        .collect()
}

/// One account's rates through the current window, bucket by bucket: at each bucket, the
/// rates of the mail sent from the window's start to the end of that bucket (so the last
/// point is the window's rate), overall and per stream. Drawn by the status page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateSeries {
    /// The window's first bucket.
    pub start: Timestamp,
    /// Each bucket's start and the overall (bounce, complaint) rates up to its end.
    pub total: Vec<(Timestamp, f64, f64)>,
    /// The same per stream.
    pub streams: BTreeMap<String, Vec<(Timestamp, f64, f64)>>,
    /// Per mailbox provider: its refusal rate (sender-class bounces per answered message) and
    /// complaint rate (per delivery) up to each bucket's end.
    pub providers: BTreeMap<String, Vec<(Timestamp, f64, f64)>>,
}

/// The [`RateSeries`] of `account` at `now`: one window read.
pub async fn rate_series(
    store: &dyn Store,
    config: &Config,
    account: &str,
    now: Timestamp,
) -> Result<RateSeries, StatusError> {
    let window = config.ingest_policy().window;
    let (first, last) = window.buckets_ending(now);
    let read = store.window(account, first, last).await?;
    let mut buckets: Vec<_> = read
        .buckets
        .iter()
        .filter(|b| b.start >= first && b.start <= last)
        .collect();
    buckets.sort_by_key(|b| b.start);
    let mut series = RateSeries {
        start: first,
        ..RateSeries::default()
    };
    let mut total = Counts::default();
    let mut streams: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut providers: BTreeMap<&str, ProviderCounts> = BTreeMap::new();
    let point = |at: Timestamp, c: &Counts| (at, c.bounce_rate(), c.complaint_rate());
    for bucket in buckets {
        total += bucket.total;
        series.total.push(point(bucket.start, &total));
        for (stream, counts) in &bucket.streams {
            *streams.entry(stream).or_default() += *counts;
        }
        for (stream, counts) in &streams {
            series
                .streams
                .entry((*stream).to_owned())
                .or_default()
                .push(point(bucket.start, counts));
        }
        for (provider, counts) in &bucket.providers {
            *providers.entry(provider).or_default() += *counts;
        }
        for (provider, counts) in &providers {
            let figures = ProviderFigures::of(provider, *counts);
            series
                .providers
                .entry((*provider).to_owned())
                .or_default()
                .push((
                    bucket.start,
                    figures.sender_bounce_rate,
                    figures.complaint_rate,
                ));
        }
    }
    Ok(series)
}

/// An account's configured send-rate limits: its `max_send_rate` (asked of SES when the
/// configuration leaves it out) with `[accounts.limits]` over it.
pub async fn configured_limits(
    config: &Config,
    ses: &dyn SesAccount,
    account: &str,
) -> Result<RateLimits, SesError> {
    let rate = match config.account(account).and_then(|a| a.max_send_rate) {
        Some(rate) => rate,
        None => ses.send_quota(account).await?.max_send_rate,
    };
    Ok(config.rate_limits(account, rate))
}

/// The account's quota use and limit periods; SES is asked for what the configuration leaves
/// out, and what SES cannot tell is left out (and logged).
async fn limits(
    store: &dyn Store,
    ses: &dyn SesAccount,
    config: &Config,
    name: &str,
    sent_24h: u64,
    now: Timestamp,
) -> Result<(Option<QuotaUse>, Option<Periods>), StoreError> {
    let Some(account) = config.account(name) else {
        return Ok((None, None));
    };
    let from_ses = if account.daily_quota.is_none() || account.max_send_rate.is_none() {
        match ses.send_quota(name).await {
            Ok(quota) => Some(quota),
            Err(error) => {
                tracing::warn!(account = name, error = %crate::telemetry::error_chain(&error), "quota and send rate unknown");
                None
            }
        }
    } else {
        None
    };
    let quota = match account.daily_quota {
        Some(limit) => Some((limit, 0)),
        None => from_ses.map(|q| (q.max_24_hour_send, q.sent_last_24_hours)),
    };
    let rate = account.max_send_rate.or(from_ses.map(|q| q.max_send_rate));
    let daily_quota = quota.map(|(limit, sent_by_ses)| {
        let used = sent_24h.max(sent_by_ses);
        QuotaUse {
            limit,
            used,
            remaining: limit.saturating_sub(used),
        }
    });
    let periods = match rate {
        None => None,
        Some(rate) => {
            let record = store.rate(name).await?;
            let limits = record.limits(&config.rate_limits(name, rate));
            Some(limits.periods(record.state_at(&limits, now).as_ref(), now))
        }
    };
    Ok((daily_quota, periods))
}
