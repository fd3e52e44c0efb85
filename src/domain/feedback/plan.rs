//! Ingest planning. Each SES notification is assessed into its [`Effects`] (a de-duplication
//! key, per-address events, counter increments) or ignored; a batch of effects becomes the one
//! atomic [`ChangeSet`] the store applies: one claim per notification, one update per distinct
//! address, one counter delta per account bucket. Pure: the stored address states and the
//! current time are passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::domain::common::address::{AddressError, EmailAddress};
use crate::domain::common::digest::fnv1a;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::{AccountDirectory, Attribution, SendSource};
use crate::domain::feedback::notification::{BounceType, Event, Notification};
use crate::domain::feedback::suppression::{
    AddressState, BounceDetail, FeedbackRecord, Reason, SoftBouncePolicy, SoftWrite,
    SuppressionUpdate,
};
use crate::domain::reputation::counters::{Bucket, CounterDelta, Counts, WindowConfig};

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
    /// Permanent bounce: suppress with reason `bounce`.
    HardBounce(BounceDetail),
    /// Transient or undetermined bounce: counted toward the soft-bounce threshold.
    SoftBounce(BounceDetail),
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

/// Decides what a notification means for the store. `received_at` stands in for a missing
/// event time.
pub fn assess(
    notification: &Notification,
    directory: &AccountDirectory,
    simulator: SimulatorFeedback,
    received_at: Timestamp,
) -> Assessment {
    let attribution = directory.attribute(&notification.mail);
    let message_id = notification.mail.message_id.clone();
    let at = notification.event_time().unwrap_or(received_at);
    let mut effects = Effects {
        key: String::new(),
        attribution,
        message_id,
        feedback_id: None,
        at,
        sent_at: notification.mail.timestamp.unwrap_or(at),
        counts: Counts::default(),
        addresses: Vec::new(),
        invalid: Vec::new(),
    };
    match &notification.event {
        Event::Bounce(bounce) => {
            effects.feedback_id = bounce.feedback_id.clone();
            let detail_of =
                |r: &crate::domain::feedback::notification::BouncedRecipient| BounceDetail {
                    bounce_type: bounce.type_name.clone(),
                    bounce_subtype: bounce.sub_type.clone(),
                    status: r.status.clone(),
                    diagnostic_code: r.diagnostic_code.clone(),
                };
            for recipient in &bounce.recipients {
                let admitted = effects.admit(&recipient.address, simulator);
                if admitted == Admitted::Skip {
                    continue;
                }
                let kind = if bounce.bounce_type == BounceType::Permanent {
                    if !bounce.on_account_suppression_list() {
                        effects.counts.hard_bounces += 1;
                    }
                    AddressEventKind::HardBounce(detail_of(recipient))
                } else {
                    effects.counts.soft_bounces += 1;
                    AddressEventKind::SoftBounce(detail_of(recipient))
                };
                if let Admitted::Record(email) = admitted {
                    effects.addresses.push(AddressEvent { email, kind });
                }
            }
            effects.key = feedback_key("bounce", &effects);
        }
        Event::Complaint(complaint) => {
            effects.feedback_id = complaint.feedback_id.clone();
            let suppress = !complaint.is_not_spam();
            let mut counted = false;
            for address in &complaint.recipients {
                let email = match effects.admit(address, simulator) {
                    Admitted::Record(email) => email,
                    Admitted::CountOnly => {
                        counted = true;
                        continue;
                    }
                    Admitted::Skip => continue,
                };
                counted = true;
                effects.addresses.push(AddressEvent {
                    email,
                    kind: AddressEventKind::Complaint {
                        feedback_type: complaint.feedback_type.clone(),
                        suppress,
                    },
                });
            }
            // One report is one complaint, however many recipients it names.
            if suppress && !complaint.on_account_suppression_list() && counted {
                effects.counts.complaints = 1;
            }
            effects.key = feedback_key("complaint", &effects);
        }
        Event::Delivery(delivery) => {
            for address in &delivery.recipients {
                match effects.admit(address, simulator) {
                    Admitted::Record(email) => {
                        effects.counts.deliveries += 1;
                        effects.addresses.push(AddressEvent {
                            email,
                            kind: AddressEventKind::Delivered,
                        });
                    }
                    Admitted::CountOnly => effects.counts.deliveries += 1,
                    Admitted::Skip => {}
                }
            }
            let recipients = effects.addresses.iter().map(|a| a.email.as_str());
            effects.key = format!("delivery:{}:{:016x}", effects.message_id, fnv1a(recipients));
        }
        Event::Send => {
            if directory.send_source(&effects.attribution.account) != SendSource::SesEvents {
                return Assessment::Ignore(format!(
                    "Send event: account `{}` counts sends from the sender",
                    effects.attribution.account
                ));
            }
            effects.key = format!("send:{}", effects.message_id);
            effects.counts.sends = notification
                .mail
                .destination
                .iter()
                .filter(|d| {
                    simulator == SimulatorFeedback::Count
                        || !EmailAddress::parse(d).is_ok_and(|e| e.domain() == SIMULATOR_DOMAIN)
                })
                .count() as u64;
        }
        Event::Other(name) => return Assessment::Ignore(format!("event type `{name}`")),
    }
    Assessment::Apply(Box::new(effects))
}

/// What becomes of one recipient of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Admitted {
    /// Counted and recorded against the address.
    Record(EmailAddress),
    /// Counted only: a simulator address under [`SimulatorFeedback::Count`].
    CountOnly,
    /// Neither: a simulator address by default, or an invalid one (kept for the report).
    Skip,
}

impl Effects {
    /// Whether and how a recipient is admitted; invalid ones are kept for the report.
    fn admit(
        &mut self,
        address: &Result<EmailAddress, AddressError>,
        simulator: SimulatorFeedback,
    ) -> Admitted {
        match address {
            Ok(email) if email.domain() == SIMULATOR_DOMAIN => match simulator {
                SimulatorFeedback::Ignore => Admitted::Skip,
                SimulatorFeedback::Count => Admitted::CountOnly,
            },
            Ok(email) => Admitted::Record(email.clone()),
            Err(error) => {
                self.invalid.push(error.clone());
                Admitted::Skip
            }
        }
    }
}

fn feedback_key(kind: &str, effects: &Effects) -> String {
    match &effects.feedback_id {
        Some(id) => format!("feedback:{id}"),
        // Damaged feedback without a message id: its recipients tell it apart.
        None if effects.message_id.is_empty() => {
            let recipients = effects.addresses.iter().map(|a| a.email.as_str());
            format!(
                "{kind}:recipients:{:016x}:{}",
                fnv1a(recipients),
                effects.at.as_millis()
            )
        }
        None => format!("{kind}:{}:{}", effects.message_id, effects.at.as_millis()),
    }
}

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

/// The addresses whose stored state the plan needs: those with a soft bounce or a delivery.
pub fn addresses_to_read(batch: &[Effects]) -> Vec<EmailAddress> {
    let set: BTreeSet<&EmailAddress> = batch
        .iter()
        .flat_map(|e| &e.addresses)
        .filter(|a| {
            matches!(
                a.kind,
                AddressEventKind::SoftBounce(_) | AddressEventKind::Delivered
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
    for effects in batch.iter().filter(|e| !e.counts.is_zero()) {
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
        let mut record = |bounce: Option<&BounceDetail>,
                          complaint_type: Option<&Option<String>>| {
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
        };
        match kind {
            AddressEventKind::HardBounce(detail) => {
                record(Some(detail), None);
                suppress.get_or_insert(Reason::Bounce);
            }
            AddressEventKind::SoftBounce(detail) => {
                record(Some(detail), None);
                soft_changed = true;
                if soft_policy.record(&mut soft_times, effects.at) {
                    suppress.get_or_insert(Reason::SoftBounce);
                }
            }
            AddressEventKind::Complaint {
                feedback_type,
                suppress: suppresses,
            } => {
                record(None, Some(feedback_type));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::feedback::attribution::KnownAccount;

    const NOW: i64 = 1_763_650_000_000;

    fn directory() -> AccountDirectory {
        AccountDirectory::new(vec![KnownAccount {
            name: "primary".into(),
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            send_source: SendSource::SesEvents,
        }])
    }

    fn effects(json: &str) -> Effects {
        let notification = Notification::parse(json).unwrap();
        match assess(
            &notification,
            &directory(),
            SimulatorFeedback::Ignore,
            Timestamp::from_millis(NOW),
        ) {
            Assessment::Apply(effects) => *effects,
            Assessment::Ignore(reason) => panic!("ignored: {reason}"),
        }
    }

    #[test]
    fn bounces_and_complaints_are_remembered_for_weeks_sends_and_deliveries_for_hours() {
        let policy = IngestPolicy::default();
        let ttl = |sample: &str| {
            let effects = effects(sample);
            let change = plan(
                std::slice::from_ref(&effects),
                &HashMap::new(),
                &Origins::new(),
                &policy,
                Timestamp::from_millis(NOW),
            );
            change.claims[0]
                .expires_at
                .since(Timestamp::from_millis(NOW))
        };
        let days = |n: u64| Duration::from_secs(n * 86_400);
        let hours = |n: u64| Duration::from_secs(n * 3600);
        for sample in [
            include_str!("../../../events/ses/bounce-permanent.json"),
            include_str!("../../../events/ses/bounce-transient.json"),
            include_str!("../../../events/ses/complaint.json"),
            include_str!("../../../events/ses/complaint-not-spam.json"),
            include_str!("../../../events/ses/event-bounce.json"),
        ] {
            assert_eq!(ttl(sample), days(14));
        }
        for sample in [
            include_str!("../../../events/ses/delivery.json"),
            include_str!("../../../events/ses/event-delivery.json"),
            include_str!("../../../events/ses/event-send.json"),
        ] {
            assert_eq!(ttl(sample), hours(6));
        }
    }

    fn bounce(kind: &str, sub: &str, id: &str, at: &str, to: &[&str]) -> Effects {
        let recipients: Vec<String> = to
            .iter()
            .map(|a| format!(r#"{{"emailAddress":"{a}"}}"#))
            .collect();
        effects(&format!(
            r#"{{"notificationType":"Bounce","mail":{{"messageId":"m-{id}","sendingAccountId":"111111111111",
               "sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com"}},
               "bounce":{{"bounceType":"{kind}","bounceSubType":"{sub}","feedbackId":"{id}","timestamp":"{at}",
               "bouncedRecipients":[{}]}}}}"#,
            recipients.join(",")
        ))
    }

    fn complaint(feedback_type: &str, to: &[&str]) -> Effects {
        let recipients: Vec<String> = to
            .iter()
            .map(|a| format!(r#"{{"emailAddress":"{a}"}}"#))
            .collect();
        effects(&format!(
            r#"{{"eventType":"Complaint","mail":{{"messageId":"m","tags":{{"sesguard-account":["primary"]}}}},
               "complaint":{{"complaintFeedbackType":"{feedback_type}","feedbackId":"c1","timestamp":"2026-11-20T10:00:00Z",
               "complainedRecipients":[{}]}}}}"#,
            recipients.join(",")
        ))
    }

    #[test]
    fn both_formats_of_one_feedback_share_a_key() {
        let feedback = bounce(
            "Permanent",
            "General",
            "fb-1",
            "2026-11-20T10:00:00Z",
            &["a@example.com"],
        );
        let event = effects(
            r#"{"eventType":"Bounce","mail":{"messageId":"m-fb-1"},"bounce":{"bounceType":"Permanent",
               "feedbackId":"fb-1","bouncedRecipients":[{"emailAddress":"a@example.com"}]}}"#,
        );
        assert_eq!(feedback.key, "feedback:fb-1");
        assert_eq!(event.key, feedback.key);
    }

    #[test]
    fn a_complaint_naming_many_recipients_counts_once_and_not_spam_not_at_all() {
        let many = complaint(
            "abuse",
            &["a@example.com", "b@example.com", "c@example.com"],
        );
        assert_eq!((many.counts.complaints, many.addresses.len()), (1, 3));
        let fine = complaint("not-spam", &["a@example.com"]);
        assert_eq!(fine.counts.complaints, 0);
        let change = plan(
            &[fine],
            &HashMap::new(),
            &Origins::new(),
            &IngestPolicy::default(),
            Timestamp::from_millis(NOW),
        );
        assert_eq!(change.suppressions[0].suppress, None);
        assert_eq!(
            change.suppressions[0]
                .feedback
                .as_ref()
                .unwrap()
                .complaint_feedback_type
                .as_deref(),
            Some("not-spam")
        );
        assert!(
            change.counters.is_empty(),
            "nothing to count, no counter write"
        );
    }

    #[test]
    fn one_update_per_address_keeps_the_first_reason_and_the_latest_details() {
        let first = bounce(
            "Permanent",
            "NoEmail",
            "b1",
            "2026-11-20T10:00:00Z",
            &["a@example.com", "b@example.com"],
        );
        let mut later = complaint("abuse", &["A@Example.com"]);
        later.at = Timestamp::parse_rfc3339("2026-11-20T11:00:00Z").unwrap();
        let change = plan(
            &[later, first],
            &HashMap::new(),
            &Origins::new(),
            &IngestPolicy::default(),
            Timestamp::from_millis(NOW),
        );
        assert_eq!(change.claims.len(), 2);
        assert_eq!(change.suppressions.len(), 2);
        let a = &change.suppressions[0];
        assert_eq!(a.email.as_str(), "a@example.com");
        assert_eq!(
            a.suppress,
            Some(Reason::Bounce),
            "the earlier event's reason"
        );
        let feedback = a.feedback.as_ref().unwrap();
        assert_eq!(feedback.events, 2);
        assert_eq!(feedback.first_seen.to_rfc3339(), "2026-11-20T10:00:00.000Z");
        assert_eq!(feedback.last_seen.to_rfc3339(), "2026-11-20T11:00:00.000Z");
        assert_eq!(feedback.complaint_feedback_type.as_deref(), Some("abuse"));
        assert_eq!(feedback.bounce.as_ref().unwrap().bounce_subtype, "NoEmail");
        assert!(a.soft.is_none(), "hard feedback is a blind write");
    }

    #[test]
    fn counters_are_one_delta_per_account_bucket_with_streams_inside() {
        let policy = IngestPolicy::default();
        let a = bounce(
            "Permanent",
            "General",
            "b1",
            "2026-11-20T10:01:00Z",
            &["a@example.com"],
        );
        let b = bounce(
            "Transient",
            "General",
            "b2",
            "2026-11-20T10:14:00Z",
            &["b@example.com"],
        );
        let c = bounce(
            "Permanent",
            "General",
            "b3",
            "2026-11-20T10:16:00Z",
            &["c@example.com"],
        );
        let mut tagged = complaint("abuse", &["d@example.com"]);
        tagged.attribution.stream = Some("bulk".into());
        tagged.at = a.at;
        let change = plan(
            &[a, b, c, tagged],
            &HashMap::new(),
            &Origins::new(),
            &policy,
            Timestamp::from_millis(NOW),
        );
        assert_eq!(change.counters.len(), 2);
        let first = &change.counters[0];
        assert_eq!(first.bucket.start.to_rfc3339(), "2026-11-20T10:00:00.000Z");
        assert_eq!(
            (
                first.bucket.total.hard_bounces,
                first.bucket.total.soft_bounces,
                first.bucket.total.complaints
            ),
            (1, 1, 1)
        );
        assert_eq!(first.bucket.streams["bulk"].complaints, 1);
        assert_eq!(change.counters[1].bucket.total.hard_bounces, 1);
    }

    #[test]
    fn a_soft_bounce_write_is_conditional_on_the_version_read() {
        let soft = bounce(
            "Transient",
            "MailboxFull",
            "s1",
            "2026-11-20T10:00:00Z",
            &["a@example.com"],
        );
        let email = soft.addresses[0].email.clone();
        let states = HashMap::from([(
            email,
            AddressState {
                version: 7,
                suppressed: false,
                soft_bounces: vec![],
            },
        )]);
        let change = plan(
            &[soft],
            &states,
            &Origins::new(),
            &IngestPolicy::default(),
            Timestamp::from_millis(NOW),
        );
        let write = change.suppressions[0].soft.as_ref().unwrap();
        assert_eq!(write.expected_version, 7);
        assert_eq!(write.bounces.len(), 1);
        assert!(
            write.expires_at.is_some(),
            "an unsuppressed tracker expires"
        );
    }

    #[test]
    fn a_delivery_to_an_address_without_soft_bounces_writes_nothing() {
        let delivery = effects(
            r#"{"notificationType":"Delivery","mail":{"messageId":"m"},
               "delivery":{"recipients":["a@example.com","b@example.com"],"timestamp":"2026-11-20T10:00:00Z"}}"#,
        );
        assert_eq!(addresses_to_read(std::slice::from_ref(&delivery)).len(), 2);
        let change = plan(
            &[delivery],
            &HashMap::new(),
            &Origins::new(),
            &IngestPolicy::default(),
            Timestamp::from_millis(NOW),
        );
        assert!(change.suppressions.is_empty());
        assert_eq!(change.counters[0].bucket.total.deliveries, 2);
    }

    fn assessed(json: &str, simulator: SimulatorFeedback) -> Effects {
        let notification = Notification::parse(json).unwrap();
        match assess(
            &notification,
            &directory(),
            simulator,
            Timestamp::from_millis(NOW),
        ) {
            Assessment::Apply(effects) => *effects,
            Assessment::Ignore(reason) => panic!("ignored: {reason}"),
        }
    }

    const SIMULATED_SEND: &str = r#"{"eventType":"Send","mail":{"messageId":"m1","sendingAccountId":"111111111111","sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com","destination":["bounce@simulator.amazonses.com","a@example.com"]}}"#;
    const SIMULATED_BOUNCE: &str = r#"{"eventType":"Bounce","mail":{"messageId":"m1","sendingAccountId":"111111111111","sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com"},"bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"bounce@simulator.amazonses.com"}]}}"#;
    const SIMULATED_COMPLAINT: &str = r#"{"eventType":"Complaint","mail":{"messageId":"m2","sendingAccountId":"111111111111","sourceArn":"arn:aws:ses:us-east-1:111111111111:identity/example.com"},"complaint":{"complainedRecipients":[{"emailAddress":"complaint@simulator.amazonses.com"}]}}"#;

    #[test]
    fn simulator_feedback_is_neither_counted_nor_suppressed_by_default() {
        assert_eq!(
            assessed(SIMULATED_SEND, SimulatorFeedback::Ignore)
                .counts
                .sends,
            1
        );
        let bounce = assessed(SIMULATED_BOUNCE, SimulatorFeedback::Ignore);
        assert_eq!(bounce.counts.hard_bounces, 0);
        assert!(bounce.addresses.is_empty());
        assert_eq!(
            assessed(SIMULATED_COMPLAINT, SimulatorFeedback::Ignore)
                .counts
                .complaints,
            0
        );
    }

    #[test]
    fn counted_simulator_feedback_drives_the_rates_but_never_suppresses() {
        assert_eq!(
            assessed(SIMULATED_SEND, SimulatorFeedback::Count)
                .counts
                .sends,
            2
        );
        let bounce = assessed(SIMULATED_BOUNCE, SimulatorFeedback::Count);
        assert_eq!(bounce.counts.hard_bounces, 1);
        assert!(
            bounce.addresses.is_empty(),
            "a simulator address is never suppressed"
        );
        let complaint = assessed(SIMULATED_COMPLAINT, SimulatorFeedback::Count);
        assert_eq!(complaint.counts.complaints, 1);
        assert!(complaint.addresses.is_empty());
    }
}
