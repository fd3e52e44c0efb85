//! Whether each account's SES feedback is arriving. An account whose feedback never reaches
//! sesguard is unguarded without a sign: nothing is counted, so nothing crosses a line. A
//! backup account's topic subscribed to the feedback queue but never confirmed is such an
//! account. Here each configured account's last feedback is set beside the mail it sent in the
//! last 24 hours, by SES's own count (`GetAccount`) and by sesguard's.

use std::time::Duration;

use serde::Serialize;

use crate::app::Context;
use crate::app::status::{self, AccountStatus, StatusError};
use crate::domain::common::timestamp::Timestamp;

/// What the feedback of an account says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Feedback arrived within the period asked about.
    Receiving,
    /// Mail went out in the last 24 hours, but no feedback arrived within the period: the
    /// account is not guarded.
    Silent,
    /// No mail and no feedback: nothing to tell.
    Quiet,
}

/// One account's feedback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackCheck {
    /// The account.
    pub account: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The start of the latest bucket holding its feedback ([`AccountStatus::last_feedback`]).
    pub last_feedback: Option<Timestamp>,
    /// Seconds since that bucket started (at most this old).
    pub age_seconds: Option<u64>,
    /// Sends in the last 24 hours by SES's count, when SES could be asked.
    pub ses_sent_24h: Option<u64>,
    /// Sends over the window by sesguard's count.
    pub counted_sends: u64,
}

/// The verdict on one account's status at `now`: feedback within `within`, or none while SES
/// (or sesguard) counted mail sent.
pub fn judge(
    status: &AccountStatus,
    ses_sent_24h: Option<u64>,
    now: Timestamp,
    within: Duration,
) -> FeedbackCheck {
    let age = status.last_feedback.map(|at| now.since(at));
    let sent = ses_sent_24h.unwrap_or(0).max(status.counts.sends);
    let verdict = match age {
        Some(age) if age <= within => Verdict::Receiving,
        _ if sent > 0 => Verdict::Silent,
        _ => Verdict::Quiet,
    };
    FeedbackCheck {
        account: status.name.clone(),
        verdict,
        last_feedback: status.last_feedback,
        age_seconds: age.map(|a| a.as_secs()),
        ses_sent_24h,
        counted_sends: status.counts.sends,
    }
}

/// Every configured account's feedback at `now`.
pub async fn check_all(
    context: &Context,
    now: Timestamp,
    within: Duration,
) -> Result<Vec<FeedbackCheck>, StatusError> {
    let statuses = status::status(context, now, None).await?;
    let mut checks = Vec::with_capacity(statuses.len());
    for status in statuses.iter().filter(|s| s.configured) {
        let ses_sent = match context.ses.send_quota(&status.name).await {
            Ok(quota) => Some(quota.sent_last_24_hours),
            Err(error) => {
                tracing::warn!(account = %status.name, error = %crate::telemetry::error_chain(&error), "SES's own send count unknown");
                None
            }
        };
        checks.push(judge(status, ses_sent, now, within));
    }
    Ok(checks)
}
