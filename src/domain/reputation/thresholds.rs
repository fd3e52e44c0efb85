//! An account's rate thresholds: where the guard warns, quarantines or pauses, and pauses
//! regardless; and how much mail a decision needs.

use serde::{Deserialize, Serialize};

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
