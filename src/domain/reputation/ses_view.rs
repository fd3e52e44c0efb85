//! The account as SES sees it: sesguard's own count of the whole window, and SES's own
//! reported figures (CloudWatch `AWS/SES` `Reputation.BounceRate` / `Reputation.ComplaintRate`,
//! and with Virtual Deliverability Manager its daily counts) when they were read. The guard's
//! last line judges on the worse of the two.

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::Counts;

/// An account's reputation as SES itself reports it: its latest published figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SesFigures {
    /// Hard bounces per send (0..1) as SES reports them (`Reputation.BounceRate`, or VDM's
    /// `PERMANENT_BOUNCE` / `SEND` where worse), when it reported any.
    pub bounce_rate: Option<f64>,
    /// Complaints per send (0..1) as SES reports them (`Reputation.ComplaintRate`, or VDM's
    /// `COMPLAINT` / `SEND` where worse), when it reported any.
    pub complaint_rate: Option<f64>,
    /// The time of the newest datapoint read.
    pub at: Timestamp,
}

/// The account's rates as SES sees it: sesguard's count of the whole window (every stream,
/// mail judged before a resume included), or SES's own figure where that is worse.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SesView {
    /// Sends in the whole window, by sesguard's count.
    pub sends: u64,
    /// Hard bounces per send: the worse of sesguard's count and SES's figure.
    pub bounce_rate: f64,
    /// Complaints per send: the worse of sesguard's count and SES's figure.
    pub complaint_rate: f64,
    /// SES's own figures, when they were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<SesFigures>,
}

impl SesView {
    /// The view of a whole window's `counts` and SES's `reported` figures.
    pub fn of(counts: &Counts, reported: Option<SesFigures>) -> Self {
        let worse = |own: f64, theirs: Option<f64>| theirs.map_or(own, |t| own.max(t));
        Self {
            sends: counts.sends,
            bounce_rate: worse(counts.bounce_rate(), reported.and_then(|r| r.bounce_rate)),
            complaint_rate: worse(
                counts.complaint_rate(),
                reported.and_then(|r| r.complaint_rate),
            ),
            reported,
        }
    }
}
