//! Exactly-once sending: every request has an identity (its idempotency key, or else the queue
//! message that carries it) and a record of that identity — *sending* from the moment it is
//! claimed until the mail service answers, *sent* once it accepted the message. A failure that
//! leaves it unknown whether the service accepted the message (a timeout, a reset connection, a
//! 5xx) keeps the record *sending*: the request is in doubt. The service's `Send` event carries
//! the identity as a message tag ([`SEND_TAG`]) and settles the record as sent; a request still
//! in doubt when its record runs out (`sender.in_doubt` after the claim) is tried again under
//! the same identity.
//!
//! Which request may go is decided here, from the record another attempt left.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::domain::common::timestamp::Timestamp;

/// The message tag that carries a message's identity to its SES events.
pub const SEND_TAG: &str = "sesguard-send";

/// What a request's identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The application's idempotency key: every request with it is the same message.
    IdempotencyKey,
    /// The queue message that carries the request (stable across redeliveries and re-queueing).
    QueueMessage,
}

/// A request's identity in a form SES accepts as a tag value (ASCII letters, digits, `_`, `-`;
/// 256 at most): `k-` or `m-` and the SHA-256 of the key or message id in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SendKey(String);

impl SendKey {
    /// The identity of a request with `idempotency_key`, or else of queue message `origin`.
    pub fn new(idempotency_key: Option<&str>, origin: &str) -> Self {
        let (prefix, source) = match idempotency_key {
            Some(key) => ("k", key),
            None => ("m", origin),
        };
        let digest = Sha256::digest(source.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{prefix}-{hex}"))
    }

    /// The key read back from a message tag; `None` for anything sesguard did not write.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let (prefix, hex) = tag.split_once('-')?;
        let well_formed = matches!(prefix, "k" | "m")
            && hex.len() == 64
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        well_formed.then(|| Self(tag.to_owned()))
    }

    /// Where the identity comes from.
    pub fn identity(&self) -> Identity {
        if self.0.starts_with("k-") {
            Identity::IdempotencyKey
        } else {
            Identity::QueueMessage
        }
    }

    /// The tag value (and the record's key).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a send stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Claimed and handed (or about to be handed) to the mail service; unanswered, or answered
    /// ambiguously: in doubt.
    Sending,
    /// The mail service accepted it (or refused the message itself: finished either way).
    Sent,
}

/// The record of one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// The identity.
    pub key: SendKey,
    /// The queue message of the attempt that holds it.
    pub owner: String,
    /// Sending or sent.
    pub state: SendState,
    /// When that attempt claimed it.
    pub claimed_at: Timestamp,
    /// When the record runs out: while sending, `in_doubt` after the claim (an attempt still
    /// in doubt then is tried again); once sent, [`Self::sent_until`].
    pub expires_at: Timestamp,
    /// How long the record lasts once sent: [`Retention::sent`] after the claim.
    pub sent_until: Timestamp,
}

/// How long a send record is kept: long enough for every copy of its request that can still
/// arrive to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long an attempt in doubt waits for its `Send` event before it is tried again.
    pub in_doubt: Duration,
    /// How long the identity stays a duplicate: the idempotency window, or nothing for a queue
    /// message.
    pub window: Duration,
    /// How long after a receive the queue can still deliver a copy of the same message: its
    /// visibility timeout times its `maxReceiveCount`, plus a requeue's delay.
    pub redelivery: Duration,
}

impl Retention {
    /// How long a record is kept once sent, from its claim: the longest of twice `in_doubt`
    /// (the retry of an attempt in doubt comes back after one, and must find it), the duplicate
    /// window, and `in_doubt` plus every redelivery (an attempt that was in doubt, then
    /// settled, may still have copies in the queue that far out; an instance that dies after
    /// SES accepted leaves its message to come back a visibility timeout later, as often as
    /// the queue allows).
    pub fn sent(&self) -> Duration {
        (self.in_doubt * 2)
            .max(self.window)
            .max(self.in_doubt + self.redelivery)
    }
}

impl SendRecord {
    /// A fresh claim by `owner` at `now`: sending for `retention.in_doubt` (an ambiguous
    /// attempt's wait for its `Send` event), and once sent kept for [`Retention::sent`].
    pub fn claim(key: SendKey, owner: &str, now: Timestamp, retention: Retention) -> Self {
        Self {
            key,
            owner: owner.to_owned(),
            state: SendState::Sending,
            claimed_at: now,
            expires_at: now.plus(retention.in_doubt),
            sent_until: now.plus(retention.sent()),
        }
    }

    /// The same record, sent.
    pub fn sent(&self) -> Self {
        Self {
            state: SendState::Sent,
            expires_at: self.sent_until,
            ..self.clone()
        }
    }

    /// Whether the record still holds at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

/// What a request meets when its identity is already held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Sent already (by an earlier attempt of this request, or by another request with its
    /// idempotency key), or being sent by another request with its key: not again.
    Duplicate(String),
    /// An earlier attempt of this request may have been accepted: wait for its `Send` event,
    /// or for the record to run out, whichever comes first.
    InDoubt {
        /// When the record runs out and the request may go again.
        until: Timestamp,
    },
}

/// What `owner` may do about a live record it did not just write.
pub fn held(record: &SendRecord, owner: &str) -> Held {
    match (record.owner == owner, record.state) {
        (true, SendState::Sent) => Held::Duplicate(format!(
            "`{}` was sent (or refused by SES) in an earlier attempt of this request",
            record.key
        )),
        (true, SendState::Sending) => Held::InDoubt {
            until: record.expires_at,
        },
        (false, SendState::Sent) => Held::Duplicate(format!(
            "idempotency key `{}` was sent (or refused by SES) at {}",
            record.key, record.claimed_at
        )),
        (false, SendState::Sending) => Held::Duplicate(format!(
            "idempotency key `{}` is being sent by another request since {}",
            record.key, record.claimed_at
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(minutes: u64) -> Timestamp {
        Timestamp::EPOCH.plus(MINUTE * minutes as u32)
    }

    /// A retention of `in_doubt` and `window` minutes, with no redelivery.
    fn keep(in_doubt: u32, window: u32) -> Retention {
        Retention {
            in_doubt: MINUTE * in_doubt,
            window: MINUTE * window,
            redelivery: Duration::ZERO,
        }
    }

    #[test]
    fn an_identity_is_a_valid_ses_tag_and_reads_back() {
        let key = SendKey::new(Some("order 42 / ünïcode"), "msg-1");
        assert_eq!(key.identity(), Identity::IdempotencyKey);
        assert!(key.as_str().len() <= 256);
        assert!(
            key.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(SendKey::from_tag(key.as_str()), Some(key.clone()));
        let by_message = SendKey::new(None, "msg-1");
        assert_eq!(by_message.identity(), Identity::QueueMessage);
        assert_ne!(by_message, SendKey::new(None, "msg-2"));
        assert_eq!(by_message, SendKey::new(None, "msg-1"));
        for foreign in ["", "k-", "x-00", "k-XYZ", &format!("k-{}", "g".repeat(64))] {
            assert_eq!(SendKey::from_tag(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn a_claim_is_in_doubt_for_its_wait_and_sent_for_the_longer_of_it_and_the_window() {
        let key = SendKey::new(None, "m");
        let record = SendRecord::claim(key.clone(), "m", at(0), keep(10, 0));
        assert_eq!(record.expires_at, at(10));
        assert!(record.is_live(at(9)) && !record.is_live(at(10)));
        assert_eq!(
            record.sent().expires_at,
            at(20),
            "kept past the retry of an attempt in doubt"
        );
        let keyed = SendRecord::claim(key, "m", at(0), keep(10, 60));
        assert_eq!(keyed.expires_at, at(10), "in doubt for ten minutes only");
        assert_eq!(keyed.sent().state, SendState::Sent);
        assert_eq!(
            keyed.sent().expires_at,
            at(60),
            "a duplicate for the key's window"
        );
    }

    #[test]
    fn a_sent_record_outlives_every_copy_the_queue_can_still_deliver() {
        // in_doubt at its least (1 minute), a queue that redelivers a message after 3 minutes,
        // up to 10 times: a copy can come back 30 minutes after a receive. Twice in_doubt (the
        // old rule) kept the record 2 minutes, and the first redelivery sent the mail again.
        let retention = Retention {
            in_doubt: MINUTE,
            window: Duration::ZERO,
            redelivery: 3 * MINUTE * 10,
        };
        let record = SendRecord::claim(SendKey::new(None, "m"), "m", at(0), retention).sent();
        assert_eq!(record.expires_at, at(31));
        for copy in [3, 6, 30] {
            assert!(
                matches!(held(&record, "m"), Held::Duplicate(_)) && record.is_live(at(copy)),
                "the copy at {copy} minutes finds the record"
            );
        }
    }

    #[test]
    fn an_attempt_in_doubt_waits_and_everything_else_sent_or_sending_is_a_duplicate() {
        let key = SendKey::new(Some("k"), "first");
        let sending = SendRecord::claim(key, "first", at(0), keep(10, 0));
        assert_eq!(held(&sending, "first"), Held::InDoubt { until: at(10) });
        assert!(
            matches!(held(&sending.sent(), "first"), Held::Duplicate(r) if r.contains("earlier attempt"))
        );
        assert!(matches!(held(&sending, "second"), Held::Duplicate(r) if r.contains("being sent")));
        assert!(
            matches!(held(&sending.sent(), "second"), Held::Duplicate(r) if r.contains("was sent"))
        );
    }
}
