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
use crate::domain::reputation::evidence::Evidence;
pub use crate::domain::reputation::history::{Alert, HistoryEntry, RateSnapshot, traffic_after};
pub use crate::domain::reputation::probation::{Probation, Recovery, Return};
pub use crate::domain::reputation::thresholds::Thresholds;

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

impl Cause {
    /// Whether coming back from a pause or quarantine for this cause goes through probation:
    /// a reputation problem (a rate, or an operator's call) does; an operational one (SES or
    /// STS refusing, quota, send rate, transport) does not — its mail was never the problem.
    pub fn needs_probation(self) -> bool {
        matches!(
            self,
            Cause::BounceRate | Cause::ComplaintRate | Cause::Operator
        )
    }
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
    /// When the account was last resumed: mail sent before is recorded but not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged_since: Option<Timestamp>,
    /// The account's probation after a resume, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probation: Option<Probation>,
    /// Streams back from a quarantine on this account.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub returned: BTreeMap<String, Return>,
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

    /// The share of `stream`'s traffic the account takes now: below 1 while the account or
    /// the stream on it is on probation.
    pub fn share_for(&self, stream: &str) -> f64 {
        let account = self.probation.map_or(1.0, |p| p.share);
        let returned = self
            .returned
            .get(stream)
            .and_then(|r| r.probation)
            .map_or(1.0, |p| p.share);
        account.min(returned)
    }

    /// The probation of the account (`None`) or of a stream on it, if on one.
    pub fn probation_of(&self, stream: Option<&str>) -> Option<Probation> {
        match stream {
            Some(stream) => self.returned.get(stream).and_then(|r| r.probation),
            None => self.probation,
        }
    }

    /// The account's state as history names it: `paused`, `warning`, `probation` or `active`.
    pub fn name(&self) -> &'static str {
        match (self.status, self.probation) {
            (Status::Active, Some(_)) => "probation",
            (status, _) => status.as_str(),
        }
    }

    /// The times from which the account's mail is judged apart from what came before: its
    /// resume, its streams' returns, and the start of every probation step. Counter buckets
    /// start afresh at each of these, so a bucket never holds mail from both sides.
    pub fn origins(&self) -> Vec<Timestamp> {
        let mut origins: Vec<Timestamp> = self
            .judged_since
            .into_iter()
            .chain(self.probation.map(|p| p.since))
            .chain(
                self.returned
                    .values()
                    .flat_map(|r| std::iter::once(r.since).chain(r.probation.map(|p| p.since))),
            )
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    /// Takes `stream` off the account from `now` for `cause`, keeping its rates here (`counts`)
    /// as its known risk wherever it fails over to; it is no longer returning.
    pub fn quarantine(&mut self, stream: &str, cause: Cause, counts: &Counts, now: Timestamp) {
        self.returned.remove(stream);
        self.quarantined.insert(
            stream.to_owned(),
            Quarantine {
                cause,
                since: now,
                bounce_rate: counts.bounce_rate(),
                complaint_rate: counts.complaint_rate(),
            },
        );
    }

    /// Puts `stream` back on the account from `now`, on the ramp's first step.
    pub fn lift(&mut self, stream: &str, probation: Option<Probation>, now: Timestamp) -> bool {
        let lifted = self.quarantined.remove(stream).is_some();
        if lifted {
            self.returned.insert(
                stream.to_owned(),
                Return {
                    since: now,
                    probation,
                },
            );
        }
        lifted
    }

    /// Lets the account send again from `now`, on the ramp's first step.
    pub fn resume(&mut self, cause: Cause, probation: Option<Probation>, now: Timestamp) {
        self.status = Status::Active;
        self.cause = Some(cause);
        self.since = Some(now);
        self.until = None;
        self.judged_since = Some(now);
        self.probation = probation;
    }
}

/// One decided change of an account's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The stream it concerns, for a quarantine, its lifting or its probation.
    pub stream: Option<String>,
    /// The state name before (`active`, `warning`, `paused`, `probation`, or for a stream
    /// `quarantined`, `probation`, `active`).
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

impl Transition {
    /// The share of the traffic the account (or the stream on it) takes after the change,
    /// when it is on probation.
    pub fn share(&self) -> Option<f64> {
        self.next
            .probation_of(self.stream.as_deref())
            .map(|p| p.share)
    }

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
            share: self.share(),
            bounce_rate: self.rates.bounce_rate,
            complaint_rate: self.rates.complaint_rate,
            window_sends: self.rates.window_sends,
            actor: actor.to_owned(),
        }
    }
}

/// A stream's state on an account as history names it: `quarantined`, `probation` or
/// `active`.
pub fn stream_name(state: &AccountState, stream: &str) -> &'static str {
    if state.is_quarantined(stream) {
        "quarantined"
    } else if state
        .returned
        .get(stream)
        .is_some_and(|r| r.probation.is_some())
    {
        "probation"
    } else {
        "active"
    }
}

/// Decides the next transition of an account from the evidence, if any. One transition per
/// call, the most urgent first: a timed pause ending, the critical level, the pause level
/// (quarantining the culprit or pausing), a probation step over the pause level, warning,
/// recovery, a probation step passed, a quarantine lifted.
pub fn evaluate(
    state: &AccountState,
    evidence: &Evidence,
    thresholds: &Thresholds,
    recovery: &Recovery<'_>,
    now: Timestamp,
) -> Option<Transition> {
    let judged = &evidence.judged;
    let rates = RateSnapshot::of(&judged.total);
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
    let from = state.name();
    let sending = state.status != Status::Paused;
    let pause = |signal: Signal| {
        change(
            paused(state, signal, now),
            from,
            "paused",
            signal.into(),
            None,
        )
    };

    if state.status == Status::Paused && state.until.is_some_and(|until| until <= now) {
        next.status = Status::Active;
        next.cause = Some(Cause::PauseExpired);
        next.since = Some(now);
        next.until = None;
        next.note = None;
        return change(next, from, next_name(state), Cause::PauseExpired, None);
    }

    let signals = [Signal::BounceRate, Signal::ComplaintRate];
    let over = |counts: &Counts, level: fn(&Thresholds) -> [f64; 2]| {
        let levels = level(thresholds);
        signals
            .into_iter()
            .zip(levels)
            .find(|(s, at)| s.rate(counts) >= *at)
            .map(|(s, _)| s)
    };
    let volume = |counts: &Counts| counts.sends >= thresholds.min_volume;
    // The streams still sending: quarantined streams' late feedback judges nothing but the
    // critical level.
    let residual = residual(judged, &state.quarantined);

    if sending && volume(&judged.total) {
        // Last line: the account as SES sees it, since it was last resumed.
        if let Some(signal) = over(&judged.total, critical_level) {
            return pause(signal);
        }
    }
    if sending
        && volume(&residual)
        && let Some(signal) = over(&residual, pause_level)
    {
        let culprit = dominant(judged, &residual, state, signal, thresholds.dominance);
        return match culprit {
            Some((stream, counts)) => {
                let was = stream_name(state, &stream);
                next.quarantine(&stream, signal.into(), &counts, now);
                change(next, was, "quarantined", signal.into(), Some(stream))
            }
            None => pause(signal),
        };
    }
    // A probation step over the pause level sends it back.
    if sending
        && state.probation.is_some()
        && volume(&evidence.account_step)
        && let Some(signal) = over(&evidence.account_step, pause_level)
    {
        return pause(signal);
    }
    for (stream, counts) in &evidence.stream_steps {
        if sending
            && stream_name(state, stream) == "probation"
            && volume(counts)
            && let Some(signal) = over(counts, pause_level)
        {
            next.quarantine(stream, signal.into(), counts, now);
            return change(
                next,
                "probation",
                "quarantined",
                signal.into(),
                Some(stream.clone()),
            );
        }
    }

    let under_warn = |counts: &Counts, scale: f64| {
        signals
            .into_iter()
            .all(|s| s.rate(counts) < s.levels(thresholds).0 * scale)
    };
    let recovered = match state.status {
        Status::Active => false,
        Status::Warning => under_warn(&residual, thresholds.recovery),
        // Evidence, never an empty window: enough mail, all of it under the warn levels.
        Status::Paused => {
            recovery.auto_resume
                && rate_paused(state)
                && volume(&residual)
                && under_warn(&residual, 1.0)
        }
    };
    if recovered {
        if state.status == Status::Paused {
            next.resume(Cause::Recovered, recovery.start(now), now);
        } else {
            next.status = Status::Active;
            next.cause = Some(Cause::Recovered);
            next.since = Some(now);
        }
        return change(next.clone(), from, next.name(), Cause::Recovered, None);
    }
    if state.status == Status::Active
        && volume(&residual)
        && let Some(signal) = over(&residual, warn_level)
    {
        next.status = Status::Warning;
        next.cause = Some(signal.into());
        next.since = Some(now);
        return change(next, from, "warning", signal.into(), None);
    }
    if let Some(step) = state.probation
        && state.status == Status::Active
        && recovery.settled(step.since, now)
        && volume(&evidence.account_step)
        && under_warn(&evidence.account_step, 1.0)
    {
        next.probation = recovery.step(step.step + 1, now);
        return change(next.clone(), from, next.name(), Cause::Recovered, None);
    }
    for (stream, counts) in &evidence.stream_steps {
        let Some(step) = state.returned.get(stream).and_then(|r| r.probation) else {
            continue;
        };
        if sending && recovery.settled(step.since, now) && volume(counts) && under_warn(counts, 1.0)
        {
            if let Some(returned) = next.returned.get_mut(stream) {
                returned.probation = recovery.step(step.step + 1, now);
            }
            let to = stream_name(&next, stream);
            return change(
                next,
                "probation",
                to,
                Cause::Recovered,
                Some(stream.clone()),
            );
        }
    }
    if recovery.auto_resume {
        for stream in state.quarantined.keys() {
            let counts = judged.streams.get(stream).copied().unwrap_or_default();
            if volume(&counts) && under_warn(&counts, 1.0) {
                next.lift(stream, recovery.start(now), now);
                let to = stream_name(&next, stream);
                return change(
                    next,
                    "quarantined",
                    to,
                    Cause::Recovered,
                    Some(stream.clone()),
                );
            }
        }
    }
    None
}

/// The name of the state a timed pause ends in.
fn next_name(state: &AccountState) -> &'static str {
    if state.probation.is_some() {
        "probation"
    } else {
        "active"
    }
}

fn warn_level(t: &Thresholds) -> [f64; 2] {
    [t.bounce_warn, t.complaint_warn]
}

fn pause_level(t: &Thresholds) -> [f64; 2] {
    [t.bounce_pause, t.complaint_pause]
}

fn critical_level(t: &Thresholds) -> [f64; 2] {
    [t.bounce_critical, t.complaint_critical]
}

fn paused(state: &AccountState, signal: Signal, now: Timestamp) -> AccountState {
    AccountState {
        status: Status::Paused,
        cause: Some(signal.into()),
        since: Some(now),
        until: None,
        note: None,
        probation: None,
        ..state.clone()
    }
}

fn rate_paused(state: &AccountState) -> bool {
    matches!(state.cause, Some(Cause::BounceRate | Cause::ComplaintRate))
}

/// The judged window's totals without the quarantined streams.
fn residual(judged: &WindowTotals, quarantined: &BTreeMap<String, Quarantine>) -> Counts {
    let mut residual = judged.total;
    for stream in quarantined.keys() {
        if let Some(counts) = judged.streams.get(stream) {
            residual -= *counts;
        }
    }
    residual
}

/// The stream still sending with at least `share` of the bad events of the streams still
/// sending (`residual`): a stream quarantined earlier neither counts as a candidate nor dilutes
/// a second culprit's share.
fn dominant(
    judged: &WindowTotals,
    residual: &Counts,
    state: &AccountState,
    signal: Signal,
    share: f64,
) -> Option<(String, Counts)> {
    let all_bad = signal.bad(residual);
    if all_bad == 0 {
        return None;
    }
    judged
        .streams
        .iter()
        .filter(|(stream, _)| !state.is_quarantined(stream))
        .find(|(_, counts)| signal.bad(counts) as f64 / all_bad as f64 >= share)
        .map(|(stream, counts)| (stream.clone(), *counts))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::reputation::counters::Bucket;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    pub(crate) fn counts(sends: u64, hard_bounces: u64, complaints: u64) -> Counts {
        Counts {
            sends,
            hard_bounces,
            complaints,
            ..Counts::default()
        }
    }

    pub(crate) fn window(streams: &[(&str, Counts)]) -> WindowTotals {
        let mut totals = WindowTotals::default();
        for (name, c) in streams {
            totals.total += *c;
            totals.streams.insert((*name).to_owned(), *c);
        }
        totals
    }

    const STILL: Recovery<'static> = Recovery {
        auto_resume: false,
        ramp: &[],
        settle: SETTLE,
    };
    const AUTO: Recovery<'static> = Recovery {
        auto_resume: true,
        ramp: &[],
        settle: SETTLE,
    };
    const SETTLE: std::time::Duration = std::time::Duration::from_secs(600);

    fn decide(state: &AccountState, w: &WindowTotals) -> Option<Transition> {
        decide_with(state, w, &STILL)
    }

    fn decide_with(
        state: &AccountState,
        w: &WindowTotals,
        recovery: &Recovery<'_>,
    ) -> Option<Transition> {
        evaluate(
            state,
            &Evidence::uncut(w.clone()),
            &Thresholds::default(),
            recovery,
            NOW,
        )
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
        let resumed = decide_with(&paused, &calm, &AUTO).unwrap();
        assert_eq!((resumed.from, resumed.to), ("paused", "active"));
    }

    #[test]
    fn an_operator_pause_is_not_lifted_by_auto_resume_but_a_timed_one_ends() {
        let mut operator = paused(&AccountState::default(), Signal::BounceRate, NOW);
        operator.cause = Some(Cause::Operator);
        let calm = window(&[("s", counts(1000, 0, 0))]);
        assert_eq!(decide_with(&operator, &calm, &AUTO), None);
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
        let lifted = decide_with(&state, &w, &AUTO).unwrap();
        assert_eq!(
            (lifted.from, lifted.to, lifted.stream.as_deref()),
            ("quarantined", "active", Some("v"))
        );
        assert!(lifted.next.quarantined.is_empty());
    }

    const RAMP: Recovery<'static> = Recovery {
        auto_resume: false,
        ramp: &[0.1, 0.25, 0.5],
        settle: SETTLE,
    };

    fn at(minutes: i64) -> Timestamp {
        NOW.plus(std::time::Duration::from_secs(60 * minutes as u64))
    }

    fn judge(state: &AccountState, buckets: &[Bucket], now: Timestamp) -> Option<Transition> {
        let evidence = Evidence::gather(buckets, NOW, now, state);
        evaluate(state, &evidence, &Thresholds::default(), &RAMP, now)
    }

    /// 400 sends and 36 hard bounces paused the primary (9 %); the operator resumed it at
    /// minute 10.
    fn resumed_after_the_incident() -> (AccountState, Vec<Bucket>) {
        let mut state = paused(&AccountState::default(), Signal::BounceRate, at(5));
        state.resume(Cause::Operator, RAMP.start(at(10)), at(10));
        let incident = Bucket::of(NOW, &[("bulk", counts(400, 36, 0))]);
        (state, vec![incident])
    }

    #[test]
    fn feedback_about_mail_sent_before_a_resume_does_not_pause_again() {
        let (state, mut buckets) = resumed_after_the_incident();
        assert_eq!(state.name(), "probation");
        // A late delivery and four late bounces, all about the incident's mail.
        buckets[0].total.deliveries += 1;
        buckets[0].total.hard_bounces += 4;
        assert_eq!(judge(&state, &buckets, at(11)), None);
    }

    #[test]
    fn mail_sent_after_a_resume_is_judged_and_can_pause_again_at_once() {
        let (state, mut buckets) = resumed_after_the_incident();
        buckets.push(Bucket::of(at(10), &[("bulk", counts(250, 25, 0))]));
        let t = judge(&state, &buckets, at(12)).unwrap();
        assert_eq!(
            (t.from, t.to, t.cause),
            ("probation", "paused", Cause::BounceRate)
        );
        assert_eq!(
            t.rates.window_sends, 250,
            "judged on the mail since the resume"
        );
        assert_eq!(t.next.probation, None);
    }

    #[test]
    fn a_probation_step_passes_on_enough_new_sends_under_the_warn_levels() {
        let (state, mut buckets) = resumed_after_the_incident();
        buckets.push(Bucket::of(at(10), &[("bulk", counts(150, 2, 0))]));
        assert_eq!(judge(&state, &buckets, at(20)), None, "150 sends: not yet");
        buckets.push(Bucket::of(at(25), &[("bulk", counts(60, 1, 0))]));
        let t = judge(&state, &buckets, at(30)).unwrap();
        assert_eq!(
            (t.from, t.to, t.cause),
            ("probation", "probation", Cause::Recovered)
        );
        assert_eq!(t.share(), Some(0.25));
        // The next step starts afresh: its evidence is the mail sent from now on.
        assert_eq!(judge(&t.next, &buckets, at(31)), None);
        let mut last = t.next.clone();
        last.probation = Some(Probation {
            step: 2,
            share: 0.5,
            since: at(31),
        });
        buckets.push(Bucket::of(at(31), &[("bulk", counts(300, 3, 0))]));
        assert_eq!(
            judge(&last, &buckets, at(40)),
            None,
            "nine minutes in: its bounces may still be on their way"
        );
        let done = judge(&last, &buckets, at(45)).unwrap();
        assert_eq!((done.from, done.to), ("probation", "active"));
        assert_eq!(done.share(), None);
    }

    #[test]
    fn a_probation_step_over_the_pause_level_pauses_the_account_again() {
        let (mut state, mut buckets) = resumed_after_the_incident();
        // Clean since the resume, but the latest step relapses on its own.
        state.probation = Some(Probation {
            step: 1,
            share: 0.25,
            since: at(30),
        });
        buckets.push(Bucket::of(at(10), &[("bulk", counts(2_000, 20, 0))]));
        buckets.push(Bucket::of(at(30), &[("bulk", counts(200, 17, 0))]));
        let t = judge(&state, &buckets, at(40)).unwrap();
        assert_eq!((t.from, t.to), ("probation", "paused"));
    }

    #[test]
    fn a_stream_back_from_quarantine_is_judged_on_its_new_mail_and_quarantined_again_on_a_relapse()
    {
        let mut state = AccountState::default();
        state.quarantined.insert(
            "verification".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: at(5),
                bounce_rate: 0.15,
                complaint_rate: 0.0,
            },
        );
        state.lift("verification", RAMP.start(at(10)), at(10));
        assert_eq!(stream_name(&state, "verification"), "probation");
        let mut buckets = vec![Bucket::of(
            NOW,
            &[
                ("verification", counts(1_000, 150, 0)),
                ("bulk", counts(1_000, 5, 0)),
            ],
        )];
        assert_eq!(
            judge(&state, &buckets, at(11)),
            None,
            "its incident mail no longer counts against the account"
        );
        buckets.push(Bucket::of(at(10), &[("verification", counts(200, 18, 0))]));
        let t = judge(&state, &buckets, at(20)).unwrap();
        assert_eq!(
            (t.from, t.to, t.stream.as_deref()),
            ("probation", "quarantined", Some("verification"))
        );
        assert!(t.next.returned.is_empty());
    }

    #[test]
    fn auto_resume_never_acts_on_an_empty_window_and_starts_probation_on_evidence() {
        let auto = Recovery {
            auto_resume: true,
            ..RAMP
        };
        let paused = paused(&AccountState::default(), Signal::BounceRate, NOW);
        let empty = Evidence::uncut(window(&[]));
        let decide = |e: &Evidence| evaluate(&paused, e, &Thresholds::default(), &auto, NOW);
        assert_eq!(decide(&empty), None, "no mail, no evidence");
        let calm = Evidence::uncut(window(&[("s", counts(1000, 10, 0))]));
        let resumed = decide(&calm).unwrap();
        assert_eq!((resumed.from, resumed.to), ("paused", "probation"));
        assert_eq!(resumed.next.judged_since, Some(NOW));
        let mut quarantined = AccountState::default();
        quarantined.quarantined.insert(
            "v".into(),
            Quarantine {
                cause: Cause::BounceRate,
                since: NOW,
                bounce_rate: 0.2,
                complaint_rate: 0.0,
            },
        );
        let aged_out = Evidence::uncut(window(&[("other", counts(1000, 0, 0))]));
        assert_eq!(
            evaluate(&quarantined, &aged_out, &Thresholds::default(), &auto, NOW),
            None,
            "a quarantined stream with no mail in the window stays out"
        );
    }
}
