//! One notification assessed into its [`Effects`]: its de-duplication key, the account and
//! stream it is counted under, what it adds to the account's and each mailbox provider's
//! counters, and what it does to each recipient's address (by its bounce reason's class).

use std::collections::BTreeMap;

use super::{
    AddressEvent, AddressEventKind, Assessment, Effects, SIMULATOR_DOMAIN, SimulatorFeedback,
};
use crate::domain::common::address::{AddressError, EmailAddress};
use crate::domain::common::digest::fnv1a;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::{AccountDirectory, SendSource, SenderBounces};
use crate::domain::feedback::bounce_reason::{
    BounceClass, BounceEffect, BounceFacts, BounceReason, Verdict, classify,
};
use crate::domain::feedback::notification::{
    Bounce, BounceType, BouncedRecipient, Complaint, Delivery, Event, Notification,
};
use crate::domain::feedback::provider::provider_of;
use crate::domain::feedback::suppression::BounceDetail;
use crate::domain::reputation::counters::{Counts, ProviderCounts};

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
        providers: BTreeMap::new(),
        addresses: Vec::new(),
        invalid: Vec::new(),
    };
    match &notification.event {
        Event::Bounce(bounce) => {
            let sender_class = directory.sender_bounces(effects.attribution.stream.as_deref());
            effects.add_bounce(bounce, simulator, sender_class);
        }
        Event::Complaint(complaint) => effects.add_complaint(complaint, simulator),
        Event::Delivery(delivery) => effects.add_delivery(delivery, simulator),
        Event::Send => {
            if directory.send_source(&effects.attribution.account) != SendSource::SesEvents {
                return Assessment::Ignore(format!(
                    "Send event: account `{}` counts sends from the sender",
                    effects.attribution.account
                ));
            }
            effects.add_send(&notification.mail.destination, simulator);
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
    /// A bounce: each admitted recipient counted by SES's type (a permanent bounce from SES's
    /// account-level list is not) and, at its mailbox provider, by its reason's class; its
    /// address handled by that class. Keyed by its feedback id.
    fn add_bounce(&mut self, bounce: &Bounce, simulator: SimulatorFeedback, sender: SenderBounces) {
        self.feedback_id = bounce.feedback_id.clone();
        let permanent = bounce.bounce_type == BounceType::Permanent;
        for recipient in &bounce.recipients {
            let admitted = self.admit(&recipient.address, simulator);
            if admitted == Admitted::Skip {
                continue;
            }
            if permanent {
                if !bounce.on_account_suppression_list() {
                    self.counts.hard_bounces += 1;
                }
            } else {
                self.counts.soft_bounces += 1;
            }
            let verdict = classify(BounceFacts {
                bounce_type: bounce.bounce_type,
                sub_type: &bounce.sub_type,
                status: recipient.status.as_deref(),
                diagnostic: recipient.diagnostic_code.as_deref(),
            });
            // SES's own lists stopped the mail before any provider saw it.
            if let Ok(email) = &recipient.address
                && verdict.reason != BounceReason::Suppressed
            {
                let at = self.at_provider(email, &[recipient.diagnostic_code.as_deref()]);
                match (verdict.class, verdict.reason) {
                    (BounceClass::Address, _) => at.address_bounces += 1,
                    (BounceClass::Temporary, _) => at.temporary_bounces += 1,
                    (BounceClass::Sender, BounceReason::Blocked) => at.blocked += 1,
                    (BounceClass::Sender, BounceReason::Authentication) => at.authentication += 1,
                    (BounceClass::Sender, _) => at.policy += 1,
                }
            }
            if let Admitted::Record(email) = admitted {
                let kind = address_event(bounce, recipient, verdict, sender);
                self.addresses.push(AddressEvent { email, kind });
            }
        }
        self.key = feedback_key("bounce", self);
    }

    /// The counts of `email`'s mailbox provider, decided with what the feedback says of the
    /// receiving host.
    fn at_provider(&mut self, email: &EmailAddress, hints: &[Option<&str>]) -> &mut ProviderCounts {
        self.providers
            .entry(provider_of(email.domain(), hints))
            .or_default()
    }

    /// A complaint: each admitted recipient complained, one complaint counted for the report
    /// unless it says not-spam, keyed by its feedback id.
    fn add_complaint(&mut self, complaint: &Complaint, simulator: SimulatorFeedback) {
        self.feedback_id = complaint.feedback_id.clone();
        let suppress = !complaint.is_not_spam();
        let mut counted = false;
        for address in &complaint.recipients {
            let email = match self.admit(address, simulator) {
                Admitted::Record(email) => email,
                Admitted::CountOnly => {
                    counted = true;
                    continue;
                }
                Admitted::Skip => continue,
            };
            counted = true;
            self.addresses.push(AddressEvent {
                email,
                kind: AddressEventKind::Complaint {
                    feedback_type: complaint.feedback_type.clone(),
                    suppress,
                },
            });
        }
        // One report is one complaint, however many recipients it names.
        if suppress && !complaint.on_account_suppression_list() && counted {
            self.counts.complaints = 1;
            if let Some(Ok(email)) = complaint.recipients.first() {
                self.at_provider(email, &[]).complaints += 1;
            }
        }
        self.key = feedback_key("complaint", self);
    }

    /// A delivery: each admitted recipient delivered and counted, keyed by the message and
    /// its recipients.
    fn add_delivery(&mut self, delivery: &Delivery, simulator: SimulatorFeedback) {
        for address in &delivery.recipients {
            let admitted = self.admit(address, simulator);
            if admitted == Admitted::Skip {
                continue;
            }
            self.counts.deliveries += 1;
            if let Ok(email) = address {
                self.at_provider(email, &[delivery.smtp_response.as_deref()])
                    .deliveries += 1;
            }
            if let Admitted::Record(email) = admitted {
                self.addresses.push(AddressEvent {
                    email,
                    kind: AddressEventKind::Delivered,
                });
            }
        }
        let recipients = self.addresses.iter().map(|a| a.email.as_str());
        self.key = format!("delivery:{}:{:016x}", self.message_id, fnv1a(recipients));
    }

    /// A send: one counted per destination (mailbox-simulator ones only when they count),
    /// keyed by the message.
    fn add_send(&mut self, destination: &[String], simulator: SimulatorFeedback) {
        self.key = format!("send:{}", self.message_id);
        self.counts.sends = destination
            .iter()
            .filter(|d| {
                simulator == SimulatorFeedback::Count
                    || !EmailAddress::parse(d).is_ok_and(|e| e.domain() == SIMULATOR_DOMAIN)
            })
            .count() as u64;
    }

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

/// What a bounce does to its recipient's address ([`BounceEffect::of`]), with its details.
fn address_event(
    bounce: &Bounce,
    recipient: &BouncedRecipient,
    verdict: Verdict,
    sender: SenderBounces,
) -> AddressEventKind {
    let detail = BounceDetail {
        bounce_type: bounce.type_name.clone(),
        bounce_subtype: bounce.sub_type.clone(),
        status: recipient.status.clone(),
        diagnostic_code: recipient.diagnostic_code.clone(),
        reason: verdict.reason,
    };
    match BounceEffect::of(bounce.bounce_type, verdict.class, sender) {
        BounceEffect::Suppress => AddressEventKind::HardBounce(detail),
        BounceEffect::SoftBounce => AddressEventKind::SoftBounce(detail),
        BounceEffect::Record => AddressEventKind::SenderBounce(detail),
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
