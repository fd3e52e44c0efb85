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
mod tests {
    use super::*;
    use crate::domain::reputation::state::{Cause, Quarantine, Status};

    const NOW: Timestamp = Timestamp::from_millis(10_000_000);

    fn candidate<'a>(
        name: &'a str,
        state: &'a AccountState,
        thresholds: &'a Thresholds,
    ) -> Candidate<'a> {
        Candidate {
            name,
            state,
            daily_quota: 50_000,
            sent_24h: 0,
            quota_frees_at: NOW.plus(Duration::from_secs(600)),
            rate_wait: Duration::ZERO,
            window: Counts::default(),
            recent_stream_sends: 0,
            thresholds,
        }
    }

    fn message(priority: Priority) -> Message<'static> {
        Message {
            stream: "transactional",
            priority,
            risk: 0.0,
            draw: 0.5,
        }
    }

    fn account(name: &str, r: &Route) -> bool {
        matches!(r, Route::Send { account } if account == name)
    }

    #[test]
    fn the_primary_takes_the_mail_while_it_can() {
        let (state, t) = (AccountState::default(), Thresholds::default());
        let c = [
            candidate("primary", &state, &t),
            candidate("backup", &state, &t),
        ];
        assert!(account(
            "primary",
            &route(
                &message(Priority::Normal),
                &c,
                &RoutingPolicy::default(),
                NOW
            )
        ));
    }

    #[test]
    fn paused_and_quarantined_accounts_are_skipped_in_order() {
        let t = Thresholds::default();
        let paused = AccountState {
            status: Status::Paused,
            ..AccountState::default()
        };
        let mut quarantined = AccountState::default();
        quarantined.quarantined.insert(
            "transactional".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.1,
                complaint_rate: 0.0,
            },
        );
        let ok = AccountState::default();
        let c = [
            candidate("a", &paused, &t),
            candidate("b", &quarantined, &t),
            candidate("c", &ok, &t),
        ];
        assert!(account(
            "c",
            &route(
                &message(Priority::Normal),
                &c,
                &RoutingPolicy::default(),
                NOW
            )
        ));
    }

    #[test]
    fn the_quota_reserve_defers_bulk_first_then_normal_and_never_critical() {
        let (state, t) = (AccountState::default(), Thresholds::default());
        let policy = RoutingPolicy::default();
        let with_left = |left: u64| {
            let mut c = candidate("backup", &state, &t);
            c.sent_24h = c.daily_quota - left;
            [c]
        };
        assert!(account(
            "backup",
            &route(&message(Priority::Bulk), &with_left(5_001), &policy, NOW)
        ));
        assert!(matches!(
            route(&message(Priority::Bulk), &with_left(5_000), &policy, NOW),
            Route::Defer { .. }
        ));
        assert!(account(
            "backup",
            &route(&message(Priority::Normal), &with_left(5_000), &policy, NOW)
        ));
        assert!(matches!(
            route(&message(Priority::Normal), &with_left(2_500), &policy, NOW),
            Route::Defer { .. }
        ));
        assert!(account(
            "backup",
            &route(&message(Priority::Critical), &with_left(1), &policy, NOW)
        ));
        let Route::Defer { until, reason } =
            route(&message(Priority::Critical), &with_left(0), &policy, NOW)
        else {
            panic!("an exhausted quota defers everything");
        };
        assert_eq!(
            until,
            NOW.plus(Duration::from_secs(600)),
            "until the quota frees"
        );
        assert!(reason.contains("daily quota used up"), "{reason}");
    }

    #[test]
    fn deferral_waits_for_the_earliest_thing_that_frees_up() {
        let t = Thresholds::default();
        let timed = AccountState {
            status: Status::Paused,
            until: Some(NOW.plus(Duration::from_secs(120))),
            ..AccountState::default()
        };
        let ok = AccountState::default();
        let mut slow = candidate("b", &ok, &t);
        slow.rate_wait = Duration::from_secs(3);
        let c = [candidate("a", &timed, &t), slow];
        let Route::Defer { until, reason } = route(
            &message(Priority::Normal),
            &c,
            &RoutingPolicy::default(),
            NOW,
        ) else {
            panic!()
        };
        assert_eq!(until, NOW.plus(Duration::from_secs(3)));
        assert_eq!(reason, "a: paused; b: send rate");
        let Route::Defer { until, .. } = route(
            &message(Priority::Normal),
            &c[..1],
            &RoutingPolicy::default(),
            NOW,
        ) else {
            panic!()
        };
        assert_eq!(until, NOW.plus(Duration::from_secs(120)));
    }

    #[test]
    fn a_risky_stream_fails_over_only_within_the_backups_bounce_budget() {
        let (state, t) = (AccountState::default(), Thresholds::default());
        let risky = Message {
            stream: "verification",
            priority: Priority::Normal,
            risk: 0.2,
            draw: 0.5,
        };
        // A healthy backup with volume absorbs it...
        let mut busy = candidate("backup", &state, &t);
        busy.window = Counts {
            sends: 10_000,
            hard_bounces: 50,
            ..Counts::default()
        };
        busy.recent_stream_sends = 100;
        assert!(account(
            "backup",
            &route(
                &risky,
                std::slice::from_ref(&busy),
                &RoutingPolicy::default(),
                NOW
            )
        ));
        // ...until the stream's bounces in flight would take it past its warn level.
        busy.recent_stream_sends = 1_800;
        assert!(matches!(
            route(&risky, &[busy], &RoutingPolicy::default(), NOW),
            Route::Defer { .. }
        ));
        // An idle backup takes none of it: its first bounce alone would be a rate the guard
        // pauses on (1 in 1, lower bound 27 %)...
        let mut idle = candidate("backup", &state, &t);
        assert!(matches!(
            route(
                &risky,
                std::slice::from_ref(&idle),
                &RoutingPolicy::default(),
                NOW
            ),
            Route::Defer { .. }
        ));
        // ...a backup with 300 clean sends of its own takes it within its warn level (40 in
        // flight: 8.2 expected bounces in 301 sends, 2.7 %; 60 in flight: 12.2, over 4 %).
        idle.window = Counts {
            sends: 300,
            ..Counts::default()
        };
        idle.recent_stream_sends = 40;
        assert!(account(
            "backup",
            &route(
                &risky,
                std::slice::from_ref(&idle),
                &RoutingPolicy::default(),
                NOW
            )
        ));
        idle.recent_stream_sends = 60;
        assert!(matches!(
            route(&risky, &[idle], &RoutingPolicy::default(), NOW),
            Route::Defer { .. }
        ));
    }

    #[test]
    fn a_streams_risk_is_its_worst_quarantined_rate() {
        let mut a = AccountState::default();
        a.quarantined.insert(
            "v".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.16,
                complaint_rate: 0.0,
            },
        );
        assert_eq!(stream_risk("v", [&a, &AccountState::default()]), 0.16);
        assert_eq!(stream_risk("t", [&a]), 0.0);
    }

    #[test]
    fn an_account_on_probation_takes_its_share_and_the_rest_goes_where_it_went() {
        use crate::domain::reputation::probation::Probation;
        let t = Thresholds::default();
        let probation = AccountState {
            probation: Some(Probation {
                step: 0,
                share: 0.1,
                since: NOW,
            }),
            ..AccountState::default()
        };
        let healthy = AccountState::default();
        let candidates = [
            candidate("primary", &probation, &t),
            candidate("backup", &healthy, &t),
        ];
        let policy = RoutingPolicy::default();
        let drawn = |draw| Message {
            draw,
            ..message(Priority::Normal)
        };
        assert!(account(
            "primary",
            &route(&drawn(0.05), &candidates, &policy, NOW)
        ));
        assert!(account(
            "backup",
            &route(&drawn(0.5), &candidates, &policy, NOW)
        ));
        let alone = [candidate("primary", &probation, &t)];
        match route(&drawn(0.5), &alone, &policy, NOW) {
            Route::Defer { reason, .. } => assert!(reason.contains("probation"), "{reason}"),
            other => panic!("expected a deferral, got {other:?}"),
        }
    }

    #[test]
    fn draws_are_stable_and_spread_evenly() {
        assert_eq!(draw("send:key:a"), draw("send:key:a"));
        let below = (0..10_000)
            .filter(|i| draw(&format!("send:key:{i}")) < 0.1)
            .count();
        assert!((850..1150).contains(&below), "{below} of 10,000 below 0.1");
    }
}
