//! Account status: each account's guard state and its counters summed over the current
//! rolling window, with its rates, overall and per stream. Shared by the CLI and (later) the
//! admin function.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::domain::counters::{Counts, WindowTotals};
use crate::domain::guard::Cause;
use crate::domain::timestamp::Timestamp;
use crate::ports::{CounterWindow, StoreError};

/// One account's state and window totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountStatus {
    /// The account's name.
    pub name: String,
    /// Whether it is in the configuration.
    pub configured: bool,
    /// `active`, `warning` or `paused`.
    pub state: &'static str,
    /// Why it is in that state.
    pub cause: Option<Cause>,
    /// Since when.
    pub since: Option<Timestamp>,
    /// When a timed pause ends.
    pub until: Option<Timestamp>,
    /// Streams quarantined on the account.
    pub quarantined: Vec<String>,
    /// Window totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// Hard bounces per send over the window.
    pub bounce_rate: f64,
    /// Complaints per send over the window.
    pub complaint_rate: f64,
    /// The first bucket of the window.
    pub window_start: Timestamp,
    /// The window's length in seconds.
    pub window_seconds: u64,
    /// Per-stream totals and rates.
    pub streams: BTreeMap<String, StreamStatus>,
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
}

/// An account name that is neither configured nor seen in feedback.
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
/// or of the one named.
pub async fn status(
    counters: &dyn CounterWindow,
    config: &Config,
    now: Timestamp,
    only: Option<&str>,
) -> Result<Vec<AccountStatus>, StatusError> {
    let mut names: Vec<(String, bool)> = config
        .accounts
        .iter()
        .map(|a| (a.name.clone(), true))
        .collect();
    for name in counters.unconfigured_accounts().await? {
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
    let window = config.ingest_policy().window;
    let (first, last) = window.buckets_ending(now);
    let mut statuses = Vec::with_capacity(names.len());
    for (name, configured) in names {
        let read = counters.window(&name, first, last).await?;
        let totals = WindowTotals::sum(&read.buckets, first, last);
        statuses.push(AccountStatus {
            name,
            configured,
            state: read.state.status.as_str(),
            cause: read.state.cause,
            since: read.state.since,
            until: read.state.until,
            quarantined: read.state.quarantined.keys().cloned().collect(),
            counts: totals.total,
            bounce_rate: totals.total.bounce_rate(),
            complaint_rate: totals.total.complaint_rate(),
            window_start: first,
            window_seconds: window.length.as_secs(),
            streams: totals
                .streams
                .into_iter()
                .map(|(stream, counts)| {
                    let status = StreamStatus {
                        counts,
                        bounce_rate: counts.bounce_rate(),
                        complaint_rate: counts.complaint_rate(),
                    };
                    (stream, status)
                })
                .collect(),
        });
    }
    Ok(statuses)
}
