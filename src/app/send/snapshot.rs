//! Routing as a use case: load one snapshot of the accounts' guard states and windows (one
//! query per account, or windows kept from an earlier read with states read fresh), then route
//! any number of messages against it, counting each send into the snapshot so that a batch
//! never over-commits an account's quota or bounce budget.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::confidence::Confidence;
use crate::domain::reputation::counters::{Bucket, Counts, WindowTotals};
use crate::domain::reputation::providers::{blocking, judge};
use crate::domain::reputation::state::AccountState;
use crate::domain::reputation::thresholds::Thresholds;
use crate::domain::sending::routing::{self, Candidate, Message, Priority, Route, stream_risk};
use crate::ports::{CounterWindow, SesAccount, SesError, StoreError};
use crate::telemetry::error_chain;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// What routing knows of one account at snapshot time, updated as messages are routed.
#[derive(Debug, Clone)]
struct AccountView {
    state: AccountState,
    thresholds: Thresholds,
    daily_quota: u64,
    window: Counts,
    sent_24h: u64,
    quota_frees_at: Timestamp,
    recent: BTreeMap<String, u64>,
    rate_wait: Duration,
    blocked_at: Vec<String>,
}

/// The accounts of some streams, as routing sees them at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    now: Timestamp,
    accounts: HashMap<String, AccountView>,
    /// Accounts left out because SES could not be asked for their quota, with why.
    unavailable: Vec<(String, String)>,
    streams: HashMap<String, Vec<String>>,
    policy: routing::RoutingPolicy,
}

/// A stream name that is not configured.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// Unknown stream.
    #[error("unknown stream `{0}`: not in the configuration")]
    UnknownStream(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An account's quota is not configured and SES cannot be asked for it (a local run).
    #[error(transparent)]
    Quota(#[from] SesError),
}

/// The providers that block `account` and that its mail is routed around (none unless
/// `guard.providers.route_around_blocks`), judged from its window's totals.
fn blocked_at(config: &Config, account: &str, rates: &WindowTotals) -> Vec<String> {
    let lines = &config.guard.providers;
    if !lines.route_around_blocks {
        return Vec::new();
    }
    let confidence = Confidence::new(config.thresholds_for(account).confidence);
    blocking(&judge(&rates.providers, lines, confidence))
}

/// Each stream's sends in the buckets from `first` on: still awaiting their feedback.
fn recent_sends(buckets: &[Bucket], first: Timestamp) -> BTreeMap<String, u64> {
    let mut recent = BTreeMap::new();
    for bucket in buckets.iter().filter(|b| b.start >= first) {
        for (stream, counts) in &bucket.streams {
            *recent.entry(stream.clone()).or_insert(0) += counts.sends;
        }
    }
    recent
}

/// The counter buckets of the accounts routing looks at, as read at one moment, plus the
/// sends made through this process since. Reading them costs a query per account, so the
/// sender keeps them for a short while (`sender.window_refresh`) and reads the guard states,
/// which must be fresh, on every batch.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    read_at: Timestamp,
    buckets: HashMap<String, Vec<Bucket>>,
}

impl Windows {
    /// Reads the window of every account of every configured stream (one query each), with
    /// the guard states that come with them.
    pub async fn load(
        counters: &dyn CounterWindow,
        config: &Config,
        now: Timestamp,
    ) -> Result<(Self, HashMap<String, AccountState>), StoreError> {
        let (first, last) = Self::range(config, now);
        let mut buckets = HashMap::new();
        let mut states = HashMap::new();
        for name in config.routed_accounts() {
            let read = counters.window(&name, first, last).await?;
            buckets.insert(name.clone(), read.buckets);
            states.insert(name, read.state);
        }
        Ok((
            Self {
                read_at: now,
                buckets,
            },
            states,
        ))
    }

    /// When these were read.
    pub fn read_at(&self) -> Timestamp {
        self.read_at
    }

    /// Adds sends made since the read to `account`'s current bucket.
    pub fn add_sends(
        &mut self,
        account: &str,
        stream: &str,
        sends: u64,
        config: &Config,
        now: Timestamp,
    ) {
        let window = config.ingest_policy().window;
        let start = window.bucket_of(now);
        let buckets = self.buckets.entry(account.to_owned()).or_default();
        let position = buckets.iter().position(|b| b.start == start);
        let bucket = match position {
            Some(i) => &mut buckets[i],
            None => {
                buckets.push(Bucket {
                    start,
                    total: Counts::default(),
                    streams: BTreeMap::new(),
                    providers: BTreeMap::new(),
                });
                buckets.last_mut().expect("pushed")
            }
        };
        bucket.total.sends += sends;
        bucket.streams.entry(stream.to_owned()).or_default().sends += sends;
    }

    /// The buckets routing needs at `now`: the rate window and the last 24 hours.
    fn range(config: &Config, now: Timestamp) -> (Timestamp, Timestamp) {
        let window = config.ingest_policy().window;
        let (rates_first, last) = window.buckets_ending(now);
        let quota_first = window.day_starting_bucket(now);
        (rates_first.min(quota_first), last)
    }
}

impl Snapshot {
    /// Loads every account of every configured stream: one window query each, and the quota
    /// from SES (cached) for accounts whose configuration leaves it out. An account whose quota
    /// SES cannot tell now (its GetAccount or AssumeRole failing) is left out of the snapshot,
    /// so routing passes over it for this batch; one that SES can never be asked about (a local
    /// run without a configured quota) is an error naming it.
    pub async fn load(
        counters: &dyn CounterWindow,
        ses: &dyn SesAccount,
        config: &Config,
        now: Timestamp,
    ) -> Result<Self, RoutingError> {
        let (windows, states) = Windows::load(counters, config, now).await?;
        Self::assemble(&windows, &states, ses, config, now).await
    }

    /// A snapshot from windows read earlier and the accounts' current guard states.
    pub async fn assemble(
        windows: &Windows,
        states: &HashMap<String, AccountState>,
        ses: &dyn SesAccount,
        config: &Config,
        now: Timestamp,
    ) -> Result<Self, RoutingError> {
        let window = config.ingest_policy().window;
        let lag = config.guard.feedback_lag;
        let (rates_first, last) = window.buckets_ending(now);
        let quota_first = window.day_starting_bucket(now);
        let recent_first = window.bucket_of(now.minus(lag));
        let mut accounts = HashMap::new();
        let mut unavailable = Vec::new();
        for name in config.routed_accounts() {
            let Some(account) = config.account(&name) else {
                continue;
            };
            let buckets = windows.buckets.get(&name).map_or(&[][..], Vec::as_slice);
            let rates = WindowTotals::sum(buckets, rates_first, last);
            let day = WindowTotals::sum(buckets, quota_first, last);
            let oldest_send = buckets
                .iter()
                .filter(|b| b.start >= quota_first && b.total.sends > 0)
                .map(|b| b.start)
                .min();
            let recent = recent_sends(buckets, recent_first);
            let blocked_at = blocked_at(config, &name, &rates);
            let (daily_quota, sent_by_ses) = match account.daily_quota {
                Some(quota) => (quota, 0),
                None => match ses.send_quota(&name).await {
                    Ok(quota) => (quota.max_24_hour_send, quota.sent_last_24_hours),
                    Err(error) if error.permanent => return Err(error.into()),
                    Err(error) => {
                        // One account's outage stays its own: it sits out this batch, the
                        // others keep sending.
                        let why = error_chain(&error);
                        tracing::warn!(account = %name, error = %why, "quota unknown: the account sits out this batch");
                        unavailable.push((name.clone(), why));
                        continue;
                    }
                },
            };
            accounts.insert(
                name.clone(),
                AccountView {
                    state: states.get(&name).cloned().unwrap_or_default(),
                    thresholds: config.thresholds_for(&name),
                    daily_quota,
                    window: rates.total,
                    // SES also counts mail sent around sesguard: take the larger count.
                    sent_24h: day.total.sends.max(sent_by_ses),
                    quota_frees_at: oldest_send
                        .map_or(now, |start| start.plus(DAY).plus(window.bucket)),
                    recent,
                    rate_wait: Duration::ZERO,
                    blocked_at,
                },
            );
        }
        let streams = config
            .streams
            .iter()
            .map(|s| {
                let accounts = s.accounts.iter().map(ToString::to_string).collect();
                (s.name.to_string(), accounts)
            })
            .collect();
        Ok(Self {
            now,
            accounts,
            unavailable,
            streams,
            policy: config.routing_policy(),
        })
    }

    /// The accounts left out of this snapshot because SES could not be asked for their quota,
    /// each with the error.
    pub fn unavailable(&self) -> &[(String, String)] {
        &self.unavailable
    }

    /// The account for a message of `stream` (drawn at `draw`, see [`routing::draw`]) to
    /// recipients at `providers`, or when to try again.
    pub fn route(
        &self,
        stream: &str,
        priority: Priority,
        draw: f64,
        providers: &[&str],
    ) -> Result<Route, RoutingError> {
        let names = self
            .streams
            .get(stream)
            .ok_or_else(|| RoutingError::UnknownStream(stream.to_owned()))?;
        let risk = stream_risk(
            stream,
            names
                .iter()
                .filter_map(|n| self.accounts.get(n))
                .map(|a| &a.state),
        );
        let candidates: Vec<Candidate<'_>> = names
            .iter()
            .filter_map(|name| self.accounts.get_key_value(name))
            .map(|(name, view)| Candidate {
                name,
                state: &view.state,
                daily_quota: view.daily_quota,
                sent_24h: view.sent_24h,
                quota_frees_at: view.quota_frees_at,
                rate_wait: view.rate_wait,
                window: view.window,
                recent_stream_sends: view.recent.get(stream).copied().unwrap_or(0),
                thresholds: &view.thresholds,
                blocked_at: &view.blocked_at,
            })
            .collect();
        let message = Message {
            stream,
            priority,
            risk,
            draw,
            providers,
        };
        Ok(routing::route(
            &message,
            &candidates,
            &self.policy,
            self.now,
        ))
    }

    /// Marks `account` paused in the snapshot (until `until`, or until lifted), so the rest
    /// of a batch routes around it.
    pub fn mark_paused(&mut self, account: &str, until: Option<Timestamp>) {
        if let Some(view) = self.accounts.get_mut(account) {
            view.state.status = crate::domain::reputation::state::Status::Paused;
            view.state.until = until;
        }
    }

    /// Records that `account`'s send rate has no room for `wait`, so routing tries the next
    /// account first.
    pub fn set_rate_wait(&mut self, account: &str, wait: Duration) {
        if let Some(view) = self.accounts.get_mut(account) {
            view.rate_wait = wait;
        }
    }

    /// Counts a send of `recipients` through `account` into the snapshot.
    pub fn record_send(&mut self, account: &str, stream: &str, recipients: u64) {
        if let Some(view) = self.accounts.get_mut(account) {
            view.sent_24h += recipients;
            view.window.sends += recipients;
            *view.recent.entry(stream.to_owned()).or_insert(0) += recipients;
        }
    }
}
