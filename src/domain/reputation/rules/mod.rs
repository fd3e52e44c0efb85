//! The guard's rules: the one transition decided from an account's state and evidence, tried
//! in order of urgency, with the invariant enforced in one place — no automatic transition
//! sends more while the account is over SES's line as SES sees it. Pure: the review in
//! [`crate::app::review`] reads, calls [`evaluate`] until it returns nothing, and writes.

use std::collections::BTreeMap;

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::confidence::Confidence;
use crate::domain::reputation::counters::{Counts, WindowTotals};
use crate::domain::reputation::evidence::Evidence;
use crate::domain::reputation::guard::Transition;
use crate::domain::reputation::history::RateSnapshot;
use crate::domain::reputation::probation::Recovery;
use crate::domain::reputation::ses_view::SesView;
use crate::domain::reputation::state::{
    AccountState, Cause, Quarantine, Signal, StateName, Status, stream_name,
};
use crate::domain::reputation::thresholds::Thresholds;

/// How many transitions one review applies to an account at most before it stops deciding:
/// enough for the longest chains the rules make (a timed pause ending, a culprit quarantined
/// for each rate, then another, a feedback gap recorded), a bound should a rule ever undo
/// another.
pub const MAX_STEPS: usize = 8;

/// Decides the next transition of an account from the evidence, if any: the first rule that
/// applies, most urgent first (a timed pause ending, SES's line, the pause level, a probation
/// step over it, leaving `warning`, auto-resume, entering `warning`, a probation step passed,
/// a quarantine lifted, SES's figure out of step with sesguard's). The review calls it again
/// on the state it wrote until nothing applies, so one review reaches a fixed point.
///
/// **The invariant** is enforced here, in one place: no automatic transition lets the account
/// or a stream on it send more (a pause ended, a resume, a probation step, a quarantine
/// lifted) while the account's rate as SES sees it ([`SesView`]: its whole window, every
/// stream, or SES's own figure where worse) is at or over the critical level. A rule that
/// would is passed over; a timed pause that ends over the line becomes a rate pause.
pub fn evaluate(
    state: &AccountState,
    evidence: &Evidence,
    thresholds: &Thresholds,
    recovery: &Recovery<'_>,
    now: Timestamp,
) -> Option<Transition> {
    let judge = Judge::new(state, evidence, thresholds, recovery, now);
    RULES
        .iter()
        .filter_map(|rule| rule(&judge))
        .find(|t| judge.line.is_none() || !t.next.sends_more_than(state, now))
}

/// The rate at or over its critical level as SES sees the account — the same reading the
/// rules make — with that rate, if any.
pub fn over_the_line(
    state: &AccountState,
    evidence: &Evidence,
    thresholds: &Thresholds,
    recovery: &Recovery<'_>,
    now: Timestamp,
) -> Option<(Signal, f64)> {
    let j = Judge::new(state, evidence, thresholds, recovery, now);
    let view = j.view;
    j.line
        .zip(Some([view.bounce_rate, view.complaint_rate]))
        .map(|(s, [bounce, complaint])| {
            (
                s,
                if s == Signal::BounceRate {
                    bounce
                } else {
                    complaint
                },
            )
        })
}

/// One rule: the transition it decides, if it applies.
type Rule = fn(&Judge<'_>) -> Option<Transition>;

/// The rules in the order they are tried.
const RULES: [Rule; 10] = [
    pause_ends,
    ses_line,
    pause_level,
    account_step_relapse,
    stream_step_relapse,
    recovered,
    warning,
    account_step_passed,
    stream_step_passed,
    feedback_gap,
];

/// What every rule judges by: the state, the evidence cut as the state says, the account as
/// SES sees it, and how rates are read against levels.
struct Judge<'a> {
    state: &'a AccountState,
    evidence: &'a Evidence,
    t: &'a Thresholds,
    recovery: &'a Recovery<'a>,
    now: Timestamp,
    confidence: Confidence,
    /// The judged mail without the quarantined streams: the streams still sending.
    residual: Counts,
    /// The account as SES sees it.
    view: SesView,
    /// The signal at or over its critical level as SES sees it, if any.
    line: Option<Signal>,
    sending: bool,
}

const SIGNALS: [Signal; 2] = [Signal::BounceRate, Signal::ComplaintRate];

impl<'a> Judge<'a> {
    fn new(
        state: &'a AccountState,
        evidence: &'a Evidence,
        t: &'a Thresholds,
        recovery: &'a Recovery<'a>,
        now: Timestamp,
    ) -> Self {
        let confidence = t.bounds();
        let view = SesView::of(&evidence.whole, evidence.ses);
        let mut judge = Self {
            state,
            evidence,
            t,
            recovery,
            now,
            confidence,
            residual: residual(&evidence.judged, &state.quarantined),
            view,
            line: None,
            sending: state.status != Status::Paused,
        };
        judge.line = SIGNALS.into_iter().find(|s| judge.over_the_line(*s));
        judge
    }

    /// Whether the account as SES sees it is at or over `signal`'s critical level: SES's own
    /// figure is, or sesguard's whole window is (its rate over at least `min_volume` sends,
    /// SES's representative volume, or its lower bound below that).
    fn over_the_line(&self, signal: Signal) -> bool {
        let level = signal.levels(self.t).2;
        self.reported(signal).is_some_and(|r| r >= level)
            || self.is_over(&self.evidence.whole, signal, level)
    }

    /// Whether `counts` are at or over `level` for `signal`: the rate over at least
    /// `min_volume` sends; below that volume the lower confidence bound, once there are
    /// `min_events` bad events (a small sample decides only when it is unambiguous). The
    /// bound is under the rate, so either reading decides no later than the rate alone
    /// would at `min_volume`.
    fn is_over(&self, counts: &Counts, signal: Signal, level: f64) -> bool {
        if counts.sends >= self.t.min_volume {
            return signal.rate(counts) >= level;
        }
        signal.bad(counts) >= self.t.min_events && self.interval(counts, signal)[0] >= level
    }

    /// The first signal over its level (`pick` from warn, pause, critical) in `counts`.
    fn over(&self, counts: &Counts, pick: fn((f64, f64, f64)) -> f64) -> Option<Signal> {
        SIGNALS
            .into_iter()
            .find(|s| self.is_over(counts, *s, pick(s.levels(self.t))))
    }

    /// Whether `counts` are evidence of recovery: at least `min_volume` sends, the incident's
    /// signal (`cause`; bounces when it was no rate) with its upper confidence bound under
    /// its warn level, and every other rate under its warn level.
    fn recovered(&self, counts: &Counts, cause: Option<Cause>) -> bool {
        let incident = match cause {
            Some(Cause::ComplaintRate) => Signal::ComplaintRate,
            _ => Signal::BounceRate,
        };
        counts.sends >= self.t.min_volume
            && SIGNALS.into_iter().all(|s| {
                let warn = s.levels(self.t).0;
                if s == incident {
                    self.interval(counts, s)[1] < warn
                } else {
                    s.rate(counts) < warn
                }
            })
    }

    fn interval(&self, counts: &Counts, signal: Signal) -> [f64; 2] {
        self.confidence.interval(signal.bad(counts), counts.sends)
    }

    /// A transition decided on `counts`.
    fn change(
        &self,
        next: AccountState,
        (from, to): (StateName, StateName),
        cause: Cause,
        stream: Option<&str>,
        counts: &Counts,
    ) -> Option<Transition> {
        Some(Transition {
            stream: stream.map(str::to_owned),
            from,
            to,
            cause,
            next,
            rates: RateSnapshot::of(counts, self.confidence, self.view),
        })
    }

    /// The account paused for `signal`, decided on `counts`.
    fn pause(&self, signal: Signal, counts: &Counts) -> Option<Transition> {
        let next = paused(self.state, signal, self.now);
        self.change(
            next,
            (self.state.name(), StateName::Paused),
            signal.into(),
            None,
            counts,
        )
    }

    /// The account paused on SES's line for `signal`, decided on the whole window; when SES's
    /// own figure is what crossed (sesguard's count did not), the note says so.
    fn ses_pause(&self, signal: Signal) -> Option<Transition> {
        let mut t = self.pause(signal, &self.whole())?;
        let level = signal.levels(self.t).2;
        if !self.is_over(&self.whole(), signal, level) {
            t.next.note = Some(format!(
                "SES reports a {} of {:.2} %; sesguard counts {:.2} %",
                signal.noun(),
                self.reported(signal).unwrap_or_default() * 100.0,
                signal.rate(&self.whole()) * 100.0
            ));
        }
        Some(t)
    }

    /// SES's own figure for `signal`, when read.
    fn reported(&self, signal: Signal) -> Option<f64> {
        self.evidence.ses.and_then(|r| match signal {
            Signal::BounceRate => r.bounce_rate,
            Signal::ComplaintRate => r.complaint_rate,
        })
    }

    /// The whole window as SES sees it, sesguard's count (what SES's line is judged on).
    fn whole(&self) -> Counts {
        self.evidence.whole
    }
}

/// A timed pause ran out: the account sends again — back on the probation step it left, if it
/// was on one — unless it is over SES's line, when the pause becomes a rate pause.
fn pause_ends(j: &Judge<'_>) -> Option<Transition> {
    let state = j.state;
    if state.status != Status::Paused || state.until.is_none_or(|until| until > j.now) {
        return None;
    }
    if let Some(signal) = j.line {
        return j.ses_pause(signal);
    }
    // Over the pause level it would be paused (or its culprit quarantined) by the next step
    // of the review: a second write a sender could read between. It stays paused instead.
    if let Some(signal) = j.over(&j.residual, |(_, pause, _)| pause) {
        return j.pause(signal, &j.residual);
    }
    let mut next = state.clone();
    next.status = Status::Active;
    next.cause = Some(Cause::PauseExpired);
    next.since = Some(j.now);
    next.until = None;
    next.note = None;
    // The step starts again: its evidence is the mail sent from now on.
    if let Some(step) = next.probation.as_mut() {
        step.since = j.now;
        next.note = Some(format!(
            "back on probation step {} at {:.0} %",
            step.step + 1,
            step.share * 100.0
        ));
    }
    let to = next.name();
    j.change(
        next,
        (StateName::Paused, to),
        Cause::PauseExpired,
        None,
        &j.evidence.judged.total,
    )
}

/// SES's line: the account as SES sees it at or over a critical level pauses the account,
/// whatever its streams; a pause that would end by itself becomes one that an operator (or
/// auto-resume's evidence) lifts. After an operator resumed it over the line, the critical
/// level judges the mail sent since (what the operator did not accept).
fn ses_line(j: &Judge<'_>) -> Option<Transition> {
    if !j.sending {
        // An operational pause that would end by the clock; an operator's ends by a review
        // (`pause_ends`), and stays the operator's until then.
        let operational = j.state.until.is_some() && j.state.cause != Some(Cause::Operator);
        return j.line.filter(|_| operational).and_then(|s| j.ses_pause(s));
    }
    if j.state.line_override.is_some() {
        let since = &j.evidence.judged.total;
        return j
            .over(since, |(_, _, critical)| critical)
            .and_then(|signal| j.pause(signal, since));
    }
    j.line.and_then(|signal| j.ses_pause(signal))
}

/// The pause level on the streams still sending: the dominant stream is quarantined, or the
/// account pauses.
fn pause_level(j: &Judge<'_>) -> Option<Transition> {
    if !j.sending {
        return None;
    }
    let signal = j.over(&j.residual, |(_, pause, _)| pause)?;
    let judged = &j.evidence.judged;
    match dominant(judged, &j.residual, j.state, signal, j.t.dominance) {
        Some((stream, counts)) => {
            let mut next = j.state.clone();
            next.quarantine(&stream, signal.into(), &counts, j.now);
            let from = stream_name(j.state, &stream);
            j.change(
                next,
                (from, StateName::Quarantined),
                signal.into(),
                Some(&stream),
                &j.residual,
            )
        }
        None => j.pause(signal, &j.residual),
    }
}

/// A probation step whose own mail reaches the pause level sends the account back.
fn account_step_relapse(j: &Judge<'_>) -> Option<Transition> {
    if !j.sending || j.state.probation.is_none() {
        return None;
    }
    let step = &j.evidence.account_step;
    j.over(step, |(_, pause, _)| pause)
        .and_then(|signal| j.pause(signal, step))
}

/// A stream's probation step whose own mail reaches the pause level sends it back into
/// quarantine.
fn stream_step_relapse(j: &Judge<'_>) -> Option<Transition> {
    if !j.sending {
        return None;
    }
    j.evidence.stream_steps.iter().find_map(|(stream, counts)| {
        if stream_name(j.state, stream) != StateName::Probation {
            return None;
        }
        let signal = j.over(counts, |(_, pause, _)| pause)?;
        let mut next = j.state.clone();
        next.quarantine(stream, signal.into(), counts, j.now);
        j.change(
            next,
            (StateName::Probation, StateName::Quarantined),
            signal.into(),
            Some(stream),
            counts,
        )
    })
}

/// `warning` is left below `recovery` of the warn levels; a rate pause lifts by itself (with
/// `auto_resume`) on evidence: enough mail, confidently under the warn levels.
fn recovered(j: &Judge<'_>) -> Option<Transition> {
    let state = j.state;
    let mut next = state.clone();
    match state.status {
        Status::Active => return None,
        Status::Warning => {
            let calm = SIGNALS
                .into_iter()
                .all(|s| s.rate(&j.residual) < s.levels(j.t).0 * j.t.recovery);
            if !calm {
                return None;
            }
            next.status = Status::Active;
            next.cause = Some(Cause::Recovered);
            next.since = Some(j.now);
        }
        Status::Paused => {
            if !(j.recovery.auto_resume
                && rate_paused(state)
                && j.recovered(&j.residual, state.cause))
            {
                return None;
            }
            next.resume(Cause::Recovered, j.recovery.start(j.now), j.now);
        }
    }
    let to = next.name();
    j.change(
        next,
        (state.name(), to),
        Cause::Recovered,
        None,
        &j.residual,
    )
}

/// `warning` at the warn levels, on the streams still sending.
fn warning(j: &Judge<'_>) -> Option<Transition> {
    if j.state.status != Status::Active {
        return None;
    }
    let signal = j.over(&j.residual, |(warn, _, _)| warn)?;
    let mut next = j.state.clone();
    next.status = Status::Warning;
    next.cause = Some(signal.into());
    next.since = Some(j.now);
    j.change(
        next,
        (j.state.name(), StateName::Warning),
        signal.into(),
        None,
        &j.residual,
    )
}

/// A probation step passes once it has settled (its bounces have arrived) on evidence of its
/// own mail.
fn account_step_passed(j: &Judge<'_>) -> Option<Transition> {
    let state = j.state;
    let step = state.probation?;
    let counts = &j.evidence.account_step;
    if !(state.status == Status::Active
        && j.recovery.settled(step.since, j.now)
        && j.recovered(counts, state.cause))
    {
        return None;
    }
    let mut next = state.clone();
    next.probation = j.recovery.step(step.step + 1, j.now);
    let to = next.name();
    j.change(next, (state.name(), to), Cause::Recovered, None, counts)
}

/// A stream's probation step passes likewise; with `auto_resume`, a quarantine the guard set
/// lifts (onto probation) on evidence of the stream's own mail. An operator's quarantine is
/// never lifted by the guard.
fn stream_step_passed(j: &Judge<'_>) -> Option<Transition> {
    if !j.sending {
        return None;
    }
    let state = j.state;
    let stepped = j.evidence.stream_steps.iter().find_map(|(stream, counts)| {
        let step = state.returned.get(stream).and_then(|r| r.probation)?;
        if !(j.recovery.settled(step.since, j.now) && j.recovered(counts, None)) {
            return None;
        }
        let mut next = state.clone();
        if let Some(returned) = next.returned.get_mut(stream) {
            returned.probation = j.recovery.step(step.step + 1, j.now);
        }
        let to = stream_name(&next, stream);
        j.change(
            next,
            (StateName::Probation, to),
            Cause::Recovered,
            Some(stream),
            counts,
        )
    });
    if stepped.is_some() || !j.recovery.auto_resume {
        return stepped;
    }
    state.quarantined.iter().find_map(|(stream, quarantine)| {
        if quarantine.cause == Cause::Operator {
            return None;
        }
        let counts = j.evidence.judged.streams.get(stream).copied()?;
        if !j.recovered(&counts, Some(quarantine.cause)) {
            return None;
        }
        let mut next = state.clone();
        next.lift(stream, j.recovery.start(j.now), j.now);
        let to = stream_name(&next, stream);
        j.change(
            next,
            (StateName::Quarantined, to),
            Cause::Recovered,
            Some(stream),
            &counts,
        )
    })
}

/// SES's own figure over sesguard's whole window by more than `feedback_gap` of the warn
/// level says feedback is missing (mail sent around sesguard, an event destination removed, a
/// subscription never confirmed): recorded once when it begins and once when it ends.
fn feedback_gap(j: &Judge<'_>) -> Option<Transition> {
    // A gap opens over `feedback_gap` of the warn level and closes only under half of it, so
    // that a gap at the margin does not flap with every batch.
    let gap = SIGNALS.into_iter().find(|s| {
        let margin = s.levels(j.t).0 * j.t.feedback_gap;
        let margin = match j.state.feedback_missing {
            Some(open) if open == *s => margin / 2.0,
            _ => margin,
        };
        j.reported(*s)
            .is_some_and(|r| r - s.rate(&j.whole()) > margin)
    });
    // No figure read: nothing is known either way, so nothing changes.
    let gap = if j.evidence.ses.is_none() {
        j.state.feedback_missing
    } else {
        gap
    };
    if gap == j.state.feedback_missing {
        return None;
    }
    let mut next = j.state.clone();
    next.feedback_missing = gap;
    next.note = Some(match gap {
        Some(signal) => format!(
            "feedback missing: SES reports a higher {} than sesguard counts",
            signal.noun()
        ),
        None => "feedback complete: SES's figures agree with sesguard's".to_owned(),
    });
    let name = j.state.name();
    j.change(next, (name, name), Cause::FeedbackGap, None, &j.whole())
}

/// `state` paused for `signal` from `now`, until lifted: no probation, no operator override.
pub(crate) fn paused(state: &AccountState, signal: Signal, now: Timestamp) -> AccountState {
    AccountState {
        status: Status::Paused,
        cause: Some(signal.into()),
        since: Some(now),
        until: None,
        note: None,
        probation: None,
        line_override: None,
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
pub(crate) mod tests;
