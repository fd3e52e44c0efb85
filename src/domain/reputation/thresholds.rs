//! An account's rate thresholds: where the guard warns, quarantines or pauses, and pauses
//! regardless; how sure a rate must be to decide; and the two profiles the defaults come from.

use serde::{Deserialize, Serialize};

use crate::domain::reputation::confidence::Confidence;

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
    /// Below this many sends a rate decides only by its confidence bound, and nothing
    /// recovers (default 200).
    pub min_volume: u64,
    /// A stream with at least this share of the window's bad events is the culprit
    /// (default 0.6).
    pub dominance: f64,
    /// `warning` is left only below this fraction of the warn levels (default 0.8).
    pub recovery: f64,
    /// Below `min_volume` sends, a rate is judged by its lower confidence bound only once it
    /// counts this many bad events (default 10): a first bounce never pauses an account.
    pub min_events: u64,
    /// The one-sided confidence of the bounds a small sample is judged by (default 0.95).
    pub confidence: f64,
    /// SES's own figure over sesguard's by more than this fraction of the warn level says
    /// feedback is missing (default 0.5: 2 points of bounce rate at the default warn level).
    pub feedback_gap: f64,
}

impl Thresholds {
    /// The levels of `profile`, every other setting at its default.
    pub fn of(profile: Profile) -> Self {
        match profile {
            Profile::Standard => Self::default(),
            // SES reviews an account at 5 % bounces and 0.1 % complaints: this profile keeps
            // it under those lines, as the standard one keeps it under the pause lines.
            Profile::NoReview => Self {
                bounce_warn: 0.02,
                bounce_pause: 0.04,
                bounce_critical: 0.045,
                complaint_warn: 0.0004,
                complaint_pause: 0.0008,
                complaint_critical: 0.0009,
                ..Self::default()
            },
        }
    }

    /// The confidence bounds decisions use.
    pub fn bounds(&self) -> Confidence {
        Confidence::new(self.confidence)
    }
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
            min_events: 10,
            confidence: 0.95,
            feedback_gap: 0.5,
        }
    }
}

/// Which of SES's lines the default levels keep an account under (`[guard] profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Under SES's pause lines (10 % bounces, 0.5 % complaints); the account may go under
    /// review (5 %, 0.1 %) during an incident.
    #[default]
    Standard,
    /// Under SES's review lines (5 %, 0.1 %): pauses sooner, defers or fails over more mail.
    NoReview,
}

impl Profile {
    /// `standard` or `no_review`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::NoReview => "no_review",
        }
    }
}
