//! Routing: which account of a stream takes a message now, or when to try again. Pure: the
//! accounts' states, quota use, rate headroom and windows are passed in.
//!
//! Accounts are tried in the stream's order (primary first). An account is skipped when it is
//! paused, when the stream is quarantined on it, when its 24-hour quota is used up (or down to
//! the reserve, for mail below `critical` priority), when its send rate has no room now, or —
//! for a stream known to be risky because it is quarantined somewhere — when the stream's known
//! bounce rate would take the account past its warn level, counting the bounces still in flight
//! from that stream's recent sends. That last rule is what keeps a backup from inheriting the
//! incident it is meant to absorb. Capacity never drops mail: what no account can take is
//! deferred until the earliest time something frees up.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::common::digest::fnv1a;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::Counts;
use crate::domain::reputation::state::AccountState;
use crate::domain::reputation::thresholds::Thresholds;

/// How important a message is when capacity is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Password resets, receipts: may use the quota reserve.
    Critical,
    /// The default.
    #[default]
    Normal,
    /// Newsletters: the first to be deferred.
    Bulk,
}

impl Priority {
    /// `critical`, `normal`, `bulk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }
}

/// A priority name that is not `critical`, `normal` or `bulk`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown priority `{0}` (expected critical, normal or bulk)")]
pub struct UnknownPriority(pub String);

impl std::str::FromStr for Priority {
    type Err = UnknownPriority;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Priority::Critical, Priority::Normal, Priority::Bulk]
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| UnknownPriority(text.to_owned()))
    }
}

/// What routing knows about one account of the stream.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The account's name.
    pub name: &'a str,
    /// Its guard state.
    pub state: &'a AccountState,
    /// Its 24-hour sending quota.
    pub daily_quota: u64,
    /// Recipients sent to in the last 24 hours.
    pub sent_24h: u64,
    /// When the oldest of those sends leaves the 24-hour window.
    pub quota_frees_at: Timestamp,
    /// Wait until the send-rate limit has room (zero: room now).
    pub rate_wait: Duration,
    /// The account's rolling-window totals.
    pub window: Counts,
    /// Sends of this message's stream on the account still awaiting their feedback.
    pub recent_stream_sends: u64,
    /// The account's thresholds.
    pub thresholds: &'a Thresholds,
    /// Mailbox providers blocking the account that mail is routed around (empty unless
    /// `guard.providers.route_around_blocks`).
    pub blocked_at: &'a [String],
}

/// The message being routed.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Its stream.
    pub stream: &'a str,
    /// Its priority.
    pub priority: Priority,
    /// The stream's known bounce rate where it is quarantined (0 when it is nowhere).
    pub risk: f64,
    /// The message's fixed place in `[0, 1)` ([`draw`]): an account on probation with share
    /// `s` takes the messages drawn below `s`, the same ones on every retry.
    pub draw: f64,
    /// The mailbox providers of its recipients, as far as their domains tell.
    pub providers: &'a [&'a str],
}

/// A message's place in `[0, 1)`, from its duplicate key: stable across retries and
/// instances, evenly spread over keys.
pub fn draw(key: &str) -> f64 {
    let mut hash = fnv1a(std::iter::once(key));
    // Mix the high bits down: FNV's low bits are weak for short keys.
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 32;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Routing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingPolicy {
    /// Share of the daily quota kept for critical mail (default 0.10): bulk is deferred below
    /// it, normal mail below half of it.
    pub quota_reserve: f64,
    /// When nothing says when capacity returns, try again after this long (default 5 min).
    pub recheck: Duration,
}

impl Default for RoutingPolicy {
    fn default() -> Self {
        Self {
            quota_reserve: 0.10,
            recheck: Duration::from_secs(300),
        }
    }
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send through this account.
    Send {
        /// The account.
        account: String,
    },
    /// No account can take it now.
    Defer {
        /// The earliest time something frees up.
        until: Timestamp,
        /// Why each account declined, in stream order.
        reason: String,
    },
}

/// The known risk of a stream: its highest bounce rate on any account where it is quarantined.
pub fn stream_risk<'a>(stream: &str, states: impl IntoIterator<Item = &'a AccountState>) -> f64 {
    states
        .into_iter()
        .filter_map(|s| s.quarantined.get(stream))
        .map(|q| q.bounce_rate)
        .fold(0.0, f64::max)
}

/// Picks the account for `message`, or when to try again.
pub fn route(
    message: &Message<'_>,
    candidates: &[Candidate<'_>],
    policy: &RoutingPolicy,
    now: Timestamp,
) -> Route {
    let mut earliest: Option<Timestamp> = None;
    let mut reasons = Vec::new();
    let mut frees = |at: Timestamp| earliest = Some(earliest.map_or(at, |e| e.min(at)));
    for c in candidates {
        let declined = if c.state.is_paused(now) {
            // A timed pause frees when it ends; an operator's run out frees at the guard's
            // next review, which nothing here can say (`recheck`).
            if let Some(until) = c.state.until.filter(|until| *until > now) {
                frees(until);
            }
            Some("paused".to_owned())
        } else if c.state.is_quarantined(message.stream) {
            Some(format!("stream `{}` quarantined", message.stream))
        } else if message.draw >= c.state.share_for(message.stream) {
            Some(format!(
                "on probation: takes {:.0} % of stream `{}`",
                c.state.share_for(message.stream) * 100.0,
                message.stream
            ))
        } else if let Some(provider) = message
            .providers
            .iter()
            .find(|p| c.blocked_at.iter().any(|b| b == *p))
        {
            Some(format!("blocked at {provider}"))
        } else if let Some(why) = quota_refusal(c, message.priority, policy) {
            frees(c.quota_frees_at);
            Some(why)
        } else if !within_reputation_budget(c, message.risk) {
            Some(format!(
                "stream `{}` ({:.1} % bounces) would exceed its bounce budget",
                message.stream,
                message.risk * 100.0
            ))
        } else if !c.rate_wait.is_zero() {
            frees(now.plus(c.rate_wait));
            Some("send rate".to_owned())
        } else {
            None
        };
        match declined {
            None => {
                return Route::Send {
                    account: c.name.to_owned(),
                };
            }
            Some(why) => reasons.push(format!("{}: {why}", c.name)),
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("stream `{}` has no account", message.stream));
    }
    Route::Defer {
        until: earliest
            .filter(|at| *at > now)
            .unwrap_or_else(|| now.plus(policy.recheck)),
        reason: reasons.join("; "),
    }
}

fn quota_refusal(c: &Candidate<'_>, priority: Priority, policy: &RoutingPolicy) -> Option<String> {
    let remaining = c.daily_quota.saturating_sub(c.sent_24h);
    if remaining == 0 {
        return Some("daily quota used up".into());
    }
    let reserve = policy.quota_reserve * c.daily_quota as f64;
    let floor = match priority {
        Priority::Critical => 0.0,
        Priority::Normal => reserve / 2.0,
        Priority::Bulk => reserve,
    };
    (remaining as f64 <= floor)
        .then(|| format!("{remaining} of the daily quota left, kept for more important mail"))
}

/// Whether one more message with bounce probability `risk` keeps the account's expected
/// bounce rate — counting the stream's recent sends still awaiting feedback — within its
/// warn level (below the minimum volume, the budget is that of the minimum volume), and the
/// expected bounces short of what the guard would pause the account for: their lower
/// confidence bound under the pause level. A backup must absorb, never inherit, an incident.
fn within_reputation_budget(c: &Candidate<'_>, risk: f64) -> bool {
    if risk <= 0.0 {
        return true;
    }
    // The stream's recent sends are among the window's sends once their Send events are in.
    let sends = c.window.sends.max(c.recent_stream_sends) + 1;
    let volume = sends.max(c.thresholds.min_volume) as f64;
    let expected = c.window.hard_bounces as f64 + risk * (c.recent_stream_sends + 1) as f64;
    // Rounded up: an expected fraction of a bounce may arrive as a whole one.
    let [low, _] = c
        .thresholds
        .bounds()
        .interval(expected.ceil() as u64, sends);
    expected <= c.thresholds.bounce_warn * volume && low < c.thresholds.bounce_pause
}

#[cfg(test)]
mod tests;
