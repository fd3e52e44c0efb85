//! The guard's state model, a leaf the rest of the guard depends on: which rate a decision is
//! about, why a state changed, the state of an account (active, warning, paused; on probation)
//! and of each stream on it (quarantined, returned), and the names history gives these states.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::Counts;
use crate::domain::reputation::probation::{Probation, Return};
use crate::domain::reputation::thresholds::Thresholds;

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
    pub(crate) fn bad(self, counts: &Counts) -> u64 {
        match self {
            Signal::BounceRate => counts.hard_bounces,
            Signal::ComplaintRate => counts.complaints,
        }
    }

    pub(crate) fn rate(self, counts: &Counts) -> f64 {
        match self {
            Signal::BounceRate => counts.bounce_rate(),
            Signal::ComplaintRate => counts.complaint_rate(),
        }
    }

    /// What the rate counts, for messages: `bounce rate`, `complaint rate`.
    pub fn noun(self) -> &'static str {
        match self {
            Signal::BounceRate => "bounce rate",
            Signal::ComplaintRate => "complaint rate",
        }
    }

    /// Its warn, pause and critical levels in `t`.
    pub(crate) fn levels(self, t: &Thresholds) -> (f64, f64, f64) {
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
    /// SES's own figure and sesguard's count parted (feedback missing), or agree again.
    FeedbackGap,
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
    /// An operator resumed the account at this time with its rate as SES sees it at or over
    /// the critical level. Until the account is next paused, the critical level judges the
    /// mail sent since (what the operator did not accept), not the whole window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_override: Option<Timestamp>,
    /// The rate SES reports higher than sesguard counts (feedback missing), while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_missing: Option<Signal>,
    /// Store version; 0 when never written. Not part of the stored JSON.
    #[serde(skip)]
    pub version: u64,
}

impl AccountState {
    /// Whether the account takes no mail at `now`. An operator's timed pause holds until the
    /// guard's review ends it, never by the clock alone: the review decides whether the
    /// account may send again, and keeps it paused when it is over SES's line. An operational
    /// pause (the send rate, the daily quota, transport failures, SES refusing) ends with its
    /// time: its mail was never the problem, and a review over the line turns it into a rate
    /// pause before then.
    pub fn is_paused(&self, now: Timestamp) -> bool {
        self.status == Status::Paused
            && (self.until.is_none_or(|until| until > now)
                || self.cause.is_none_or(Cause::needs_probation))
    }

    /// Whether the account is paused and, for a timed pause, its time has not run out at `now`.
    pub fn pause_in_force(&self, now: Timestamp) -> bool {
        self.status == Status::Paused && self.until.is_none_or(|until| until > now)
    }

    /// Whether this state lets the account, or any stream on it, send more than `before` does
    /// at `now`: the account back from a pause or up a probation step, a stream back from
    /// quarantine or up its step.
    pub fn sends_more_than(&self, before: &AccountState, now: Timestamp) -> bool {
        let account = |s: &AccountState| {
            if s.is_paused(now) {
                0.0
            } else {
                s.probation.map_or(1.0, |p| p.share)
            }
        };
        let stream = |s: &AccountState, name: &str| {
            if s.is_quarantined(name) {
                0.0
            } else {
                s.returned
                    .get(name)
                    .and_then(|r| r.probation)
                    .map_or(1.0, |p| p.share)
            }
        };
        let streams = before
            .quarantined
            .keys()
            .chain(before.returned.keys())
            .chain(self.quarantined.keys())
            .chain(self.returned.keys());
        account(self) > account(before)
            || streams
                .into_iter()
                .any(|name| stream(self, name) > stream(before, name))
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
    pub fn name(&self) -> StateName {
        match (self.status, self.probation) {
            (Status::Active, Some(_)) => StateName::Probation,
            (status, _) => status.into(),
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

/// A state as history names it: an account is `active`, `warning`, `paused` or on `probation`;
/// a stream on it is `quarantined`, on `probation` or `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// Sending normally.
    Active,
    /// Sending, a rate over its warn level.
    Warning,
    /// Not sending.
    Paused,
    /// Sending a share of its traffic after a resume or a return.
    Probation,
    /// A stream taken off the account.
    Quarantined,
}

impl StateName {
    /// The name: `active`, `warning`, `paused`, `probation`, `quarantined`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Active => "active",
            StateName::Warning => "warning",
            StateName::Paused => "paused",
            StateName::Probation => "probation",
            StateName::Quarantined => "quarantined",
        }
    }

    /// Whether a state by this name sends nothing (`paused`, `quarantined`).
    pub fn is_stopped(self) -> bool {
        matches!(self, StateName::Paused | StateName::Quarantined)
    }
}

impl From<Status> for StateName {
    fn from(status: Status) -> Self {
        match status {
            Status::Active => StateName::Active,
            Status::Warning => StateName::Warning,
            Status::Paused => StateName::Paused,
        }
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stream's state on an account as history names it: `quarantined`, `probation` or
/// `active`.
pub fn stream_name(state: &AccountState, stream: &str) -> StateName {
    if state.is_quarantined(stream) {
        StateName::Quarantined
    } else if state
        .returned
        .get(stream)
        .is_some_and(|r| r.probation.is_some())
    {
        StateName::Probation
    } else {
        StateName::Active
    }
}
