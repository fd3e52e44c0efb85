//! Ingest planning. Each SES notification is assessed into its [`Effects`] (a de-duplication
//! key, per-address events, counter increments) or ignored; a batch of effects becomes the one
//! atomic [`ChangeSet`] the store applies: one claim per notification, one update per distinct
//! address, one counter delta per account bucket. Pure: the stored address states and the
//! current time are passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::domain::common::address::{AddressError, EmailAddress};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::Attribution;
use crate::domain::feedback::suppression::{
    AddressState, BounceDetail, FeedbackRecord, Reason, SoftBouncePolicy, SoftWrite,
    SuppressionUpdate,
};
use crate::domain::reputation::counters::{
    Bucket, CounterDelta, Counts, ProviderCounts, WindowConfig,
};

/// SES mailbox simulator addresses: never suppressed, never counted (SES does not count them).
pub const SIMULATOR_DOMAIN: &str = "simulator.amazonses.com";

/// The configurable rules of the ingest path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestPolicy {
    /// When soft bounces suppress.
    pub soft_bounce: SoftBouncePolicy,
    /// The rolling window of the account counters.
    pub window: WindowConfig,
    /// How long the de-duplication claim of a bounce or complaint is kept (default 14 days,
    /// the longest an SQS message, or its copy in a dead-letter queue, lives).
    pub dedup_ttl: Duration,
    /// How long the claim of a Send or Delivery event is kept (default 6 hours): they come
    /// back only as redeliveries, within minutes (README, "Scale"); a late copy would count
    /// one send or delivery twice, never suppress or pause anything. At 1,000 sends a second
    /// these are two claims per message: 43 million live items at 6 hours, not 2.4 billion.
    pub report_dedup_ttl: Duration,
    /// Whether feedback about mailbox-simulator recipients counts (default: it does not, as
    /// SES's own rates ignore it). For rehearsals on an emulator only.
    pub simulator: SimulatorFeedback,
}

/// What sesguard does with feedback about SES mailbox-simulator recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulatorFeedback {
    /// Neither counted nor suppressed, as SES does (the default).
    #[default]
    Ignore,
    /// Counted in the account's rates and so seen by the guard, but never suppressed, so that
    /// a simulator address keeps producing the feedback a rehearsal needs.
    Count,
}

impl IngestPolicy {
    /// How long the claim of `effects` is kept: a notification that suppresses or counts
    /// against the account's reputation as long as any copy of it can arrive, a report of a
    /// send or delivery as long as a redelivery can.
    pub fn claim_ttl(&self, effects: &Effects) -> Duration {
        let feedback =
            effects.counts.hard_bounces + effects.counts.soft_bounces + effects.counts.complaints
                > 0
                || effects
                    .addresses
                    .iter()
                    .any(|a| !matches!(a.kind, AddressEventKind::Delivered));
        if feedback {
            self.dedup_ttl
        } else {
            self.report_dedup_ttl.min(self.dedup_ttl)
        }
    }
}

impl Default for IngestPolicy {
    fn default() -> Self {
        Self {
            soft_bounce: SoftBouncePolicy::default(),
            window: WindowConfig::default(),
            dedup_ttl: Duration::from_secs(14 * 24 * 3600),
            report_dedup_ttl: Duration::from_secs(6 * 3600),
            simulator: SimulatorFeedback::Ignore,
        }
    }
}

/// What one notification asks of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    /// De-duplication key: the SES feedback id where there is one, so the same feedback in
    /// another wrapper or format is recognised.
    pub key: String,
    /// The account and stream it is counted under.
    pub attribution: Attribution,
    /// SES message id.
    pub message_id: String,
    /// SES feedback id (bounces and complaints).
    pub feedback_id: Option<String>,
    /// When the event happened.
    pub at: Timestamp,
    /// When the mail it is about was sent (`mail.timestamp`; the event's time without one):
    /// the bucket it is counted in.
    pub sent_at: Timestamp,
    /// What it adds to the account's counters.
    pub counts: Counts,
    /// What it adds to each mailbox provider's counters.
    pub providers: BTreeMap<&'static str, ProviderCounts>,
    /// What it does to each recipient.
    pub addresses: Vec<AddressEvent>,
    /// Recipients whose address could not be parsed: reported, never stored.
    pub invalid: Vec<AddressError>,
}

/// One recipient's part in a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressEvent {
    /// The recipient.
    pub email: EmailAddress,
    /// What happened to it.
    pub kind: AddressEventKind,
}

/// What happened to a recipient.
#[derive(Debug, Clone, PartialEq)]
pub enum AddressEventKind {
    /// Permanent bounce of the address class: suppress with reason `bounce`.
    HardBounce(BounceDetail),
    /// Transient or undetermined bounce, or a permanent one of the temporary class: counted
    /// toward the soft-bounce threshold.
    SoftBounce(BounceDetail),
    /// The receiver refused the sender, not the address: recorded on the address only.
    SenderBounce(BounceDetail),
    /// Complaint: suppress with reason `complaint` unless it is `not-spam`.
    Complaint {
        /// `complaintFeedbackType`.
        feedback_type: Option<String>,
        /// False for `not-spam`: recorded only.
        suppress: bool,
    },
    /// Delivered: forgets earlier soft bounces.
    Delivered,
}

/// The verdict on one notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// Record it.
    Apply(Box<Effects>),
    /// Nothing to record; the reason says why.
    Ignore(String),
}

mod assess;
pub use assess::assess;

/// A de-duplication claim: written only if no live claim with the key exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The notification's key.
    pub key: String,
    /// When the claim may be forgotten.
    pub expires_at: Timestamp,
}

/// Everything one batch writes, applied atomically: all of it or none of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeSet {
    /// The time of planning; claims older than this that have expired do not count.
    pub now: Timestamp,
    /// One claim per notification.
    pub claims: Vec<Claim>,
    /// One update per distinct address.
    pub suppressions: Vec<SuppressionUpdate>,
    /// One counter delta per account bucket.
    pub counters: Vec<CounterDelta>,
    /// Accounts not in the configuration, registered so that status can list them.
    pub new_accounts: Vec<String>,
}

impl ChangeSet {
    /// How many items the change writes.
    pub fn items(&self) -> usize {
        self.claims.len() + self.suppressions.len() + self.counters.len() + self.new_accounts.len()
    }

    /// How many addresses it suppresses (or confirms as suppressed).
    pub fn suppressing(&self) -> usize {
        self.suppressions
            .iter()
            .filter(|s| s.suppress.is_some())
            .count()
    }
}

/// The addresses whose stored state the plan needs: those with a soft bounce, a bounce that
/// refuses the sender, or a delivery.
pub fn addresses_to_read(batch: &[Effects]) -> Vec<EmailAddress> {
    let set: BTreeSet<&EmailAddress> = batch
        .iter()
        .flat_map(|e| &e.addresses)
        .filter(|a| {
            matches!(
                a.kind,
                AddressEventKind::SoftBounce(_)
                    | AddressEventKind::SenderBounce(_)
                    | AddressEventKind::Delivered
            )
        })
        .map(|a| &a.email)
        .collect();
    set.into_iter().cloned().collect()
}

/// Where each account's counter buckets start afresh ([`AccountState::origins`]); an account
/// left out has none.
///
/// [`AccountState::origins`]: crate::domain::reputation::state::AccountState::origins
pub type Origins = HashMap<String, Vec<Timestamp>>;

/// Plans the writes for a batch of distinct notifications. `states` holds what the store
/// said of [`addresses_to_read`]; a missing entry means no record. Counts go to the bucket of
/// the time the mail was sent, so that feedback is judged with the mail it is about.
pub fn plan(
    batch: &[Effects],
    states: &HashMap<EmailAddress, AddressState>,
    origins: &Origins,
    policy: &IngestPolicy,
    now: Timestamp,
) -> ChangeSet {
    let claims = batch
        .iter()
        .map(|e| Claim {
            key: e.key.clone(),
            expires_at: now.plus(policy.claim_ttl(e)),
        })
        .collect();

    let mut by_address: BTreeMap<&EmailAddress, Vec<(&Effects, &AddressEventKind)>> =
        BTreeMap::new();
    for effects in batch {
        for event in &effects.addresses {
            by_address
                .entry(&event.email)
                .or_default()
                .push((effects, &event.kind));
        }
    }
    let suppressions = by_address
        .into_iter()
        .filter_map(|(email, mut events)| {
            events.sort_by_key(|(effects, _)| effects.at);
            let state = states.get(email).cloned().unwrap_or_default();
            merge_address(email, &events, state, &policy.soft_bounce)
        })
        .collect();

    let mut buckets: BTreeMap<(&str, Timestamp), Bucket> = BTreeMap::new();
    let mut new_accounts = BTreeSet::new();
    for effects in batch
        .iter()
        .filter(|e| !e.counts.is_zero() || !e.providers.is_empty())
    {
        let account = effects.attribution.account.as_str();
        let from = origins.get(account).map_or(&[][..], Vec::as_slice);
        let start = policy.window.bucket_from(effects.sent_at, from);
        let bucket = buckets
            .entry((&effects.attribution.account, start))
            .or_insert_with(|| Bucket {
                start,
                ..Bucket::default()
            });
        bucket.total += effects.counts;
        if let Some(stream) = &effects.attribution.stream {
            *bucket.streams.entry(stream.clone()).or_default() += effects.counts;
        }
        for (provider, counts) in &effects.providers {
            *bucket.providers.entry((*provider).to_owned()).or_default() += *counts;
        }
        if !effects.attribution.configured {
            new_accounts.insert(effects.attribution.account.clone());
        }
    }
    let counters = buckets
        .into_iter()
        .map(|((account, start), bucket)| CounterDelta {
            account: account.to_owned(),
            bucket,
            expires_at: policy.window.bucket_expiry(start),
        })
        .collect();

    ChangeSet {
        now,
        claims,
        suppressions,
        counters,
        new_accounts: new_accounts.into_iter().collect(),
    }
}

/// Folds one address's events (oldest first) into its update; `None` when nothing changes.
fn merge_address(
    email: &EmailAddress,
    events: &[(&Effects, &AddressEventKind)],
    state: AddressState,
    soft_policy: &SoftBouncePolicy,
) -> Option<SuppressionUpdate> {
    let mut suppress = None;
    let mut feedback: Option<FeedbackRecord> = None;
    let mut soft_times = state.soft_bounces.clone();
    let mut soft_changed = false;
    let mut last_at = Timestamp::EPOCH;

    for (effects, kind) in events {
        last_at = effects.at;
        match kind {
            AddressEventKind::HardBounce(detail) => {
                record_feedback(&mut feedback, effects, Some(detail), None);
                suppress.get_or_insert(Reason::Bounce);
            }
            AddressEventKind::SenderBounce(detail) => {
                record_feedback(&mut feedback, effects, Some(detail), None);
                // Written like soft-bounce state, on the version read: a record of a sendable
                // address expires with the soft-bounce window instead of staying for good.
                soft_changed = true;
            }
            AddressEventKind::SoftBounce(detail) => {
                record_feedback(&mut feedback, effects, Some(detail), None);
                soft_changed = true;
                if soft_policy.record(&mut soft_times, effects.at) {
                    suppress.get_or_insert(Reason::SoftBounce);
                }
            }
            AddressEventKind::Complaint {
                feedback_type,
                suppress: suppresses,
            } => {
                record_feedback(&mut feedback, effects, None, Some(feedback_type));
                if *suppresses {
                    suppress.get_or_insert(Reason::Complaint);
                }
            }
            AddressEventKind::Delivered => {
                soft_changed |= soft_policy.reset(&mut soft_times, effects.at);
            }
        }
    }

    let soft = soft_changed.then(|| {
        let stays_unsuppressed = !state.suppressed && suppress.is_none();
        SoftWrite {
            expected_version: state.version,
            bounces: soft_times,
            expires_at: stays_unsuppressed.then(|| last_at.plus(soft_policy.window)),
        }
    });
    if suppress.is_none() && feedback.is_none() && soft.is_none() {
        return None;
    }
    Some(SuppressionUpdate {
        email: email.clone(),
        suppress,
        feedback,
        soft,
    })
}

/// Adds one event's feedback to the address's record: when first and last seen, how many
/// events, the latest message and feedback ids, the bounce's or complaint's details.
fn record_feedback(
    feedback: &mut Option<FeedbackRecord>,
    effects: &Effects,
    bounce: Option<&BounceDetail>,
    complaint_type: Option<&Option<String>>,
) {
    let entry = feedback.get_or_insert_with(|| FeedbackRecord {
        first_seen: effects.at,
        last_seen: effects.at,
        events: 0,
        bounce: None,
        complaint_feedback_type: None,
        message_id: String::new(),
        feedback_id: None,
    });
    entry.last_seen = effects.at;
    entry.events += 1;
    entry.message_id.clone_from(&effects.message_id);
    entry.feedback_id.clone_from(&effects.feedback_id);
    if let Some(detail) = bounce {
        entry.bounce = Some(detail.clone());
    }
    if let Some(feedback_type) = complaint_type {
        entry.complaint_feedback_type.clone_from(feedback_type);
    }
}

#[cfg(test)]
mod tests;
