//! A decided transition of the guard: the state it leaves, the state it writes, and the history
//! entry it records. The state model is in [`crate::domain::reputation::state`]; the rules that
//! decide transitions in [`crate::domain::reputation::rules`].

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::history::{HistoryEntry, RateSnapshot};
use crate::domain::reputation::state::{AccountState, Cause, StateName};

/// One decided change of an account's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The stream it concerns, for a quarantine, its lifting or its probation.
    pub stream: Option<String>,
    /// The state before.
    pub from: StateName,
    /// The state after.
    pub to: StateName,
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
            from: self.from,
            to: self.to,
            cause: self.cause,
            note: self.next.note.clone(),
            share: self.share(),
            bounce_rate: self.rates.bounce_rate,
            complaint_rate: self.rates.complaint_rate,
            window_sends: self.rates.window_sends,
            bounds: Some(self.rates.bounds),
            ses: Some(self.rates.ses),
            actor: actor.to_owned(),
        }
    }
}
