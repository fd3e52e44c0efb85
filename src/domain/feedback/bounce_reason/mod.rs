//! Why a recipient bounced, and so what the bounce says about the address. A bounce's reason
//! is decided from the receiving server's own words first (the diagnostic's phrases, kept as
//! data in [`rules`]), then the DSN status (RFC 3463 class, subject and detail), then SES's
//! subtype, then the SMTP reply code. Each reason falls into a [`BounceClass`]: only the
//! *address* class says the address is bad; the *sender* class is the receiver refusing us;
//! the *temporary* class may clear by itself. Pure and allocation-free on the common path.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};

use crate::domain::feedback::attribution::SenderBounces;
use crate::domain::feedback::notification::BounceType;

mod rules;

pub use rules::{RULES, Rule};

/// Why one recipient bounced.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BounceReason {
    /// The mailbox does not exist (5.1.1, "user unknown", SES's `NoEmail`).
    UserUnknown,
    /// The domain does not exist or accepts no mail (NXDOMAIN, null MX, 5.1.2, 5.4.4).
    HostUnknown,
    /// SES did not send: the address is on its own suppression list.
    Suppressed,
    /// The mailbox is full (5.2.2, "over quota").
    MailboxFull,
    /// The mailbox is disabled or suspended (5.2.1), often for a while only.
    Suspended,
    /// Delivery was tried until it expired (4.4.7, timeouts).
    Expired,
    /// The receiver blocks the sending IP or domain: blocklists, reputation, missing PTR.
    Blocked,
    /// The sender's authentication failed: SPF, DKIM, DMARC (5.7.23–5.7.26).
    Authentication,
    /// The receiver's policy refused the message: content, spam, virus, size, relaying,
    /// rate limits.
    Policy,
    /// Nothing in the bounce says why.
    #[default]
    Undetermined,
}

impl BounceReason {
    /// Every reason, in a fixed order.
    pub const ALL: [BounceReason; 10] = [
        BounceReason::UserUnknown,
        BounceReason::HostUnknown,
        BounceReason::Suppressed,
        BounceReason::MailboxFull,
        BounceReason::Suspended,
        BounceReason::Expired,
        BounceReason::Blocked,
        BounceReason::Authentication,
        BounceReason::Policy,
        BounceReason::Undetermined,
    ];

    /// The stored and printed name (`user_unknown`, `blocked`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BounceReason::UserUnknown => "user_unknown",
            BounceReason::HostUnknown => "host_unknown",
            BounceReason::Suppressed => "suppressed",
            BounceReason::MailboxFull => "mailbox_full",
            BounceReason::Suspended => "suspended",
            BounceReason::Expired => "expired",
            BounceReason::Blocked => "blocked",
            BounceReason::Authentication => "authentication",
            BounceReason::Policy => "policy",
            BounceReason::Undetermined => "undetermined",
        }
    }

    /// The class of this reason in a bounce of SES type `bounce_type`. Only `undetermined`
    /// depends on the type: it follows SES's own judgement (address when `Permanent`).
    pub fn class(self, bounce_type: BounceType) -> BounceClass {
        match self {
            BounceReason::UserUnknown | BounceReason::HostUnknown | BounceReason::Suppressed => {
                BounceClass::Address
            }
            BounceReason::Blocked | BounceReason::Authentication | BounceReason::Policy => {
                BounceClass::Sender
            }
            BounceReason::MailboxFull | BounceReason::Suspended | BounceReason::Expired => {
                BounceClass::Temporary
            }
            BounceReason::Undetermined if bounce_type == BounceType::Permanent => {
                BounceClass::Address
            }
            BounceReason::Undetermined => BounceClass::Temporary,
        }
    }
}

impl fmt::Display for BounceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A bounce reason name that is not one of [`BounceReason::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown bounce reason `{0}`")]
pub struct UnknownBounceReason(pub String);

impl FromStr for BounceReason {
    type Err = UnknownBounceReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BounceReason::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| UnknownBounceReason(text.to_owned()))
    }
}

/// What a bounce says about its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceClass {
    /// The address or its domain cannot receive mail: a permanent one suppresses.
    Address,
    /// The receiver refuses the sender: never the address's fault, never suppresses it (unless
    /// the stream asks for SES's behaviour).
    Sender,
    /// It may clear by itself: counted toward the soft-bounce threshold, whatever SES's type.
    Temporary,
}

impl BounceClass {
    /// The printed name: `address`, `sender`, `temporary`.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceClass::Address => "address",
            BounceClass::Sender => "sender",
            BounceClass::Temporary => "temporary",
        }
    }
}

impl fmt::Display for BounceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a bounce does to its recipient's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceEffect {
    /// Suppressed with reason `bounce`.
    Suppress,
    /// Counted toward the soft-bounce threshold.
    SoftBounce,
    /// Recorded on the address only; it stays sendable.
    Record,
}

impl BounceEffect {
    /// Decided by the reason's class, not SES's type: only a permanent bounce of the address
    /// class suppresses; one of the temporary class follows the soft-bounce policy even when
    /// SES calls it permanent; one of the sender class is recorded only, unless the stream
    /// asks for SES's behaviour (docs/ingest.md, "Why mail bounces").
    pub fn of(bounce_type: BounceType, class: BounceClass, sender: SenderBounces) -> Self {
        let permanent = bounce_type == BounceType::Permanent;
        match class {
            BounceClass::Sender if sender == SenderBounces::Record => BounceEffect::Record,
            BounceClass::Address | BounceClass::Sender if permanent => BounceEffect::Suppress,
            _ => BounceEffect::SoftBounce,
        }
    }
}

/// What the classifier reads of one bounced recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BounceFacts<'a> {
    /// SES's `bounceType`.
    pub bounce_type: BounceType,
    /// SES's `bounceSubType` (`General`, `NoEmail`, `Suppressed`, ...).
    pub sub_type: &'a str,
    /// The recipient's DSN `status` (`5.1.1`), if any.
    pub status: Option<&'a str>,
    /// The recipient's `diagnosticCode`, if any.
    pub diagnostic: Option<&'a str>,
}

/// What decided a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// SES's own subtype (its suppression lists; or `NoEmail`, `MailboxFull`, ... when the
    /// diagnostic and status say nothing more).
    SesSubtype,
    /// A phrase of the diagnostic, matched by this rule.
    Phrase {
        /// The rule's phrase, as written in [`RULES`].
        phrase: &'static str,
        /// Where the rule comes from.
        source: &'static str,
    },
    /// The enhanced status code (RFC 3463).
    Status,
    /// The SMTP reply code (RFC 5321 §4.2.3).
    ReplyCode,
    /// Nothing: the reason is `undetermined`.
    Nothing,
}

/// A bounced recipient's reason, its class and what decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Why it bounced.
    pub reason: BounceReason,
    /// What that says about the address.
    pub class: BounceClass,
    /// What decided the reason.
    pub evidence: Evidence,
}

/// Decides why a recipient bounced.
pub fn classify(facts: BounceFacts<'_>) -> Verdict {
    let (reason, evidence) = decide(&facts);
    Verdict {
        reason,
        class: reason.class(facts.bounce_type),
        evidence,
    }
}

fn decide(facts: &BounceFacts<'_>) -> (BounceReason, Evidence) {
    // SES did not try: its own lists say nothing about the receiver.
    if matches!(facts.sub_type, "Suppressed" | "OnAccountSuppressionList") {
        return (BounceReason::Suppressed, Evidence::SesSubtype);
    }
    let diagnostic = facts.diagnostic.unwrap_or_default();
    if let Some(rule) = matched_rule(diagnostic) {
        return (
            rule.reason,
            Evidence::Phrase {
                phrase: rule.phrase,
                source: rule.source,
            },
        );
    }
    let status = facts
        .status
        .and_then(EnhancedStatus::parse)
        .and_then(EnhancedStatus::reason)
        .or_else(|| EnhancedStatus::find(diagnostic).and_then(EnhancedStatus::reason));
    if let Some(reason) = status {
        return (reason, Evidence::Status);
    }
    if let Some(reason) = subtype_reason(facts.sub_type) {
        return (reason, Evidence::SesSubtype);
    }
    if let Some(reason) = reply_code(diagnostic).and_then(reply_code_reason) {
        return (reason, Evidence::ReplyCode);
    }
    (BounceReason::Undetermined, Evidence::Nothing)
}

/// Every rule's phrase in one case-insensitive automaton; pattern `i` is `RULES[i]`.
static PHRASES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(RULES.iter().map(|r| r.phrase))
        .expect("the bounce phrase table builds")
});

/// The first rule (in [`RULES`]' order) whose phrase occurs in the diagnostic.
fn matched_rule(diagnostic: &str) -> Option<&'static Rule> {
    if diagnostic.is_empty() {
        return None;
    }
    PHRASES
        .find_overlapping_iter(diagnostic)
        .map(|m| m.pattern().as_usize())
        .min()
        .map(|i| &RULES[i])
}

/// SES's own subtypes, for a bounce whose diagnostic and status say nothing.
fn subtype_reason(sub_type: &str) -> Option<BounceReason> {
    match sub_type {
        "NoEmail" => Some(BounceReason::UserUnknown),
        "MailboxFull" => Some(BounceReason::MailboxFull),
        "MessageTooLarge" | "ContentRejected" | "AttachmentRejected" => Some(BounceReason::Policy),
        _ => None,
    }
}

/// An RFC 3463 enhanced status code: `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus {
    /// 2 success, 4 persistent transient, 5 permanent.
    pub class: u8,
    /// 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol, 6 content, 7 policy.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Reads `5.1.1` (and nothing else: no surrounding text).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let class = parts
            .next()?
            .parse()
            .ok()
            .filter(|c| matches!(c, 2 | 4 | 5))?;
        let subject = parts.next().and_then(three_digits)?;
        let detail = parts.next().and_then(three_digits)?;
        parts.next().is_none().then_some(Self {
            class,
            subject,
            detail,
        })
    }

    /// The first enhanced status code written in a diagnostic (`550 5.1.1 ...`).
    pub fn find(text: &str) -> Option<Self> {
        text.split(|c: char| c.is_ascii_whitespace() || matches!(c, '-' | '(' | ')' | ',' | ';'))
            .find_map(Self::parse)
    }

    /// What the code says, where it says something about why (RFC 3463, RFC 7372, RFC 7505).
    pub fn reason(self) -> Option<BounceReason> {
        use BounceReason::*;
        Some(match (self.subject, self.detail) {
            (1, 1 | 3 | 6) => UserUnknown,
            (1, 2 | 10) => HostUnknown,
            (1, 7 | 8) => Policy,
            (2, 1) => Suspended,
            (2, 2) => MailboxFull,
            (2, 3) | (3, 4) => Policy,
            (4, 4) => HostUnknown,
            (4, 7) => Expired,
            (6, _) => Policy,
            (7, 13) => Suspended,
            (7, 17) => UserUnknown,
            (7, 18) => HostUnknown,
            (7, 25) => Blocked,
            (7, 20..=24 | 26) => Authentication,
            (7, 27) => Authentication,
            (7, _) => Policy,
            _ => return None,
        })
    }
}

fn three_digits(text: &str) -> Option<u16> {
    (!text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The SMTP reply code a diagnostic starts with (after an optional `smtp;`).
fn reply_code(diagnostic: &str) -> Option<u16> {
    let text = diagnostic.trim_start();
    let text = text
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("smtp;"))
        .map_or(text, |_| text[5..].trim_start());
    let code = text.get(..3)?;
    code.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| code.parse().ok())
        .flatten()
}

/// What a bare reply code says (RFC 5321 §4.2.3): little beyond 551–553.
fn reply_code_reason(code: u16) -> Option<BounceReason> {
    match code {
        551 | 553 => Some(BounceReason::UserUnknown),
        552 => Some(BounceReason::MailboxFull),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
