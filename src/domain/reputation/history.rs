//! What is told of a transition: the history entry every change leaves, the alert operators
//! receive, and where the affected traffic goes now.

use serde::{Deserialize, Serialize};

use crate::domain::common::names::AccountName;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::confidence::Confidence;
use crate::domain::reputation::counters::Counts;
use crate::domain::reputation::ses_view::SesView;
use crate::domain::reputation::state::{Cause, StateName};

/// Rates at the time of a transition, as history and alerts report them: the mail that
/// decided, how sure its rates were, and the account as SES sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSnapshot {
    /// Bounce rate of the mail that decided.
    pub bounce_rate: f64,
    /// Complaint rate of the mail that decided.
    pub complaint_rate: f64,
    /// Sends of the mail that decided.
    pub window_sends: u64,
    /// The confidence intervals of those rates.
    pub bounds: Bounds,
    /// The account as SES sees it then.
    pub ses: SesView,
}

impl RateSnapshot {
    /// The snapshot of the `counts` that decided, their intervals at `confidence`, and the
    /// account as SES sees it.
    pub fn of(counts: &Counts, confidence: Confidence, ses: SesView) -> Self {
        Self {
            bounce_rate: counts.bounce_rate(),
            complaint_rate: counts.complaint_rate(),
            window_sends: counts.sends,
            bounds: Bounds::of(counts, confidence),
            ses,
        }
    }
}

/// The confidence intervals `[low, high]` of a window's rates.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Bounds {
    /// Of the bounce rate.
    pub bounce: [f64; 2],
    /// Of the complaint rate.
    pub complaint: [f64; 2],
}

impl Bounds {
    /// The intervals of `counts` at `confidence`.
    pub fn of(counts: &Counts, confidence: Confidence) -> Self {
        Self {
            bounce: confidence.interval(counts.hard_bounces, counts.sends),
            complaint: confidence.interval(counts.complaints, counts.sends),
        }
    }
}

/// One line of an account's history: every state change, by the guard or an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub at: Timestamp,
    /// The account.
    pub account: String,
    /// The stream, for a quarantine or its lifting.
    pub stream: Option<String>,
    /// State before.
    pub from: StateName,
    /// State after.
    pub to: StateName,
    /// Why.
    pub cause: Cause,
    /// An operator's note.
    pub note: Option<String>,
    /// On probation after the change: the share of the traffic the account (or the stream
    /// on it) takes now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// Account bounce rate then.
    pub bounce_rate: f64,
    /// Account complaint rate then.
    pub complaint_rate: f64,
    /// Sends in the window then.
    pub window_sends: u64,
    /// How sure those rates were: their confidence intervals (absent in entries written
    /// before sesguard recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Bounds>,
    /// The account's rates as SES saw it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ses: Option<SesView>,
    /// Who: `guard` or `operator:NAME`.
    pub actor: String,
}

impl HistoryEntry {
    /// The rates that decided and the account as SES sees it, in words:
    /// `bounce 8.80 % (7.2–10.6) over 250 sends; as SES sees it bounce 5.21 %`.
    pub fn rates_text(&self) -> String {
        let mut text = format!("bounce {:.2} %", self.bounce_rate * 100.0);
        if let Some(b) = self.bounds {
            text.push_str(&format!(
                " ({:.1}–{:.1})",
                b.bounce[0] * 100.0,
                b.bounce[1] * 100.0
            ));
        }
        text.push_str(&format!(
            " complaint {:.3} % over {} sends",
            self.complaint_rate * 100.0,
            self.window_sends
        ));
        if let Some(view) = self.ses {
            text.push_str(&format!(
                "; as SES sees it bounce {:.2} % complaint {:.3} %",
                view.bounce_rate * 100.0,
                view.complaint_rate * 100.0
            ));
            if let Some(r) = view.reported {
                let shown = |v: Option<f64>, digits: usize| {
                    v.map_or_else(|| "-".to_owned(), |v| format!("{:.*} %", digits, v * 100.0))
                };
                text.push_str(&format!(
                    " (SES reports bounce {}, complaint {})",
                    shown(r.bounce_rate, 2),
                    shown(r.complaint_rate, 3)
                ));
            }
        }
        text
    }
}

/// What operators are told about a transition: the history entry (account, stream, old and
/// new state, cause, rates, actor) and where the affected traffic goes now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The change, as history records it.
    #[serde(flatten)]
    pub change: HistoryEntry,
    /// Where the affected traffic goes now.
    pub traffic: String,
}

impl Alert {
    /// A one-line summary (an SNS subject is at most 100 characters).
    pub fn subject(&self) -> String {
        let c = &self.change;
        let what = match &c.stream {
            Some(stream) => format!(
                "sesguard: {} stream {stream} {} -> {}",
                c.account, c.from, c.to
            ),
            None => format!("sesguard: {} {} -> {}", c.account, c.from, c.to),
        };
        what.chars().take(100).collect()
    }
}

/// Where traffic goes after `account` moves from `from` to `to` (for `stream`, when the
/// change is a quarantine or its lifting), given each stream's accounts in failover order and,
/// on probation, the `share` of the traffic the account takes back.
pub fn traffic_after(
    account: &str,
    stream: Option<&str>,
    (from, to): (StateName, StateName),
    share: Option<f64>,
    streams: &[(&str, &[AccountName])],
) -> String {
    let affected: Vec<&(&str, &[AccountName])> = streams
        .iter()
        .filter(|(name, accounts)| {
            stream.is_none_or(|s| s == *name) && accounts.iter().any(|a| a == account)
        })
        .collect();
    if affected.is_empty() {
        return format!("no configured stream uses `{account}`");
    }
    if let (Some(share), StateName::Probation) = (share, to) {
        let names: Vec<&str> = affected.iter().map(|(name, _)| *name).collect();
        return format!(
            "{account} takes {:.0} % of {} (probation); the rest goes where it went during the incident",
            share * 100.0,
            names.join(", "),
        );
    }
    let resumed = to == StateName::Active
        && matches!(
            from,
            StateName::Paused | StateName::Quarantined | StateName::Probation
        );
    if !resumed && !to.is_stopped() {
        return format!("traffic unchanged: {account} keeps sending");
    }
    let lines: Vec<String> = affected
        .iter()
        .map(|(name, accounts)| {
            if resumed {
                return format!("{name} may use {account} again");
            }
            let position = accounts.iter().position(|a| a == account).unwrap_or(0);
            match accounts.get(position + 1..).and_then(|rest| rest.first()) {
                Some(next) => format!("{name} fails over to {next}"),
                None => format!("{name} has no account after {account}: deferred"),
            }
        })
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn alerts_say_where_the_traffic_goes_now() {
        let name = |text: &str| AccountName::parse(text).unwrap();
        let both = [name("primary"), name("backup")];
        let alone = [name("primary")];
        let streams: [(&str, &[AccountName]); 2] = [("verification", &both), ("bulk", &alone)];
        assert_eq!(
            traffic_after(
                "primary",
                Some("verification"),
                (StateName::Active, StateName::Quarantined),
                None,
                &streams
            ),
            "verification fails over to backup"
        );
        assert_eq!(
            traffic_after(
                "primary",
                None,
                (StateName::Warning, StateName::Paused),
                None,
                &streams
            ),
            "verification fails over to backup; bulk has no account after primary: deferred"
        );
        assert_eq!(
            traffic_after(
                "backup",
                None,
                (StateName::Paused, StateName::Active),
                None,
                &streams
            ),
            "verification may use backup again"
        );
        assert_eq!(
            traffic_after(
                "primary",
                Some("verification"),
                (StateName::Quarantined, StateName::Active),
                None,
                &streams
            ),
            "verification may use primary again"
        );
        assert_eq!(
            traffic_after(
                "primary",
                None,
                (StateName::Active, StateName::Warning),
                None,
                &streams
            ),
            "traffic unchanged: primary keeps sending"
        );
        assert_eq!(
            traffic_after(
                "primary",
                None,
                (StateName::Warning, StateName::Active),
                None,
                &streams
            ),
            "traffic unchanged: primary keeps sending"
        );
        assert_eq!(
            traffic_after(
                "other",
                None,
                (StateName::Active, StateName::Paused),
                None,
                &streams
            ),
            "no configured stream uses `other`"
        );
        assert_eq!(
            traffic_after(
                "primary",
                Some("verification"),
                (StateName::Quarantined, StateName::Probation),
                Some(0.25),
                &streams
            ),
            "primary takes 25 % of verification (probation); the rest goes where it went during the incident"
        );
        assert_eq!(
            traffic_after(
                "primary",
                None,
                (StateName::Probation, StateName::Active),
                None,
                &streams
            ),
            "verification may use primary again; bulk may use primary again"
        );
    }

    #[test]
    fn an_alert_subject_fits_sns() {
        let entry = HistoryEntry {
            at: NOW,
            account: "a".repeat(120),
            stream: None,
            from: StateName::Active,
            to: StateName::Paused,
            cause: Cause::BounceRate,
            note: None,
            share: None,
            bounce_rate: 0.1,
            complaint_rate: 0.0,
            window_sends: 1,
            bounds: None,
            ses: None,
            actor: "guard".into(),
        };
        let alert = Alert {
            change: entry,
            traffic: String::new(),
        };
        assert_eq!(alert.subject().chars().count(), 100);
        assert!(alert.subject().starts_with("sesguard: aaa"));
    }
}
