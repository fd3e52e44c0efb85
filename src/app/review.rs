//! The guard use case: after each ingest batch, every account the batch touched is reviewed —
//! one window query (counters and state together), the domain's decision, a conditional
//! write of the transition with its history entry, and an alert from the one instance whose
//! write won. An instance that loses the race writes and sends nothing.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::WindowTotals;
use crate::domain::reputation::guard::{self, Alert, HistoryEntry, Transition, traffic_after};
use crate::ports::{AlertSink, CounterWindow, GuardLedger, SesAccount, StoreError};
use crate::telemetry::error_chain;

/// Reviews accounts after a batch.
pub struct Guard<'a> {
    counters: &'a dyn CounterWindow,
    ledger: &'a dyn GuardLedger,
    alerts: &'a dyn AlertSink,
    ses: &'a dyn SesAccount,
    config: &'a Config,
}

/// A transition this instance applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The account.
    pub account: String,
    /// What changed.
    pub transition: Transition,
    /// What operators were told.
    pub alert: Alert,
}

/// An account's rates and state after a review, for metrics and alarms.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// The account.
    pub account: String,
    /// Hard bounces per send over the window.
    pub bounce_rate: f64,
    /// Complaints per send over the window.
    pub complaint_rate: f64,
    /// Sends in the window.
    pub window_sends: u64,
    /// Whether it is paused now.
    pub paused: bool,
    /// How many of its streams are quarantined.
    pub quarantined: usize,
}

/// What a review did and saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Review {
    /// The transitions this instance applied.
    pub applied: Vec<Applied>,
    /// Every reviewed account as it is now.
    pub gauges: Vec<Gauge>,
}

impl<'a> Guard<'a> {
    /// A guard over these ports and settings.
    pub fn new(
        counters: &'a dyn CounterWindow,
        ledger: &'a dyn GuardLedger,
        alerts: &'a dyn AlertSink,
        ses: &'a dyn SesAccount,
        config: &'a Config,
    ) -> Self {
        Self {
            counters,
            ledger,
            alerts,
            ses,
            config,
        }
    }

    /// Reviews each account once; returns the transitions this instance applied.
    pub async fn review(
        &self,
        accounts: &BTreeSet<String>,
        now: Timestamp,
    ) -> Result<Review, StoreError> {
        let window = self.config.ingest_policy().window;
        let (first, last) = window.buckets_ending(now);
        let mut review = Review::default();
        for account in accounts {
            let read = self.counters.window(account, first, last).await?;
            let totals = WindowTotals::sum(&read.buckets, first, last);
            let thresholds = self.config.thresholds_for(account);
            let auto_resume = self.config.auto_resume(account);
            let transition = guard::evaluate(&read.state, &totals, &thresholds, auto_resume, now);
            let state = transition.as_ref().map_or(&read.state, |t| &t.next);
            review.gauges.push(Gauge {
                account: account.clone(),
                bounce_rate: totals.total.bounce_rate(),
                complaint_rate: totals.total.complaint_rate(),
                window_sends: totals.total.sends,
                paused: state.is_paused(now),
                quarantined: state.quarantined.len(),
            });
            let Some(transition) = transition else {
                continue;
            };
            let entry = transition.history(account, "guard", now);
            let expires = now.plus(self.config.guard.history_ttl);
            if !self
                .ledger
                .transition(
                    account,
                    read.state.version,
                    &transition.next,
                    &entry,
                    expires,
                )
                .await?
            {
                tracing::info!(account = %account, "another instance changed the state first");
                continue;
            }
            let mut alert = alert_for(self.config, entry);
            enforce(self.ses, &mut alert).await;
            if let Err(error) = self.alerts.publish(&alert).await {
                tracing::error!(account = %account, error = %error_chain(&error), "transition applied but its alert was not delivered");
            }
            review.applied.push(Applied {
                account: account.clone(),
                transition,
                alert,
            });
        }
        Ok(review)
    }
}

/// The alert describing a transition recorded as `entry`, with where traffic goes now.
pub fn alert_for(config: &Config, entry: HistoryEntry) -> Alert {
    let streams: Vec<(&str, &[String])> = config
        .streams
        .iter()
        .map(|s| (s.name.as_str(), s.accounts.as_slice()))
        .collect();
    let traffic = traffic_after(
        &entry.account,
        entry.stream.as_deref(),
        &entry.from,
        &entry.to,
        &streams,
    );
    Alert {
        change: entry,
        traffic,
    }
}

/// Applies an account-wide pause or resume at SES itself, when the account asks for it, and
/// adds the outcome to the alert.
pub async fn enforce(ses: &dyn SesAccount, alert: &mut Alert) {
    let change = &alert.change;
    let enabled = match (
        change.stream.is_some(),
        change.from.as_str(),
        change.to.as_str(),
    ) {
        (false, _, "paused") => false,
        (false, "paused", "active") => true,
        _ => return,
    };
    match ses.set_sending(&change.account, enabled).await {
        Ok(false) => {}
        Ok(true) => {
            let state = if enabled { "on" } else { "off" };
            alert
                .traffic
                .push_str(&format!("; SES sending switched {state}"));
        }
        Err(error) => {
            let error = error_chain(&error);
            tracing::error!(account = %change.account, %error, "SES enforcement failed");
            alert
                .traffic
                .push_str(&format!("; SES enforcement failed: {error}"));
        }
    }
}
