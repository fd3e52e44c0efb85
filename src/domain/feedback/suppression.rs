//! The suppression list's records and the pure rules that change them: why an address is
//! suppressed, the details kept about it, and the soft-bounce count over a sliding window.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::bounce_reason::BounceReason;

/// Why an address must not be mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A permanent (hard) bounce.
    Bounce,
    /// A complaint other than `not-spam`.
    Complaint,
    /// Too many soft bounces within the soft-bounce window.
    SoftBounce,
    /// An operator put it there.
    Manual,
}

impl Reason {
    /// Every reason, in a fixed order.
    pub const ALL: [Reason; 4] = [
        Reason::Bounce,
        Reason::Complaint,
        Reason::SoftBounce,
        Reason::Manual,
    ];

    /// The stored and printed name: `bounce`, `complaint`, `soft_bounce`, `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Bounce => "bounce",
            Reason::Complaint => "complaint",
            Reason::SoftBounce => "soft_bounce",
            Reason::Manual => "manual",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A reason name that is not one of [`Reason::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown suppression reason `{0}` (expected bounce, complaint, soft_bounce or manual)")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| UnknownReason(text.to_owned()))
    }
}

/// A suppressed address as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    /// The normalised address.
    pub email: EmailAddress,
    /// Why it was first suppressed.
    pub reason: Reason,
    /// `bounceType` of the latest bounce.
    pub bounce_type: Option<String>,
    /// `bounceSubType` of the latest bounce.
    pub bounce_subtype: Option<String>,
    /// DSN status of the latest bounce.
    pub status: Option<String>,
    /// Remote diagnostic of the latest bounce.
    pub diagnostic_code: Option<String>,
    /// Why the latest bounce bounced, as sesguard read it (absent on records from before
    /// bounces had reasons).
    pub bounce_reason: Option<BounceReason>,
    /// Feedback type of the latest complaint.
    pub complaint_feedback_type: Option<String>,
    /// How many bounces and complaints were recorded for the address.
    pub count: u64,
    /// The earliest recorded feedback.
    pub first_seen: Timestamp,
    /// The latest recorded feedback.
    pub last_seen: Timestamp,
    /// SES message id of the latest feedback.
    pub message_id: Option<String>,
    /// SES feedback id of the latest feedback.
    pub feedback_id: Option<String>,
}

/// The details of a bounce kept on the address's record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BounceDetail {
    /// `bounceType` as received.
    pub bounce_type: String,
    /// `bounceSubType` as received.
    pub bounce_subtype: String,
    /// DSN status.
    pub status: Option<String>,
    /// Remote diagnostic.
    pub diagnostic_code: Option<String>,
    /// Why it bounced.
    pub reason: BounceReason,
}

/// What the ingest path reads about an address before a soft-bounce or delivery write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressState {
    /// The record's version; 0 when there is no record. Every write raises it by one.
    pub version: u64,
    /// Whether the address is suppressed.
    pub suppressed: bool,
    /// Times of the soft bounces still inside the window, oldest first. Empty for a record
    /// whose expiry time has passed.
    pub soft_bounces: Vec<Timestamp>,
}

/// When soft bounces turn into a suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftBouncePolicy {
    /// Soft bounces within the window that suppress the address (default 3).
    pub threshold: u32,
    /// The sliding window (default 14 days).
    pub window: Duration,
}

impl Default for SoftBouncePolicy {
    fn default() -> Self {
        Self {
            threshold: 3,
            window: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

impl SoftBouncePolicy {
    /// Adds a soft bounce at `at` to `times` (kept sorted, inside the window ending at the
    /// newest bounce, at most `threshold` long). True when the threshold is reached.
    pub fn record(&self, times: &mut Vec<Timestamp>, at: Timestamp) -> bool {
        let position = times.partition_point(|t| *t <= at);
        times.insert(position, at);
        if let Some(&newest) = times.last() {
            let horizon = newest.minus(self.window);
            times.retain(|t| *t >= horizon);
        }
        let keep = self.threshold.max(1) as usize;
        if times.len() > keep {
            times.drain(..times.len() - keep);
        }
        times.len() >= keep
    }

    /// Forgets soft bounces that happened before a delivery at `delivered_at`. True when
    /// anything was forgotten.
    pub fn reset(&self, times: &mut Vec<Timestamp>, delivered_at: Timestamp) -> bool {
        let before = times.len();
        times.retain(|t| *t > delivered_at);
        times.len() != before
    }
}

/// One address's change in an ingest batch: the merged effect of every notification in the
/// batch that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionUpdate {
    /// The address.
    pub email: EmailAddress,
    /// Suppress for this reason unless already suppressed (the first reason stays).
    pub suppress: Option<Reason>,
    /// Feedback recorded against the address, if any.
    pub feedback: Option<FeedbackRecord>,
    /// A new soft-bounce state, written only if the record is still at `expected_version`.
    pub soft: Option<SoftWrite>,
}

/// Bounces and complaints recorded on an address in one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRecord {
    /// Earliest event; becomes `first_seen` when the record has none.
    pub first_seen: Timestamp,
    /// Latest event; becomes `last_seen`.
    pub last_seen: Timestamp,
    /// Added to the record's `count`.
    pub events: u64,
    /// The latest bounce's details.
    pub bounce: Option<BounceDetail>,
    /// The latest complaint's feedback type.
    pub complaint_feedback_type: Option<String>,
    /// SES message id of the latest event.
    pub message_id: String,
    /// SES feedback id of the latest event.
    pub feedback_id: Option<String>,
}

/// A soft-bounce state computed from a read: a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftWrite {
    /// The version read; the write fails if the record has moved on.
    pub expected_version: u64,
    /// The soft bounces to store.
    pub bounces: Vec<Timestamp>,
    /// When an unsuppressed record may be deleted; `None` keeps it (suppressed records never
    /// expire).
    pub expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;

    fn t(day: i64) -> Timestamp {
        Timestamp::from_millis(day * DAY)
    }

    #[test]
    fn the_third_soft_bounce_within_the_window_reaches_the_threshold() {
        let policy = SoftBouncePolicy::default();
        let mut times = Vec::new();
        assert!(!policy.record(&mut times, t(0)));
        assert!(!policy.record(&mut times, t(5)));
        assert!(policy.record(&mut times, t(14)));
    }

    #[test]
    fn soft_bounces_older_than_the_window_are_forgotten() {
        let policy = SoftBouncePolicy::default();
        let mut times = vec![t(0), t(1)];
        assert!(!policy.record(&mut times, t(15)));
        assert_eq!(times, vec![t(1), t(15)]);
    }

    #[test]
    fn out_of_order_bounces_are_kept_sorted_and_bounded() {
        let policy = SoftBouncePolicy {
            threshold: 2,
            ..SoftBouncePolicy::default()
        };
        let mut times = vec![t(3)];
        assert!(policy.record(&mut times, t(1)));
        assert_eq!(times, vec![t(1), t(3)]);
        assert!(policy.record(&mut times, t(2)));
        assert_eq!(times, vec![t(2), t(3)]);
    }

    #[test]
    fn a_delivery_forgets_only_the_soft_bounces_before_it() {
        let policy = SoftBouncePolicy::default();
        let mut times = vec![t(1), t(3)];
        assert!(policy.reset(&mut times, t(2)));
        assert_eq!(times, vec![t(3)]);
        assert!(!policy.reset(&mut times, t(2)));
    }

    #[test]
    fn reasons_round_trip_through_their_names() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(reason));
        }
        assert_eq!("spam".parse::<Reason>(), Err(UnknownReason("spam".into())));
    }
}
