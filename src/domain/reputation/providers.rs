//! The guard's view per mailbox provider: each provider's rates over the window, and the
//! findings an operator must hear of — a surge of bounces that refuse the sender at one
//! provider (`provider_blocked`: the provider is refusing *us*, a blocklist or failed
//! authentication, which no list cleaning fixes), and a provider's complaint rate over the
//! lines Gmail and Yahoo publish for bulk senders (0.1 % to aim under, 0.3 % never to reach).
//! Rates are confidence-bounded like the account's: a finding needs its Wilson lower bound
//! over the line. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::feedback::bounce_reason::BounceReason;
use crate::domain::reputation::confidence::Confidence;
use crate::domain::reputation::counters::ProviderCounts;

/// The provider lines (`[guard.providers]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderLines {
    /// Sender-class bounces per answered message (delivered or bounced) at one provider that
    /// make a block (default 0.05).
    pub block_rate: f64,
    /// Complaints per delivery at one provider that warn (default 0.001, Gmail's and Yahoo's
    /// "aim under").
    pub complaint_warn: f64,
    /// Complaints per delivery at one provider that are critical (default 0.003, their "never
    /// reach").
    pub complaint_critical: f64,
    /// Route the recipients at a provider that blocks an account through the stream's next
    /// account while the block lasts (default false: alert only).
    pub route_around_blocks: bool,
}

impl Default for ProviderLines {
    fn default() -> Self {
        Self {
            block_rate: 0.05,
            complaint_warn: 0.001,
            complaint_critical: 0.003,
            route_around_blocks: false,
        }
    }
}

/// One provider's figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderFigures {
    /// The provider's name (`google`, `microsoft`, ..., `other`).
    pub provider: String,
    /// What it answered.
    pub counts: ProviderCounts,
    /// Sender-class bounces per answered message.
    pub sender_bounce_rate: f64,
    /// Complaints per delivery.
    pub complaint_rate: f64,
    /// The most frequent reason of its sender-class bounces, if any.
    pub dominant_refusal: Option<BounceReason>,
}

impl ProviderFigures {
    /// The figures of each provider's window totals, busiest first.
    pub fn of_all(totals: &BTreeMap<String, ProviderCounts>) -> Vec<Self> {
        let mut all: Vec<Self> = totals
            .iter()
            .map(|(provider, counts)| Self::of(provider, *counts))
            .collect();
        all.sort_by_key(|f| std::cmp::Reverse(f.counts.answered()));
        all
    }

    /// The figures of one provider's counts.
    pub fn of(provider: &str, counts: ProviderCounts) -> Self {
        let ratio = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 / whole as f64
            }
        };
        let refusals = [
            (BounceReason::Blocked, counts.blocked),
            (BounceReason::Authentication, counts.authentication),
            (BounceReason::Policy, counts.policy),
        ];
        let dominant_refusal = refusals
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n)
            .map(|(reason, _)| reason);
        Self {
            provider: provider.to_owned(),
            sender_bounce_rate: ratio(counts.sender_bounces(), counts.answered()),
            complaint_rate: ratio(counts.complaints, counts.deliveries),
            counts,
            dominant_refusal,
        }
    }
}

/// Something about one provider an operator must hear of.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum ProviderFinding {
    /// The provider refuses the sender: blocklist, reputation, authentication or policy.
    ProviderBlocked {
        /// The provider.
        provider: String,
        /// Sender-class bounces per answered message.
        rate: f64,
        /// Its lower confidence bound, the figure that decided.
        lower_bound: f64,
        /// The most frequent refusal.
        reason: BounceReason,
        /// Sender-class bounces and answered messages.
        refused: u64,
        /// Answered messages.
        answered: u64,
    },
    /// The provider's complaint rate is over a published line.
    ProviderComplaints {
        /// The provider.
        provider: String,
        /// `warn` (over 0.1 %) or `critical` (over 0.3 %).
        level: String,
        /// Complaints per delivery.
        rate: f64,
        /// Its lower confidence bound, the figure that decided.
        lower_bound: f64,
    },
}

impl ProviderFinding {
    /// The provider it is about.
    pub fn provider(&self) -> &str {
        match self {
            ProviderFinding::ProviderBlocked { provider, .. }
            | ProviderFinding::ProviderComplaints { provider, .. } => provider,
        }
    }

    /// What it says, in a few words: `blocked (authentication)`, `complaints over warn`.
    pub fn summary(&self) -> String {
        match self {
            ProviderFinding::ProviderBlocked { reason, .. } => format!("blocked ({reason})"),
            ProviderFinding::ProviderComplaints { level, .. } => format!("complaints over {level}"),
        }
    }

    /// The kind and provider, as the finding's de-duplication key names them.
    pub fn key(&self) -> String {
        match self {
            ProviderFinding::ProviderBlocked { provider, .. } => {
                format!("provider_blocked:{provider}")
            }
            ProviderFinding::ProviderComplaints {
                provider, level, ..
            } => format!("provider_complaints_{level}:{provider}"),
        }
    }
}

/// The summaries of the findings about `provider`, joined by `; `.
pub fn summaries_for(findings: &[ProviderFinding], provider: &str) -> String {
    findings
        .iter()
        .filter(|f| f.provider() == provider)
        .map(ProviderFinding::summary)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What each provider's window totals show over the lines (see [`findings`]).
pub fn judge(
    totals: &BTreeMap<String, ProviderCounts>,
    lines: &ProviderLines,
    confidence: Confidence,
) -> Vec<ProviderFinding> {
    findings(&ProviderFigures::of_all(totals), lines, confidence)
}

/// The providers among `findings` that block the account.
pub fn blocking(findings: &[ProviderFinding]) -> Vec<String> {
    findings
        .iter()
        .filter_map(|f| match f {
            ProviderFinding::ProviderBlocked { provider, .. } => Some(provider.clone()),
            ProviderFinding::ProviderComplaints { .. } => None,
        })
        .collect()
}

/// What the figures show over the lines; `other` is never judged as one provider.
pub fn findings(
    figures: &[ProviderFigures],
    lines: &ProviderLines,
    confidence: Confidence,
) -> Vec<ProviderFinding> {
    let mut found = Vec::new();
    for f in figures
        .iter()
        .filter(|f| f.provider != crate::domain::feedback::provider::OTHER)
    {
        let c = &f.counts;
        let [low, _] = confidence.interval(c.sender_bounces(), c.answered());
        if let Some(reason) = f.dominant_refusal.filter(|_| low >= lines.block_rate) {
            found.push(ProviderFinding::ProviderBlocked {
                provider: f.provider.clone(),
                rate: f.sender_bounce_rate,
                lower_bound: low,
                reason,
                refused: c.sender_bounces(),
                answered: c.answered(),
            });
        }
        let [low, _] = confidence.interval(c.complaints, c.deliveries);
        let level = if low >= lines.complaint_critical {
            Some("critical")
        } else if low >= lines.complaint_warn {
            Some("warn")
        } else {
            None
        };
        if let Some(level) = level {
            found.push(ProviderFinding::ProviderComplaints {
                provider: f.provider.clone(),
                level: level.to_owned(),
                rate: f.complaint_rate,
                lower_bound: low,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(
        deliveries: u64,
        blocked: u64,
        authentication: u64,
        complaints: u64,
    ) -> ProviderCounts {
        ProviderCounts {
            deliveries,
            blocked,
            authentication,
            complaints,
            ..ProviderCounts::default()
        }
    }

    fn judged(by: &[(&str, ProviderCounts)]) -> Vec<ProviderFinding> {
        let totals = by.iter().map(|(p, c)| ((*p).to_owned(), *c)).collect();
        findings(
            &ProviderFigures::of_all(&totals),
            &ProviderLines::default(),
            Confidence::default(),
        )
    }

    #[test]
    fn a_surge_of_refusals_at_one_provider_is_a_block_naming_its_reason() {
        let found = judged(&[
            ("microsoft", counts(400, 60, 5, 0)),
            ("google", counts(900, 2, 0, 0)),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        let ProviderFinding::ProviderBlocked {
            provider,
            reason,
            refused,
            answered,
            lower_bound,
            ..
        } = &found[0]
        else {
            panic!("{found:?}")
        };
        assert_eq!(
            (provider.as_str(), *reason),
            ("microsoft", BounceReason::Blocked)
        );
        assert_eq!((*refused, *answered), (65, 465));
        assert!(*lower_bound >= 0.05 && *lower_bound < 65.0 / 465.0);
    }

    #[test]
    fn a_few_refusals_in_a_small_sample_are_not_yet_a_block() {
        // 1 of 12 is 8 %, but its lower bound is 1.9 %; 2 of 12 (lower bound 5.7 %) blocks.
        assert!(judged(&[("yahoo", counts(11, 1, 0, 0))]).is_empty());
        assert_eq!(judged(&[("yahoo", counts(10, 2, 0, 0))]).len(), 1);
        // Mail to unknown providers is not one provider.
        assert!(judged(&[("other", counts(100, 90, 0, 0))]).is_empty());
    }

    #[test]
    fn complaint_lines_are_the_providers_published_ones() {
        let found = judged(&[
            ("yahoo", counts(10_000, 0, 0, 40)),
            ("microsoft", counts(10_000, 0, 0, 20)),
            ("apple", counts(10_000, 0, 0, 3)),
        ]);
        let levels: Vec<(String, String)> = found
            .iter()
            .map(|f| match f {
                ProviderFinding::ProviderComplaints {
                    provider, level, ..
                } => (provider.clone(), level.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            levels,
            [
                ("microsoft".to_owned(), "warn".to_owned()),
                ("yahoo".to_owned(), "critical".to_owned())
            ]
        );
    }
}
