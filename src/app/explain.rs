//! `sesguard bounces explain`: what ingest would make of each bounced recipient of a
//! notification — its reason, class and effect on the address, and what decided it — without
//! recording anything, so that a user can check a bounce by hand.

use serde::Serialize;

use crate::domain::feedback::attribution::AccountDirectory;
use crate::domain::feedback::bounce_reason::{
    BounceClass, BounceEffect, BounceFacts, BounceReason, Evidence, classify,
};
use crate::domain::feedback::notification::{Event, Notification};

/// One bounced recipient, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    /// SES message id.
    pub message_id: String,
    /// The recipient as written in the bounce.
    pub recipient: String,
    /// The stream the mail was tagged with, if any.
    pub stream: Option<String>,
    /// SES's `bounceType` and `bounceSubType`.
    pub ses: String,
    /// DSN status.
    pub status: Option<String>,
    /// The receiver's diagnostic.
    pub diagnostic: Option<String>,
    /// Why it bounced.
    pub reason: BounceReason,
    /// What that says about the address.
    pub class: BounceClass,
    /// What ingest does to the address.
    pub effect: BounceEffect,
    /// What decided the reason, in words.
    pub decided_by: String,
}

/// Every bounced recipient of `notification`; empty when it is not a bounce.
pub fn explain(notification: &Notification, directory: &AccountDirectory) -> Vec<Explained> {
    let Event::Bounce(bounce) = &notification.event else {
        return Vec::new();
    };
    let stream = directory.attribute(&notification.mail).stream;
    let sender = directory.sender_bounces(stream.as_deref());
    bounce
        .recipients
        .iter()
        .map(|recipient| {
            let verdict = classify(BounceFacts {
                bounce_type: bounce.bounce_type,
                sub_type: &bounce.sub_type,
                status: recipient.status.as_deref(),
                diagnostic: recipient.diagnostic_code.as_deref(),
            });
            Explained {
                message_id: notification.mail.message_id.clone(),
                recipient: match &recipient.address {
                    Ok(email) => email.to_string(),
                    Err(error) => format!("({error})"),
                },
                stream: stream.clone(),
                ses: format!("{}/{}", bounce.type_name, bounce.sub_type),
                status: recipient.status.clone(),
                diagnostic: recipient.diagnostic_code.clone(),
                reason: verdict.reason,
                class: verdict.class,
                effect: BounceEffect::of(bounce.bounce_type, verdict.class, sender),
                decided_by: describe(verdict.evidence),
            }
        })
        .collect()
}

fn describe(evidence: Evidence) -> String {
    match evidence {
        Evidence::SesSubtype => "SES's bounce subtype".to_owned(),
        Evidence::Phrase { phrase, source } => format!("the phrase \"{phrase}\" ({source})"),
        Evidence::Status => "the enhanced status code (RFC 3463)".to_owned(),
        Evidence::ReplyCode => "the SMTP reply code (RFC 5321)".to_owned(),
        Evidence::Nothing => "nothing: no phrase, status or subtype says why".to_owned(),
    }
}
