//! What the store keeps for prevention: each recipient domain's mail answer until it expires
//! (shared by every instance, so DNS is asked once per domain and TTL), and the count of
//! recipients prevention refused or flagged, per day, stream and reason.

use super::*;
use crate::domain::sending::prevention::{MailDomain, Undeliverable};

/// Where a domain's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// A DNS lookup.
    Dns,
    /// A bounce that said the host or domain was not found (`host_unknown`).
    Feedback,
}

impl AnswerSource {
    /// The source as the store names it.
    pub fn name(self) -> &'static str {
        match self {
            AnswerSource::Dns => "dns",
            AnswerSource::Feedback => "feedback",
        }
    }

    /// The source named `name` (anything else is DNS).
    pub fn parse(name: &str) -> Self {
        if name == "feedback" {
            AnswerSource::Feedback
        } else {
            AnswerSource::Dns
        }
    }
}

/// A domain's mail answer, kept until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DomainRecord {
    /// The domain (lower-case).
    pub domain: String,
    /// What its DNS says of its mail.
    pub answer: MailDomain,
    /// Where the answer came from.
    pub source: AnswerSource,
    /// When it is to be asked again.
    pub expires_at: Timestamp,
}

/// What prevention did to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreventAction {
    /// Left out of the message (`prevent = "refuse"`).
    Refused,
    /// Sent, and counted (`prevent = "flag"`).
    Flagged,
}

impl PreventAction {
    /// The action as the store names it.
    pub fn name(self) -> &'static str {
        match self {
            PreventAction::Refused => "refused",
            PreventAction::Flagged => "flagged",
        }
    }

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Refused, Self::Flagged]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// Recipients prevention refused or flagged in one stream for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PreventedKey {
    /// The stream.
    pub stream: String,
    /// Why.
    pub reason: Undeliverable,
    /// What was done.
    pub action: PreventAction,
}

/// Keeps prevention's answers and counts.
#[async_trait]
pub trait DomainLedger: Send + Sync {
    /// The unexpired records of `domains` at `now` (absent: never asked, or expired). DynamoDB:
    /// one `BatchGetItem` per 100 domains, eventually consistent.
    async fn domains(
        &self,
        domains: &[String],
        now: Timestamp,
    ) -> Result<Vec<DomainRecord>, StoreError>;

    /// Keeps `records`, each over any earlier answer of its domain (25 to a `BatchWriteItem`).
    async fn put_domains(&self, records: &[DomainRecord]) -> Result<(), StoreError>;

    /// Adds `counts` to the day's (`YYYY-MM-DD`, UTC) counts, in one write.
    async fn count_prevented(
        &self,
        day: &str,
        counts: &BTreeMap<PreventedKey, u64>,
    ) -> Result<(), StoreError>;

    /// The day's counts.
    async fn prevented(&self, day: &str) -> Result<BTreeMap<PreventedKey, u64>, StoreError>;
}
