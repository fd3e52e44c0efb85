//! Operator control of accounts and streams: pause, resume, quarantine and lift by hand. Each
//! change is a transition like the guard's — written conditionally on the version read, with
//! a history entry naming the operator and why, and an alert.

use std::time::Duration;

use crate::app::Context;
use crate::app::review::{StatePorts, alert_for, enforce, ses_figures};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::evidence::Evidence;
use crate::domain::reputation::history::{HistoryEntry, RateSnapshot};
use crate::domain::reputation::probation::{Probation, Recovery};
use crate::domain::reputation::rules;
use crate::domain::reputation::ses_view::SesView;
use crate::domain::reputation::state::{AccountState, Cause, StateName, Status, stream_name};
use crate::ports::StoreError;
use crate::telemetry::error_chain;

/// Whether an operator's reason says something: a character other than a space, a tab or a
/// line break (the admin API's document says the same with the pattern `[^ \t\n\r]`).
pub fn reason_given(reason: &str) -> bool {
    reason
        .chars()
        .any(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop the account (or, with a stream, that stream on it), for a while or until resumed.
    Pause {
        /// Only this stream.
        stream: Option<String>,
        /// Ends by itself after this long (accounts only).
        duration: Option<Duration>,
    },
    /// Let it send again: on the probation ramp, or (without `probation`) at full traffic at
    /// once. Resuming an account on probation ends its probation.
    Resume {
        /// Only this stream.
        stream: Option<String>,
        /// Climb the probation ramp first (the default).
        probation: bool,
    },
}

/// Why an operator's change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Unknown account.
    #[error("unknown account `{0}`: not in the configuration")]
    UnknownAccount(String),
    /// The stream does not use the account.
    #[error("stream `{stream}` does not use account `{account}`")]
    UnknownStream {
        /// The account.
        account: String,
        /// The stream.
        stream: String,
    },
    /// The change makes no sense in the current state (resuming what is not paused...).
    #[error("{0}")]
    Conflict(String),
    /// The reason is required and was empty.
    #[error("a reason is required")]
    NoReason,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Operator control over the store and alert ports.
pub struct Control<'a> {
    ports: StatePorts<'a>,
}

impl<'a> Control<'a> {
    /// Control over the ports and settings of `context`.
    pub fn of(context: &'a Context) -> Self {
        Self {
            ports: StatePorts::of(context),
        }
    }

    /// Applies `action` on `account` as `actor`, recording `reason`; returns the history entry.
    pub async fn apply(
        &self,
        account: &str,
        action: &Action,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<HistoryEntry, ControlError> {
        let config = self.ports.config;
        if config.account(account).is_none() {
            return Err(ControlError::UnknownAccount(account.to_owned()));
        }
        if !reason_given(reason) {
            return Err(ControlError::NoReason);
        }
        let stream = match action {
            Action::Pause { stream, .. } | Action::Resume { stream, .. } => stream.as_deref(),
        };
        if let Some(stream) = stream
            && !config
                .stream(stream)
                .is_some_and(|s| s.accounts.iter().any(|a| a == account))
        {
            return Err(ControlError::UnknownStream {
                account: account.to_owned(),
                stream: stream.to_owned(),
            });
        }
        let record = Record {
            stream,
            cause: Cause::Operator,
            note: reason,
            actor: format!("operator:{actor}"),
            enforce: true,
        };
        let entry = self
            .commit(account, &record, now, |state, evidence| {
                let recovery = config.recovery(account);
                let over = rules::over_the_line(
                    state,
                    evidence,
                    &config.thresholds_for(account),
                    &recovery,
                    now,
                )
                .map(|(signal, rate)| {
                    format!("{} {:.2} % as SES sees it", signal.noun(), rate * 100.0)
                });
                change(state, evidence, action, reason, &recovery, now, over).map(Some)
            })
            .await?;
        // An operator's change always decides a next state, so `None` cannot come back.
        entry.ok_or_else(|| ControlError::Conflict(format!("account `{account}` did not change")))
    }

    /// Pauses `account` for `cause` (until `until`, or until lifted) on behalf of `actor` (the
    /// sender reacting to SES), unless it is paused already. Returns whether this call paused
    /// it; the transition is recorded and alerted like any other (no enforcement at SES: SES
    /// itself refused).
    pub async fn pause_for(
        &self,
        account: &str,
        cause: Cause,
        until: Option<Timestamp>,
        note: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, ControlError> {
        let record = Record {
            stream: None,
            cause,
            note,
            actor: actor.to_owned(),
            enforce: false,
        };
        let entry = self
            .commit(account, &record, now, |state, _| {
                if state.pause_in_force(now) {
                    return Ok(None);
                }
                let next = AccountState {
                    status: Status::Paused,
                    cause: Some(cause),
                    since: Some(now),
                    until,
                    note: Some(note.to_owned()),
                    ..state.clone()
                };
                Ok(Some((next, state.status.into(), StateName::Paused)))
            })
            .await?;
        Ok(entry.is_some())
    }

    /// Reads the account's window and state, lets `decide` choose the next state (`None`:
    /// nothing to do), writes it conditionally on the version read with its history entry —
    /// reading again when a concurrent writer got there first — and alerts.
    async fn commit(
        &self,
        account: &str,
        record: &Record<'_>,
        now: Timestamp,
        decide: impl Fn(
            &AccountState,
            &Evidence,
        ) -> Result<Option<(AccountState, StateName, StateName)>, ControlError>,
    ) -> Result<Option<HistoryEntry>, ControlError> {
        let window = self.ports.config.ingest_policy().window;
        let (first, last) = window.buckets_ending(now);
        let figures = ses_figures(self.ports.reputation, account, now).await;
        let thresholds = self.ports.config.thresholds_for(account);
        for _ in 0..5 {
            let read = self.ports.counters.window(account, first, last).await?;
            let evidence =
                Evidence::gather(&read.buckets, first, last, &read.state).with_ses(figures);
            let Some((next, from, to)) = decide(&read.state, &evidence)? else {
                return Ok(None);
            };
            let rates = RateSnapshot::of(
                &evidence.judged.total,
                thresholds.bounds(),
                SesView::of(&evidence.whole, figures),
            );
            let entry = HistoryEntry {
                at: now,
                account: account.to_owned(),
                stream: record.stream.map(str::to_owned),
                from: from.to_owned(),
                to: to.to_owned(),
                cause: record.cause,
                note: next.note.clone().or_else(|| Some(record.note.to_owned())),
                share: next.probation_of(record.stream).map(|p| p.share),
                bounce_rate: rates.bounce_rate,
                complaint_rate: rates.complaint_rate,
                window_sends: rates.window_sends,
                bounds: Some(rates.bounds),
                ses: Some(rates.ses),
                actor: record.actor.clone(),
            };
            let expires = now.plus(self.ports.config.guard.history_ttl);
            if self
                .ports
                .ledger
                .transition(account, read.state.version, &next, &entry, expires)
                .await?
            {
                let mut alert = alert_for(self.ports.config, entry.clone());
                if record.enforce {
                    enforce(self.ports.ses, &mut alert).await;
                }
                if let Err(error) = self.ports.alerts.publish(&alert).await {
                    tracing::error!(account, error = %error_chain(&error), "change applied but its alert was not delivered");
                }
                return Ok(Some(entry));
            }
        }
        Err(ControlError::Conflict(format!(
            "account `{account}` kept changing; try again"
        )))
    }
}

/// How a change is recorded: history entry fields and whether SES enforces it.
struct Record<'a> {
    stream: Option<&'a str>,
    cause: Cause,
    note: &'a str,
    actor: String,
    enforce: bool,
}

/// The state `action` makes of `state`, with the state names it goes from and to; a
/// `Conflict` when the action does not apply to the state.
fn change(
    state: &AccountState,
    evidence: &Evidence,
    action: &Action,
    reason: &str,
    recovery: &Recovery<'_>,
    now: Timestamp,
    over_the_line: Option<String>,
) -> Result<(AccountState, StateName, StateName), ControlError> {
    let mut next = state.clone();
    next.note = Some(reason.to_owned());
    let change = Change {
        state,
        next,
        reason,
        recovery,
        now,
        over_the_line,
    };
    match action {
        Action::Pause {
            stream: None,
            duration,
        } => change.pause(*duration),
        Action::Resume {
            stream: None,
            probation,
        } => change.resume(*probation),
        Action::Pause {
            stream: Some(stream),
            ..
        } => change.quarantine(stream, evidence),
        Action::Resume {
            stream: Some(stream),
            probation,
        } => change.lift(stream, *probation),
    }
}

/// An operator's change being made: the state it starts from, the one it makes, why, the
/// probation ramp, the time, and SES's line when the account is over it.
struct Change<'a> {
    state: &'a AccountState,
    next: AccountState,
    reason: &'a str,
    recovery: &'a Recovery<'a>,
    now: Timestamp,
    over_the_line: Option<String>,
}

impl Change<'_> {
    /// Pauses the account, until a resume or for `duration`.
    fn pause(
        mut self,
        duration: Option<Duration>,
    ) -> Result<(AccountState, StateName, StateName), ControlError> {
        let (state, now) = (self.state, self.now);
        if state.pause_in_force(now) {
            return Err(ControlError::Conflict(
                "the account is already paused".into(),
            ));
        }
        let next = &mut self.next;
        next.status = Status::Paused;
        next.cause = Some(Cause::Operator);
        next.since = Some(now);
        next.until = duration.map(|d| now.plus(d));
        next.line_override = None;
        // A timed pause returns the account to the probation step it left; one that lasts
        // until a resume starts the ramp again then.
        if duration.is_none() {
            next.probation = None;
        }
        Ok((self.next, state.name(), StateName::Paused))
    }

    /// Resumes a paused account (on probation if asked), or ends its probation.
    fn resume(
        mut self,
        probation: bool,
    ) -> Result<(AccountState, StateName, StateName), ControlError> {
        let (state, now) = (self.state, self.now);
        let from = state.name();
        if state.status != Status::Paused && state.probation.is_none() {
            return Err(ControlError::Conflict(format!(
                "the account is not paused (it is {from})"
            )));
        }
        if state.status == Status::Paused {
            let ramp = self.ramp(probation, state.cause);
            self.next.resume(Cause::Operator, ramp, now);
            // Over SES's line the operator overrides the guard's last line: the alert
            // says so, and the critical level judges the mail sent from now on.
            if let Some(over) = &self.over_the_line {
                self.next.line_override = Some(now);
                self.next.note = Some(format!("{} (resumed over SES's line: {over})", self.reason));
            }
        } else {
            // On probation: the operator ends it.
            self.next.probation = None;
            self.next.cause = Some(Cause::Operator);
            self.next.since = Some(now);
        }
        self.note_probation(probation);
        Ok((self.next.clone(), from, self.next.name()))
    }

    /// Quarantines `stream` on the account.
    fn quarantine(
        mut self,
        stream: &str,
        evidence: &Evidence,
    ) -> Result<(AccountState, StateName, StateName), ControlError> {
        let state = self.state;
        if state.is_quarantined(stream) {
            return Err(ControlError::Conflict(format!(
                "stream `{stream}` is already quarantined on this account"
            )));
        }
        // Its rates here are its known risk wherever it fails over to.
        let counts = evidence
            .judged
            .streams
            .get(stream)
            .copied()
            .unwrap_or_default();
        self.next
            .quarantine(stream, Cause::Operator, &counts, self.now);
        Ok((
            self.next,
            stream_name(state, stream),
            StateName::Quarantined,
        ))
    }

    /// Lifts `stream`'s quarantine (on probation if asked), or ends its probation.
    fn lift(
        mut self,
        stream: &str,
        probation: bool,
    ) -> Result<(AccountState, StateName, StateName), ControlError> {
        let state = self.state;
        let from = stream_name(state, stream);
        match from {
            StateName::Quarantined => {
                let cause = state.quarantined.get(stream).map(|q| q.cause);
                let ramp = self.ramp(probation, cause);
                self.next.lift(stream, ramp, self.now);
            }
            StateName::Probation => {
                if let Some(returned) = self.next.returned.get_mut(stream) {
                    returned.probation = None;
                }
            }
            _ => {
                return Err(ControlError::Conflict(format!(
                    "stream `{stream}` is not quarantined on this account"
                )));
            }
        }
        // The account sends this stream again over SES's line: the operator's call, said.
        if let Some(over) = &self.over_the_line {
            self.next.note = Some(format!("{} (resumed over SES's line: {over})", self.reason));
        }
        self.note_probation(probation);
        Ok((self.next.clone(), from, stream_name(&self.next, stream)))
    }

    /// The probation to resume on. Probation after a reputation problem only: an account
    /// paused because SES refused its credentials comes back at full traffic.
    fn ramp(&self, probation: bool, cause: Option<Cause>) -> Option<Probation> {
        if probation && cause.is_none_or(Cause::needs_probation) {
            self.recovery.start(self.now)
        } else {
            None
        }
    }

    /// Says in the note when the operator skipped probation.
    fn note_probation(&mut self, probation: bool) {
        if !probation {
            let note = self
                .next
                .note
                .take()
                .unwrap_or_else(|| self.reason.to_owned());
            self.next.note = Some(format!("{note} (without probation)"));
        }
    }
}
