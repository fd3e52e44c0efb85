//! The ingest use case: records arrive (already peeled of their wrappers), each is assessed
//! by the domain, and the batch is applied to the store as one atomic change per attempt.
//! Duplicates — a claim already held, or the same notification twice in one batch — change
//! nothing; a conflict with another instance means read again and plan again; a store failure
//! fails every record of the batch for retry, so nothing is acknowledged that was not stored.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::app::Context;
use crate::app::prevent::Screen;
use crate::app::review::{Applied, Gauge, Guard, Review};
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::AccountDirectory;
use crate::domain::feedback::bounce_reason::BounceReason;
use crate::domain::feedback::notification::Event;
use crate::domain::feedback::plan::{
    self, AddressEventKind, Assessment, ChangeSet, Effects, IngestPolicy, Origins,
};
use crate::domain::feedback::suppression::AddressState;
use crate::domain::sending::send_record::{SEND_TAG, SendKey};
use crate::domain::sns::unwrap::{Content, Delivered, EnvelopeError, SnsIds};
use crate::ports::{ApplyError, FeedbackLedger, SendLedger, StoreError};
use crate::telemetry::error_chain;

/// How many times a batch is planned again after conflicting with another instance.
const MAX_CONFLICTS: usize = 8;

/// One delivered record, its wrapper removed.
#[derive(Debug)]
pub struct Inbound {
    /// How the caller names the record: SQS `messageId`, SNS `MessageId`, `FILE#N`.
    pub id: String,
    /// The record's content, or why it could not be read.
    pub content: Result<Content, InboundError>,
    /// The SNS envelope's ids, when there was one.
    pub sns: Option<SnsIds>,
}

impl Inbound {
    /// The record of a body peeled of its wrappers, or of why it could not be.
    pub fn opened(id: String, opened: Result<Delivered, EnvelopeError>) -> Self {
        match opened {
            Ok(delivered) => Inbound {
                id,
                sns: delivered.sns,
                content: Ok(delivered.content),
            },
            Err(error) => Inbound {
                id,
                sns: None,
                content: Err(error.into()),
            },
        }
    }
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The body (or notification inside it) is malformed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The SNS envelope did not verify (`sesguard ingest --verify`): forged, stale, from a
    /// topic not allowed, or not an envelope at all.
    #[error("not verified: {0}")]
    Unverified(String),
    /// The record's wrapper is malformed (an SQS record without a body, an SNS record
    /// without its fields).
    #[error("malformed {wrapper} record: {detail}")]
    Wrapper {
        /// `SQS` or `SNS`.
        wrapper: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; `suppressed` addresses were suppressed (or confirmed suppressed).
    Recorded {
        /// How many of its addresses it suppressed.
        suppressed: usize,
    },
    /// Recorded before: nothing changed.
    Duplicate,
    /// Nothing to record; the text says why.
    Ignored(String),
    /// Cannot be processed, ever: goes to the dead-letter path.
    Malformed(String),
    /// Not stored because the store failed: retry it.
    Failed(String),
}

impl Outcome {
    /// The name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Recorded { .. } => "recorded",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored(_) => "ignored",
            Outcome::Malformed(_) => "malformed",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// The outcome of every record, in input order, and the guard's transitions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// `(record id, outcome)`.
    pub records: Vec<(String, Outcome)>,
    /// Transitions this batch's review applied.
    pub transitions: Vec<Applied>,
    /// The reviewed accounts' rates and state.
    pub gauges: Vec<Gauge>,
}

/// Counts by outcome, as `sesguard ingest --json` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Records stored.
    pub processed: usize,
    /// Records recorded before.
    pub duplicates: usize,
    /// Addresses suppressed by the stored records.
    pub suppressed: usize,
    /// Records with nothing to store.
    pub ignored: usize,
    /// Records malformed or not stored.
    pub failed: usize,
}

impl Summary {
    /// Adds another summary's counts.
    pub fn add(&mut self, other: &Summary) {
        self.processed += other.processed;
        self.duplicates += other.duplicates;
        self.suppressed += other.suppressed;
        self.ignored += other.ignored;
        self.failed += other.failed;
    }
}

impl Report {
    /// Counts by outcome.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for (_, outcome) in &self.records {
            match outcome {
                Outcome::Recorded { suppressed } => {
                    summary.processed += 1;
                    summary.suppressed += suppressed;
                }
                Outcome::Duplicate => summary.duplicates += 1,
                Outcome::Ignored(_) => summary.ignored += 1,
                Outcome::Malformed(_) | Outcome::Failed(_) => summary.failed += 1,
            }
        }
        summary
    }

    /// Logs one line per record with its outcome: at `info` a record that suppressed an
    /// address, was ignored or failed; at `debug` one that only counted (a Send or Delivery
    /// event, a soft bounce) or was a copy. Those are nearly all of the volume, their counts
    /// are in the EMF metrics, and a line each cost 312 bytes a message sent
    /// (docs/scale.md, "Cost per million messages").
    pub fn log(&self) {
        for (record, outcome) in &self.records {
            let decision = outcome.name();
            match outcome {
                Outcome::Recorded { suppressed: 0 } => {
                    tracing::debug!(record, decision, suppressed = 0, "notification recorded")
                }
                Outcome::Recorded { suppressed } => {
                    tracing::info!(record, decision, suppressed, "notification recorded")
                }
                Outcome::Duplicate => tracing::debug!(record, decision, "already recorded"),
                Outcome::Ignored(reason) => {
                    tracing::info!(record, decision, reason, "nothing to record")
                }
                Outcome::Malformed(reason) => {
                    tracing::warn!(record, decision, reason, "malformed record")
                }
                Outcome::Failed(reason) => {
                    tracing::error!(record, decision, reason, "record not stored")
                }
            }
        }
    }

    /// Adds another report's records and transitions after this one's.
    pub fn extend(&mut self, other: Report) {
        self.records.extend(other.records);
        self.transitions.extend(other.transitions);
    }
}

/// The ingest use case over a ledger, with the guard reviewing what each batch touched.
pub struct Ingestor<'a> {
    ledger: &'a dyn FeedbackLedger,
    directory: &'a AccountDirectory,
    policy: &'a IngestPolicy,
    guard: Option<Guard<'a>>,
    sends: Option<&'a dyn SendLedger>,
    screen: Screen<'a>,
}

impl<'a> Ingestor<'a> {
    /// The ingestor of `context`: it writes to the store with the configured accounts and
    /// rules, settles the sender's records of the messages whose `Send` or `Delivery` events
    /// arrive, and lets the guard review the accounts each batch touched (reusing calm
    /// accounts' windows from the process's cache).
    pub fn of(context: &'a Context) -> Self {
        let store = context.store.as_ref();
        Self {
            ledger: store,
            directory: &context.directory,
            policy: &context.policy,
            guard: Some(Guard::of(context).with_cache(&context.windows)),
            sends: Some(store),
            screen: Screen::of(context),
        }
    }

    /// The same ingestor recording only: no review after a batch (a test's quiet history).
    pub fn without_review(mut self) -> Self {
        self.guard = None;
        self
    }

    /// Processes a batch of records received at `now`.
    pub async fn ingest(&self, records: Vec<Inbound>, now: Timestamp) -> Report {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        let mut batch: Vec<(usize, Effects)> = Vec::new();
        let mut first_with_key: HashMap<String, usize> = HashMap::new();
        let mut touched = BTreeSet::new();
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut settles: Vec<(usize, SendKey)> = Vec::new();
        let mut dead_domains = BTreeSet::new();

        for (index, record) in records.into_iter().enumerate() {
            let outcome = match record.content {
                Err(error) => Some(Outcome::Malformed(error.to_string())),
                Ok(Content::SnsControl { kind, .. }) => {
                    Some(Outcome::Ignored(format!("SNS {kind}")))
                }
                Ok(Content::Notification(notification)) => {
                    if matches!(notification.event, Event::Send | Event::Delivery(_))
                        && let Some(key) =
                            notification.mail.tag(SEND_TAG).and_then(SendKey::from_tag)
                    {
                        settles.push((index, key));
                    }
                    // Without a readable time of its own, feedback counts when SNS published
                    // it, else when it was received.
                    let received = record.sns.as_ref().and_then(|s| s.timestamp).unwrap_or(now);
                    if !notification.damaged.is_empty() {
                        tracing::warn!(record = %record.id, message_id = %notification.mail.message_id, damaged = %notification.damaged.join("; "), "damaged fields read as absent: recorded with fallbacks");
                    }
                    match plan::assess(
                        &notification,
                        self.directory,
                        self.policy.simulator,
                        received,
                    ) {
                        Assessment::Ignore(reason) => Some(Outcome::Ignored(reason)),
                        Assessment::Apply(effects) => {
                            for error in &effects.invalid {
                                tracing::warn!(record = %record.id, message_id = %effects.message_id, %error, "recipient address not recorded");
                            }
                            touched.insert(effects.attribution.account.clone());
                            dead_domains.extend(host_unknown(&effects));
                            if first_with_key.contains_key(&effects.key) {
                                Some(Outcome::Duplicate)
                            } else {
                                first_with_key.insert(effects.key.clone(), index);
                                batch.push((index, *effects));
                                None
                            }
                        }
                    }
                }
            };
            outcomes[index] = outcome;
        }

        self.apply(batch, now, &mut outcomes).await;
        self.settle(&settles, now, &mut outcomes).await;
        self.screen.learn(dead_domains, now).await;
        let review = self.review(&touched, now, &mut outcomes).await;

        let records = ids
            .into_iter()
            .zip(outcomes)
            .map(|(id, outcome)| {
                (
                    id,
                    outcome.unwrap_or_else(|| Outcome::Failed("not processed".into())),
                )
            })
            .collect();
        Report {
            records,
            transitions: review.applied,
            gauges: review.gauges,
        }
    }

    /// Settles the sends these events prove accepted. If that fails, their records are failed
    /// for retry: a send left in doubt would be sent again.
    async fn settle(
        &self,
        settles: &[(usize, SendKey)],
        now: Timestamp,
        outcomes: &mut [Option<Outcome>],
    ) {
        let Some(sends) = self.sends else {
            return;
        };
        if settles.is_empty() {
            return;
        }
        // A message's Send and Delivery events often come in one batch: each key once.
        let keys: Vec<SendKey> = settles
            .iter()
            .map(|(_, k)| k.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match sends.settle(&keys, now).await {
            Ok(0) => {}
            Ok(settled) => tracing::info!(
                settled,
                "sends in doubt settled as sent by their SES events"
            ),
            Err(error) => {
                let error = format!("sends not settled: {}", error_chain(&error));
                tracing::error!(%error, "records will be retried so that their sends are settled");
                for (index, _) in settles {
                    if !matches!(
                        outcomes[*index],
                        Some(Outcome::Malformed(_) | Outcome::Failed(_))
                    ) {
                        outcomes[*index] = Some(Outcome::Failed(error.clone()));
                    }
                }
            }
        }
    }

    /// Lets the guard review the accounts a batch touched — duplicates' accounts included, so
    /// a retry reviews again. If the review fails, the stored records are failed for retry.
    async fn review(
        &self,
        touched: &BTreeSet<String>,
        now: Timestamp,
        outcomes: &mut [Option<Outcome>],
    ) -> Review {
        let Some(guard) = &self.guard else {
            return Review::default();
        };
        if touched.is_empty() {
            return Review::default();
        }
        match guard.review(touched, now).await {
            Ok(review) => review,
            Err(error) => {
                let error = format!(
                    "stored, but the guard review failed: {}",
                    error_chain(&error)
                );
                tracing::error!(%error, "records will be retried so the review runs again");
                for outcome in outcomes.iter_mut() {
                    if matches!(outcome, Some(Outcome::Recorded { .. } | Outcome::Duplicate)) {
                        *outcome = Some(Outcome::Failed(error.clone()));
                    }
                }
                Review::default()
            }
        }
    }

    /// Where the batch's accounts' counter buckets start afresh: their guard states in one
    /// batched read (none without a guard).
    async fn origins(&self, batch: &[(usize, Effects)]) -> Result<Origins, StoreError> {
        let Some(guard) = &self.guard else {
            return Ok(Origins::new());
        };
        let accounts: BTreeSet<String> = batch
            .iter()
            .map(|(_, e)| e.attribution.account.clone())
            .collect();
        guard
            .origins(&accounts.into_iter().collect::<Vec<_>>())
            .await
    }

    /// Applies the batch, splitting it where one atomic change cannot hold it.
    async fn apply(
        &self,
        batch: Vec<(usize, Effects)>,
        now: Timestamp,
        outcomes: &mut [Option<Outcome>],
    ) {
        if batch.is_empty() {
            return;
        }
        let origins = match self.origins(&batch).await {
            Ok(origins) => origins,
            Err(error) => {
                fail_all(&batch, outcomes, error_chain(&error));
                return;
            }
        };
        let mut work = vec![batch];
        while let Some(part) = work.pop() {
            if let Some((first, second)) = self.apply_part(part, &origins, now, outcomes).await {
                work.push(second);
                work.push(first);
            }
        }
    }

    /// Applies one part of the batch as one atomic change: what was applied already is a
    /// duplicate, a conflict is tried again. Returns the part's two halves when one change
    /// cannot hold it.
    async fn apply_part(
        &self,
        mut part: Vec<(usize, Effects)>,
        origins: &Origins,
        now: Timestamp,
        outcomes: &mut [Option<Outcome>],
    ) -> Option<(Vec<(usize, Effects)>, Vec<(usize, Effects)>)> {
        let mut conflicts = 0;
        loop {
            if part.is_empty() {
                return None;
            }
            let effects: Vec<Effects> = part.iter().map(|(_, e)| e.clone()).collect();
            let states = match self.address_states(&effects, now).await {
                Ok(states) => states,
                Err(error) => {
                    fail_all(&part, outcomes, error_chain(&error));
                    return None;
                }
            };
            let change = plan::plan(&effects, &states, origins, self.policy, now);
            let capacity = self.ledger.max_items_per_apply();
            if change.items() > capacity {
                if part.len() == 1 {
                    outcomes[part[0].0] = Some(Outcome::Malformed(format!(
                        "notification touches {} items, more than one atomic write holds ({capacity})",
                        change.items()
                    )));
                    return None;
                }
                let second = part.split_off(part.len() / 2);
                return Some((part, second));
            }
            match self.ledger.apply(&change).await {
                Ok(()) => {
                    self.recorded(&change, &part, outcomes);
                    return None;
                }
                Err(ApplyError::AlreadyApplied(keys)) => {
                    part.retain(|(index, effects)| {
                        let seen = keys.contains(&effects.key);
                        if seen {
                            outcomes[*index] = Some(Outcome::Duplicate);
                        }
                        !seen
                    });
                }
                Err(ApplyError::Conflict) => {
                    crate::telemetry::CONTENTION.conflict();
                    conflicts += 1;
                    if conflicts > MAX_CONFLICTS {
                        fail_all(
                            &part,
                            outcomes,
                            "addresses kept changing under concurrent writers".into(),
                        );
                        return None;
                    }
                    tokio::time::sleep(crate::app::send::jittered(conflicts as u32 - 1) / 4).await;
                }
                Err(ApplyError::Store(error)) => {
                    fail_all(&part, outcomes, error_chain(&error));
                    return None;
                }
            }
        }
    }

    /// The stored states of the addresses the plan needs (none read when it needs none).
    async fn address_states(
        &self,
        effects: &[Effects],
        now: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError> {
        let needed = plan::addresses_to_read(effects);
        if needed.is_empty() {
            return Ok(HashMap::new());
        }
        self.ledger.address_states(&needed, now).await
    }

    /// A part applied: the guard told of accounts with bad news, and each record recorded with
    /// how many of its addresses the change suppresses.
    fn recorded(
        &self,
        change: &ChangeSet,
        part: &[(usize, Effects)],
        outcomes: &mut [Option<Outcome>],
    ) {
        if let Some(guard) = &self.guard {
            for delta in &change.counters {
                let bad = delta.bucket.total;
                if bad.hard_bounces + bad.complaints > 0 {
                    guard.bad_news(&delta.account);
                }
            }
        }
        // One set, not a scan per record: batches are thousands long in bulk.
        let suppressing: HashSet<&EmailAddress> = change
            .suppressions
            .iter()
            .filter(|u| u.suppress.is_some())
            .map(|u| &u.email)
            .collect();
        for (index, effects) in part {
            let named: HashSet<&EmailAddress> =
                effects.addresses.iter().map(|a| &a.email).collect();
            let suppressed = named.iter().filter(|e| suppressing.contains(*e)).count();
            outcomes[*index] = Some(Outcome::Recorded { suppressed });
        }
    }
}

/// The domains of the recipients a bounce said were at no known host (`host_unknown`):
/// prevention keeps them as taking no mail for a while.
fn host_unknown(effects: &Effects) -> impl Iterator<Item = String> + '_ {
    effects
        .addresses
        .iter()
        .filter_map(|event| match &event.kind {
            AddressEventKind::HardBounce(detail) if detail.reason == BounceReason::HostUnknown => {
                Some(event.email.domain().to_owned())
            }
            _ => None,
        })
}

fn fail_all(part: &[(usize, Effects)], outcomes: &mut [Option<Outcome>], error: String) {
    tracing::error!(%error, records = part.len(), "batch not stored; records will be retried");
    for (index, _) in part {
        outcomes[*index] = Some(Outcome::Failed(error.clone()));
    }
}
