//! The reputation guard's rules: thresholds, the state of an account (active, warning,
//! paused) and of each stream on it (active or quarantined), and the one transition decided
//! from an account's rolling window after each batch.
//!
//! Rates are judged on the window *minus the streams already quarantined* (warning, pause,
//! quarantine, recovery): once the culprit stream is isolated, its feedback still in flight
//! neither pauses nor flags the account's healthy streams. A critical level (default 9 % bounces, 0.4 % complaints, between the pause level
//! and SES's own) pauses the whole account regardless, as a last line before SES acts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::{Counts, WindowTotals};

/// Rate thresholds of one account (fractions: 0.04 is 4 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Hard bounces per send that raise a warning (default 0.04).
    pub bounce_warn: f64,
    /// Hard bounces per send that quarantine a dominant stream or pause (default 0.08).
    pub bounce_pause: f64,
    /// Hard bounces per send that pause the whole account regardless (default 0.09).
    pub bounce_critical: f64,
    /// Complaints per send that raise a warning (default 0.0008).
    pub complaint_warn: f64,
    /// Complaints per send that quarantine or pause (default 0.003).
    pub complaint_pause: f64,
    /// Complaints per send that pause the whole account regardless (default 0.004).
    pub complaint_critical: f64,
    /// No rate-based transition while the window holds fewer sends (default 200).
    pub min_volume: u64,
    /// A stream with at least this share of the window's bad events is the culprit
    /// (default 0.6).
    pub dominance: f64,
    /// `warning` is left only below this fraction of the warn levels (default 0.8).
    pub recovery: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            bounce_warn: 0.04,
            bounce_pause: 0.08,
            bounce_critical: 0.09,
            complaint_warn: 0.0008,
            complaint_pause: 0.003,
            complaint_critical: 0.004,
            min_volume: 200,
            dominance: 0.6,
            recovery: 0.8,
        }
    }
}

/// Which rate a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Hard bounces per send.
    BounceRate,
    /// Complaints per send.
    ComplaintRate,
}

impl Signal {
    fn bad(self, counts: &Counts) -> u64 {
        match self {
            Signal::BounceRate => counts.hard_bounces,
            Signal::ComplaintRate => counts.complaints,
        }
    }

    fn rate(self, counts: &Counts) -> f64 {
        match self {
            Signal::BounceRate => counts.bounce_rate(),
            Signal::ComplaintRate => counts.complaint_rate(),
        }
    }

    fn levels(self, t: &Thresholds) -> (f64, f64, f64) {
        match self {
            Signal::BounceRate => (t.bounce_warn, t.bounce_pause, t.bounce_critical),
            Signal::ComplaintRate => (t.complaint_warn, t.complaint_pause, t.complaint_critical),
        }
    }
}

/// Why a state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A bounce-rate threshold was crossed.
    BounceRate,
    /// A complaint-rate threshold was crossed.
    ComplaintRate,
    /// Rates fell back (leaving `warning`, or auto-resume).
    Recovered,
    /// A timed pause ran out.
    PauseExpired,
    /// An operator acted.
    Operator,
    /// SES refused a send for the sending rate: a short pause.
    SendingRate,
    /// The 24-hour quota is used up: paused until it frees.
    DailyQuota,
    /// SES says the account (or its configuration set) is paused or suspended.
    SesPaused,
    /// Sends through the account kept failing in transport: a short circuit-breaker pause.
    TransportFailures,
    /// SES or STS refused the account's credentials or permissions: paused until an operator
    /// fixes the account's set-up and resumes it.
    AccessDenied,
}

impl From<Signal> for Cause {
    fn from(signal: Signal) -> Self {
        match signal {
            Signal::BounceRate => Cause::BounceRate,
            Signal::ComplaintRate => Cause::ComplaintRate,
        }
    }
}

/// An account's sending state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Sending normally.
    #[default]
    Active,
    /// A rate is over its warn level: still sending, watched.
    Warning,
    /// Not sending.
    Paused,
}

impl Status {
    /// `active`, `warning`, `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Warning => "warning",
            Status::Paused => "paused",
        }
    }
}

/// A stream taken off an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Why.
    pub cause: Cause,
    /// Since when.
    pub since: Timestamp,
    /// The stream's own bounce rate on the account when it was quarantined: its known risk
    /// wherever it fails over to.
    pub bounce_rate: f64,
    /// The stream's own complaint rate then.
    pub complaint_rate: f64,
}

/// The guard's state of one account, stored as one item and changed only by a conditional
/// write on `version`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountState {
    /// Active, warning or paused.
    pub status: Status,
    /// Why the status is what it is (absent when active from the start).
    pub cause: Option<Cause>,
    /// Since when.
    pub since: Option<Timestamp>,
    /// A pause that ends by itself ends then.
    pub until: Option<Timestamp>,
    /// An operator's note on the last change.
    pub note: Option<String>,
    /// Streams quarantined on this account.
    pub quarantined: BTreeMap<String, Quarantine>,
    /// Store version; 0 when never written. Not part of the stored JSON.
    #[serde(skip)]
    pub version: u64,
}

impl AccountState {
    /// Whether the account takes no mail at `now`.
    pub fn is_paused(&self, now: Timestamp) -> bool {
        self.status == Status::Paused && self.until.is_none_or(|until| until > now)
    }

    /// Whether `stream` is quarantined here.
    pub fn is_quarantined(&self, stream: &str) -> bool {
        self.quarantined.contains_key(stream)
    }
}

/// Rates at the time of a transition, as history and alerts report them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSnapshot {
    /// Account bounce rate over the window.
    pub bounce_rate: f64,
    /// Account complaint rate over the window.
    pub complaint_rate: f64,
    /// Sends in the window.
    pub window_sends: u64,
}

impl RateSnapshot {
    /// The snapshot of a window's totals.
    pub fn of(counts: &Counts) -> Self {
        Self {
            bounce_rate: counts.bounce_rate(),
            complaint_rate: counts.complaint_rate(),
            window_sends: counts.sends,
        }
    }
}

/// One decided change of an account's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The stream it concerns, for a quarantine or its lifting.
    pub stream: Option<String>,
    /// The state name before (`active`, `warning`, `paused`, or for a stream `quarantined`).
    pub from: &'static str,
    /// The state name after.
    pub to: &'static str,
    /// Why.
    pub cause: Cause,
    /// The whole state to write.
    pub next: AccountState,
    /// The rates that decided it.
    pub rates: RateSnapshot,
}

/// One line of an account's history: every state change, by the guard or an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub at: Timestamp,
    /// The account.
    pub account: String,
    /// The stream, for a quarantine or its lifting.
    pub stream: Option<String>,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// Why.
    pub cause: Cause,
    /// An operator's note.
    pub note: Option<String>,
    /// Account bounce rate then.
    pub bounce_rate: f64,
    /// Account complaint rate then.
    pub complaint_rate: f64,
    /// Sends in the window then.
    pub window_sends: u64,
    /// Who: `guard` or `operator:NAME`.
    pub actor: String,
}

impl Transition {
    /// The history entry recording this transition.
    pub fn history(&self, account: &str, actor: &str, at: Timestamp) -> HistoryEntry {
        HistoryEntry {
            at,
            account: account.to_owned(),
            stream: self.stream.clone(),
            from: self.from.to_owned(),
            to: self.to.to_owned(),
            cause: self.cause,
            note: self.next.note.clone(),
            bounce_rate: self.rates.bounce_rate,
            complaint_rate: self.rates.complaint_rate,
            window_sends: self.rates.window_sends,
            actor: actor.to_owned(),
        }
    }
}

/// What operators are told about a transition: the history entry (account, stream, old and
/// new state, cause, rates, actor) and where the affected traffic goes now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The change, as history records it.
    #[serde(flatten)]
    pub change: HistoryEntry,
    /// Where the affected traffic goes now.
    pub traffic: String,
}

impl Alert {
    /// A one-line summary (an SNS subject is at most 100 characters).
    pub fn subject(&self) -> String {
        let c = &self.change;
        let what = match &c.stream {
            Some(stream) => format!(
                "sesguard: {} stream {stream} {} -> {}",
                c.account, c.from, c.to
            ),
            None => format!("sesguard: {} {} -> {}", c.account, c.from, c.to),
        };
        what.chars().take(100).collect()
    }
}

/// Where traffic goes after `account` moves from `from` to `to` (for `stream`, when the
/// change is a quarantine or its lifting), given each stream's accounts in failover order.
pub fn traffic_after(
    account: &str,
    stream: Option<&str>,
    from: &str,
    to: &str,
    streams: &[(&str, &[String])],
) -> String {
    let affected: Vec<&(&str, &[String])> = streams
        .iter()
        .filter(|(name, accounts)| {
            stream.is_none_or(|s| s == *name) && accounts.iter().any(|a| a == account)
        })
        .collect();
    if affected.is_empty() {
        return format!("no configured stream uses `{account}`");
    }
    let resumed = to == "active" && (from == "paused" || from == "quarantined");
    if !resumed && to != "paused" && to != "quarantined" {
        return format!("traffic unchanged: {account} keeps sending");
    }
    let lines: Vec<String> = affected
        .iter()
        .map(|(name, accounts)| {
            if resumed {
                return format!("{name} may use {account} again");
            }
            let position = accounts.iter().position(|a| a == account).unwrap_or(0);
            match accounts.get(position + 1..).and_then(|rest| rest.first()) {
                Some(next) => format!("{name} fails over to {next}"),
                None => format!("{name} has no account after {account}: deferred"),
            }
        })
        .collect();
    lines.join("; ")
}

/// Decides the next transition of an account from its window, if any. `auto_resume` lets
/// rate pauses and quarantines lift themselves once the rate is back under the warn level.
pub fn evaluate(
    state: &AccountState,
    window: &WindowTotals,
    thresholds: &Thresholds,
    auto_resume: bool,
    now: Timestamp,
) -> Option<Transition> {
    let rates = RateSnapshot::of(&window.total);
    let change = |next: AccountState, from, to, cause, stream: Option<String>| {
        Some(Transition {
            stream,
            from,
            to,
            cause,
            next,
            rates,
        })
    };
    let mut next = state.clone();
    let from = state.status.as_str();

    if state.status == Status::Paused && state.until.is_some_and(|until| until <= now) {
        next.status = Status::Active;
        next.cause = Some(Cause::PauseExpired);
        next.since = Some(now);
        next.until = None;
        next.note = None;
        return change(next, from, "active", Cause::PauseExpired, None);
    }

    let signals = [Signal::BounceRate, Signal::ComplaintRate];
    // The streams still sending: quarantined streams' late feedback judges nothing but the
    // critical level.
    let residual = residual(window, &state.quarantined);
    let enough = residual.sends >= thresholds.min_volume;

    if window.total.sends >= thresholds.min_volume && state.status != Status::Paused {
        // Last line: the account as SES sees it.
        for signal in signals {
            let (_, _, critical) = signal.levels(thresholds);
            if signal.rate(&window.total) >= critical {
                return change(
                    paused(state, signal, now),
                    from,
                    "paused",
                    signal.into(),
                    None,
                );
            }
        }
    }
    if enough && state.status != Status::Paused {
        for signal in signals {
            let (_, pause, _) = signal.levels(thresholds);
            if signal.rate(&residual) < pause {
                continue;
            }
            let culprit = dominant(
                window,
                &residual,
                &state.quarantined,
                signal,
                thresholds.dominance,
            );
            return match culprit {
                Some((stream, counts)) => {
                    next.quarantined.insert(
                        stream.clone(),
                        Quarantine {
                            cause: signal.into(),
                            since: now,
                            bounce_rate: counts.bounce_rate(),
                            complaint_rate: counts.complaint_rate(),
                        },
                    );
                    change(next, "active", "quarantined", signal.into(), Some(stream))
                }
                None => change(
                    paused(state, signal, now),
                    from,
                    "paused",
                    signal.into(),
                    None,
                ),
            };
        }
    }

    let over_warn = |scale: f64| {
        signals.into_iter().find(|s| {
            let (warn, _, _) = s.levels(thresholds);
            s.rate(&residual) >= warn * scale
        })
    };
    let recovered = match state.status {
        Status::Active => false,
        Status::Warning => over_warn(thresholds.recovery).is_none(),
        Status::Paused => auto_resume && rate_paused(state) && over_warn(1.0).is_none(),
    };
    if recovered {
        next.status = Status::Active;
        next.cause = Some(Cause::Recovered);
        next.since = Some(now);
        return change(next, from, "active", Cause::Recovered, None);
    }
    if state.status == Status::Active
        && enough
        && let Some(signal) = over_warn(1.0)
    {
        next.status = Status::Warning;
        next.cause = Some(signal.into());
        next.since = Some(now);
        return change(next, from, "warning", signal.into(), None);
    }
    if auto_resume {
        for stream in state.quarantined.keys() {
            let counts = window.streams.get(stream).copied().unwrap_or_default();
            let below = signals
                .into_iter()
                .all(|s| s.rate(&counts) < s.levels(thresholds).0);
            if below {
                next.quarantined.remove(stream);
                return change(
                    next,
                    "quarantined",
                    "active",
                    Cause::Recovered,
                    Some(stream.clone()),
                );
            }
        }
    }
    None
}

fn paused(state: &AccountState, signal: Signal, now: Timestamp) -> AccountState {
    AccountState {
        status: Status::Paused,
        cause: Some(signal.into()),
        since: Some(now),
        until: None,
        note: None,
        ..state.clone()
    }
}

fn rate_paused(state: &AccountState) -> bool {
    matches!(state.cause, Some(Cause::BounceRate | Cause::ComplaintRate))
}

/// The window's totals without the quarantined streams.
fn residual(window: &WindowTotals, quarantined: &BTreeMap<String, Quarantine>) -> Counts {
    let mut values = window.total.values();
    for stream in quarantined.keys() {
        if let Some(counts) = window.streams.get(stream) {
            for (total, part) in values.iter_mut().zip(counts.values()) {
                *total = total.saturating_sub(part);
            }
        }
    }
    Counts::from_values(values)
}

/// The stream still sending with at least `share` of the bad events of the streams still
/// sending (`residual`): a stream quarantined earlier neither counts as a candidate nor dilutes
/// a second culprit's share.
fn dominant(
    window: &WindowTotals,
    residual: &Counts,
    quarantined: &BTreeMap<String, Quarantine>,
    signal: Signal,
    share: f64,
) -> Option<(String, Counts)> {
    let all_bad = signal.bad(residual);
    if all_bad == 0 {
        return None;
    }
    window
        .streams
        .iter()
        .filter(|(stream, _)| !quarantined.contains_key(*stream))
        .find(|(_, counts)| signal.bad(counts) as f64 / all_bad as f64 >= share)
        .map(|(stream, counts)| (stream.clone(), *counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    fn counts(sends: u64, hard_bounces: u64, complaints: u64) -> Counts {
        Counts {
            sends,
            hard_bounces,
            complaints,
            ..Counts::default()
        }
    }

    fn window(streams: &[(&str, Counts)]) -> WindowTotals {
        let mut totals = WindowTotals::default();
        for (name, c) in streams {
            totals.total += *c;
            totals.streams.insert((*name).to_owned(), *c);
        }
        totals
    }

    fn decide(state: &AccountState, w: &WindowTotals) -> Option<Transition> {
        evaluate(state, w, &Thresholds::default(), false, NOW)
    }

    #[test]
    fn nothing_moves_below_the_minimum_volume() {
        let w = window(&[("verification", counts(199, 100, 10))]);
        assert_eq!(decide(&AccountState::default(), &w), None);
    }

    #[test]
    fn a_dominant_stream_is_quarantined_and_the_account_keeps_sending() {
        let w = window(&[
            ("verification", counts(500, 75, 0)),
            ("transactional", counts(500, 5, 0)),
        ]);
        let t = decide(&AccountState::default(), &w).unwrap();
        assert_eq!(
            (t.from, t.to, t.stream.as_deref()),
            ("active", "quarantined", Some("verification"))
        );
        assert_eq!(t.cause, Cause::BounceRate);
        assert_eq!(t.next.status, Status::Active);
        assert_eq!(t.next.quarantined["verification"].bounce_rate, 0.15);
        assert_eq!(t.rates.bounce_rate, 0.08);
    }

    #[test]
    fn without_a_dominant_stream_the_whole_account_pauses() {
        let w = window(&[("a", counts(500, 40, 0)), ("b", counts(500, 40, 0))]);
        let t = decide(&AccountState::default(), &w).unwrap();
        assert_eq!((t.from, t.to, t.stream), ("active", "paused", None));
        assert!(t.next.is_paused(NOW));
        assert_eq!(t.next.until, None, "a rate pause stays until lifted");
    }

    #[test]
    fn after_a_quarantine_the_culprits_late_feedback_does_not_pause_the_rest() {
        let w = window(&[
            ("verification", counts(500, 85, 0)),
            ("transactional", counts(500, 3, 0)),
        ]);
        let mut state = AccountState::default();
        state.quarantined.insert(
            "verification".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.15,
                complaint_rate: 0.0,
            },
        );
        assert_eq!(
            decide(&state, &w),
            None,
            "8.8 % overall, 0.6 % without the quarantined stream"
        );
        // A warning raised before the quarantine clears: the streams still sending are healthy.
        state.status = Status::Warning;
        let cleared = decide(&state, &w).unwrap();
        assert_eq!(
            (cleared.from, cleared.to, cleared.cause),
            ("warning", "active", Cause::Recovered)
        );
        assert!(cleared.next.is_quarantined("verification"));
    }

    #[test]
    fn the_critical_level_pauses_the_account_even_with_the_culprit_quarantined() {
        let w = window(&[
            ("verification", counts(500, 92, 0)),
            ("transactional", counts(500, 0, 0)),
        ]);
        let mut state = AccountState::default();
        state.quarantined.insert(
            "verification".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.15,
                complaint_rate: 0.0,
            },
        );
        let t = decide(&state, &w).unwrap();
        assert_eq!((t.to, t.cause), ("paused", Cause::BounceRate));
        assert!(
            t.next.is_quarantined("verification"),
            "the quarantine is kept"
        );
    }

    #[test]
    fn a_second_culprit_is_chosen_among_the_streams_still_sending() {
        // Verification was quarantined at 8.09 %; transactional now brings 170 hard bounces in
        // 1,000 sends: 8.5 % of the traffic still sending, 8.86 % of the account, under the
        // 9 % critical level. Transactional goes, bulk keeps sending on the account.
        let w = window(&[
            ("verification", counts(20_000, 1_779, 0)),
            ("transactional", counts(1_000, 170, 0)),
            ("bulk", counts(1_000, 0, 0)),
        ]);
        let mut state = AccountState::default();
        state.quarantined.insert(
            "verification".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.0809,
                complaint_rate: 0.0,
            },
        );
        let t = decide(&state, &w).unwrap();
        assert_eq!(
            (t.from, t.to, t.stream.as_deref()),
            ("active", "quarantined", Some("transactional"))
        );
        assert_eq!(
            t.next.status,
            Status::Active,
            "the account keeps sending bulk"
        );
        assert!(t.next.is_quarantined("verification"));
    }

    #[test]
    fn complaints_follow_the_same_rules_at_their_own_levels() {
        let w = window(&[
            ("bulk", counts(10_000, 0, 55)),
            ("transactional", counts(10_000, 0, 5)),
        ]);
        let t = decide(&AccountState::default(), &w).unwrap();
        assert_eq!(
            (t.to, t.stream.as_deref(), t.cause),
            ("quarantined", Some("bulk"), Cause::ComplaintRate)
        );
        let warn = window(&[("bulk", counts(10_000, 0, 17))]);
        assert_eq!(
            decide(&AccountState::default(), &warn).unwrap().to,
            "warning"
        );
    }

    #[test]
    fn warning_is_entered_at_the_warn_level_and_left_only_below_eighty_percent_of_it() {
        let at_warn = window(&[("s", counts(1000, 40, 0))]);
        let t = decide(&AccountState::default(), &at_warn).unwrap();
        assert_eq!((t.from, t.to), ("active", "warning"));
        let warning = t.next;
        assert_eq!(
            decide(&warning, &window(&[("s", counts(1000, 33, 0))])),
            None,
            "3.3 % is above 3.2 %"
        );
        let back = decide(&warning, &window(&[("s", counts(1000, 31, 0))])).unwrap();
        assert_eq!(
            (back.from, back.to, back.cause),
            ("warning", "active", Cause::Recovered)
        );
    }

    #[test]
    fn a_rate_pause_stays_unless_the_account_opts_into_auto_resume() {
        let paused = paused(&AccountState::default(), Signal::BounceRate, NOW);
        let calm = window(&[("s", counts(1000, 10, 0))]);
        assert_eq!(decide(&paused, &calm), None);
        let resumed = evaluate(&paused, &calm, &Thresholds::default(), true, NOW).unwrap();
        assert_eq!((resumed.from, resumed.to), ("paused", "active"));
    }

    #[test]
    fn an_operator_pause_is_not_lifted_by_auto_resume_but_a_timed_one_ends() {
        let mut operator = paused(&AccountState::default(), Signal::BounceRate, NOW);
        operator.cause = Some(Cause::Operator);
        let calm = window(&[("s", counts(1000, 0, 0))]);
        assert_eq!(
            evaluate(&operator, &calm, &Thresholds::default(), true, NOW),
            None
        );
        operator.until = Some(NOW);
        let ended = decide(&operator, &calm).unwrap();
        assert_eq!((ended.to, ended.cause), ("active", Cause::PauseExpired));
    }

    #[test]
    fn auto_resume_lifts_a_quarantine_once_the_streams_rate_is_under_warn() {
        let mut state = AccountState::default();
        state.quarantined.insert(
            "v".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.2,
                complaint_rate: 0.0,
            },
        );
        let w = window(&[("v", counts(1000, 30, 0))]);
        assert_eq!(decide(&state, &w), None);
        let lifted = evaluate(&state, &w, &Thresholds::default(), true, NOW).unwrap();
        assert_eq!(
            (lifted.from, lifted.to, lifted.stream.as_deref()),
            ("quarantined", "active", Some("v"))
        );
        assert!(lifted.next.quarantined.is_empty());
    }

    #[test]
    fn alerts_say_where_the_traffic_goes_now() {
        let both = ["primary".to_owned(), "backup".to_owned()];
        let alone = ["primary".to_owned()];
        let streams: [(&str, &[String]); 2] = [("verification", &both), ("bulk", &alone)];
        assert_eq!(
            traffic_after(
                "primary",
                Some("verification"),
                "active",
                "quarantined",
                &streams
            ),
            "verification fails over to backup"
        );
        assert_eq!(
            traffic_after("primary", None, "warning", "paused", &streams),
            "verification fails over to backup; bulk has no account after primary: deferred"
        );
        assert_eq!(
            traffic_after("backup", None, "paused", "active", &streams),
            "verification may use backup again"
        );
        assert_eq!(
            traffic_after(
                "primary",
                Some("verification"),
                "quarantined",
                "active",
                &streams
            ),
            "verification may use primary again"
        );
        assert_eq!(
            traffic_after("primary", None, "active", "warning", &streams),
            "traffic unchanged: primary keeps sending"
        );
        assert_eq!(
            traffic_after("primary", None, "warning", "active", &streams),
            "traffic unchanged: primary keeps sending"
        );
        assert_eq!(
            traffic_after("other", None, "active", "paused", &streams),
            "no configured stream uses `other`"
        );
    }

    #[test]
    fn an_alert_subject_fits_sns() {
        let entry = HistoryEntry {
            at: NOW,
            account: "a".repeat(120),
            stream: None,
            from: "active".into(),
            to: "paused".into(),
            cause: Cause::BounceRate,
            note: None,
            bounce_rate: 0.1,
            complaint_rate: 0.0,
            window_sends: 1,
            actor: "guard".into(),
        };
        let alert = Alert {
            change: entry,
            traffic: String::new(),
        };
        assert_eq!(alert.subject().chars().count(), 100);
        assert!(alert.subject().starts_with("sesguard: aaa"));
    }
}
