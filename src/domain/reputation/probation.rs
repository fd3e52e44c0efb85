//! The way back after an incident: the probation ramp a resumed account, or a stream back from
//! quarantine, climbs one share of its traffic at a time, each step judged on its own mail.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;

/// One step of the probation ramp an account or a stream is on after it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probation {
    /// The step's place in the ramp, from 0.
    pub step: usize,
    /// The share of its traffic it takes during the step (0..1).
    pub share: f64,
    /// When the step began: its evidence is the mail sent since.
    pub since: Timestamp,
}

/// The ramp a resumed account or a stream back from quarantine climbs: the shares of its
/// traffic it takes, one step after another, before it takes all of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recovery<'a> {
    /// Rate pauses and quarantines lift themselves when the evidence allows.
    pub auto_resume: bool,
    /// The probation steps (shares below 1, rising); empty: back to full traffic at once.
    pub ramp: &'a [f64],
    /// How long a step lasts at least, so that the bounces of its mail have arrived before it
    /// is passed (`[guard] feedback_lag`).
    pub settle: Duration,
}

impl Recovery<'_> {
    /// The first step of the ramp from `now`, if it has one.
    pub fn start(&self, now: Timestamp) -> Option<Probation> {
        self.step(0, now)
    }

    /// Whether a step that began at `since` has lasted long enough at `now` to be judged.
    pub fn settled(&self, since: Timestamp, now: Timestamp) -> bool {
        now >= since.plus(self.settle)
    }

    /// Step `step` of the ramp from `now`; `None` past its last step (full traffic).
    pub fn step(&self, step: usize, now: Timestamp) -> Option<Probation> {
        self.ramp.get(step).map(|&share| Probation {
            step,
            share,
            since: now,
        })
    }
}

/// A stream back on an account after a quarantine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Return {
    /// When it came back: the stream's mail sent before is recorded but not judged.
    pub since: Timestamp,
    /// Its probation, while it lasts.
    pub probation: Option<Probation>,
}
