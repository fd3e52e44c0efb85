//! The guard's watch over mailbox providers: after an account's review settles, its window's
//! per-provider figures are judged ([`findings`]) and each finding is told to operators once
//! per window length — by the one instance whose de-duplication claim wins — as a notice
//! naming the account, the provider, the rate and the reason that dominates.

use crate::app::Context;
use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::{ChangeSet, Claim};
use crate::domain::reputation::confidence::Confidence;
use crate::domain::reputation::counters::WindowTotals;
use crate::domain::reputation::providers::{ProviderFinding, judge};
use crate::ports::{AccountWindow, AlertSink, ApplyError, FeedbackLedger};
use crate::telemetry::error_chain;

/// Judges providers and tells operators of what it finds.
#[derive(Clone, Copy)]
pub struct ProviderWatch<'a> {
    claims: &'a dyn FeedbackLedger,
    alerts: &'a dyn AlertSink,
    config: &'a Config,
}

impl<'a> ProviderWatch<'a> {
    /// The watch over the store, alerts and settings of `context`.
    pub fn of(context: &'a Context) -> Self {
        Self {
            claims: context.store.as_ref(),
            alerts: context.alerts.as_ref(),
            config: &context.config,
        }
    }

    /// Judges the buckets of `account`'s window read in `[first, last]`; returns the findings
    /// this instance told operators of (each at most once per window length, whichever
    /// instance sees it first).
    pub async fn watch(
        &self,
        account: &str,
        read: &AccountWindow,
        (first, last): (Timestamp, Timestamp),
        now: Timestamp,
    ) -> Vec<ProviderFinding> {
        let totals = WindowTotals::sum(&read.buckets, first, last);
        if totals.providers.is_empty() {
            return Vec::new();
        }
        let confidence = Confidence::new(self.config.thresholds_for(account).confidence);
        let found = judge(&totals.providers, &self.config.guard.providers, confidence);
        let mut told = Vec::new();
        for finding in found {
            if self.first_to_see(account, &finding, now).await {
                self.tell(account, &finding).await;
                told.push(finding);
            }
        }
        told
    }

    /// Claims the finding for a window length; false when another review told it already, or
    /// the claim could not be written (the next review tries again).
    async fn first_to_see(&self, account: &str, finding: &ProviderFinding, now: Timestamp) -> bool {
        let window = self.config.ingest_policy().window;
        let claim = ChangeSet {
            now,
            claims: vec![Claim {
                key: format!("alert:{account}:{}", finding.key()),
                expires_at: now.plus(window.length),
            }],
            ..ChangeSet::default()
        };
        match self.claims.apply(&claim).await {
            Ok(()) => true,
            Err(ApplyError::AlreadyApplied(_)) => false,
            Err(error) => {
                tracing::error!(account, finding = %finding.key(), error = %error_chain(&error), "provider finding not claimed: told at the next review");
                false
            }
        }
    }

    async fn tell(&self, account: &str, finding: &ProviderFinding) {
        let (subject, mut body) = match finding {
            ProviderFinding::ProviderBlocked {
                provider, reason, ..
            } => (
                format!("sesguard: {account} blocked at {provider} ({reason})"),
                serde_json::json!({"alert": "provider_blocked", "what_to_do":
                    "the provider refuses the sender, not the addresses: check the sending IPs and domain against blocklists and its postmaster pages, and authentication (SPF, DKIM, DMARC); the addresses stay sendable"}),
            ),
            ProviderFinding::ProviderComplaints {
                provider, level, ..
            } => (
                format!("sesguard: {account} complaints at {provider} over the {level} line"),
                serde_json::json!({"alert": "provider_complaints"}),
            ),
        };
        let detail = serde_json::to_value(finding).unwrap_or_default();
        if let (Some(body), Some(detail)) = (body.as_object_mut(), detail.as_object()) {
            body.insert("account".into(), account.into());
            body.extend(detail.clone());
        }
        tracing::warn!(account, subject = %subject, "provider finding");
        if let Err(error) = self.alerts.notice(&subject, &body).await {
            tracing::error!(account, error = %error_chain(&error), "provider finding not delivered");
        }
    }
}
