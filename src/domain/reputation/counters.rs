//! Per-account sending counters in fixed time buckets, and the rolling-window rates computed
//! from them. Buckets are keyed by the time the event happened, not when it was processed.

use std::collections::BTreeMap;
use std::ops::{AddAssign, SubAssign};
use std::time::Duration;

use serde::Serialize;

use crate::domain::common::timestamp::Timestamp;

/// Event counts in one bucket, window or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Recipients sent to.
    pub sends: u64,
    /// Recipients delivered to.
    pub deliveries: u64,
    /// Hard bounces that count toward the bounce rate (per recipient).
    pub hard_bounces: u64,
    /// Soft and undetermined bounces (per recipient).
    pub soft_bounces: u64,
    /// Complaints that count toward the complaint rate (per complaint report).
    pub complaints: u64,
}

impl Counts {
    /// The counter names, in the order [`Counts::values`] gives them.
    pub const NAMES: [&'static str; 5] = [
        "sends",
        "deliveries",
        "hard_bounces",
        "soft_bounces",
        "complaints",
    ];

    /// The counts in the order of [`Counts::NAMES`].
    pub fn values(&self) -> [u64; 5] {
        [
            self.sends,
            self.deliveries,
            self.hard_bounces,
            self.soft_bounces,
            self.complaints,
        ]
    }

    /// Counts from values in the order of [`Counts::NAMES`].
    pub fn from_values(values: [u64; 5]) -> Self {
        let [sends, deliveries, hard_bounces, soft_bounces, complaints] = values;
        Self {
            sends,
            deliveries,
            hard_bounces,
            soft_bounces,
            complaints,
        }
    }

    /// True when nothing is counted.
    pub fn is_zero(&self) -> bool {
        self.values().iter().all(|v| *v == 0)
    }

    /// Hard bounces per send (0..1); 0 when nothing was sent.
    pub fn bounce_rate(&self) -> f64 {
        ratio(self.hard_bounces, self.sends)
    }

    /// Complaints per send (0..1); 0 when nothing was sent.
    pub fn complaint_rate(&self) -> f64 {
        ratio(self.complaints, self.sends)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.sends += other.sends;
        self.deliveries += other.deliveries;
        self.hard_bounces += other.hard_bounces;
        self.soft_bounces += other.soft_bounces;
        self.complaints += other.complaints;
    }
}

impl SubAssign for Counts {
    /// Takes a part away, never below zero.
    fn sub_assign(&mut self, part: Counts) {
        let mut values = self.values();
        for (total, part) in values.iter_mut().zip(part.values()) {
            *total = total.saturating_sub(part);
        }
        *self = Counts::from_values(values);
    }
}

/// What one mailbox provider answered in one bucket, window or account: each bounced
/// recipient counted once by its class (the sender class by its reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ProviderCounts {
    /// Recipients delivered to.
    pub deliveries: u64,
    /// Bounces of the address class (the address or its domain cannot receive mail).
    pub address_bounces: u64,
    /// Bounces of the temporary class.
    pub temporary_bounces: u64,
    /// Sender-class bounces for reason `blocked`.
    pub blocked: u64,
    /// Sender-class bounces for reason `authentication`.
    pub authentication: u64,
    /// Sender-class bounces for reason `policy`.
    pub policy: u64,
    /// Complaint reports.
    pub complaints: u64,
}

impl ProviderCounts {
    /// The counter names, in the order [`ProviderCounts::values`] gives them.
    pub const NAMES: [&'static str; 7] = [
        "deliveries",
        "address_bounces",
        "temporary_bounces",
        "blocked",
        "authentication",
        "policy",
        "complaints",
    ];

    /// The counts in the order of [`ProviderCounts::NAMES`].
    pub fn values(&self) -> [u64; 7] {
        [
            self.deliveries,
            self.address_bounces,
            self.temporary_bounces,
            self.blocked,
            self.authentication,
            self.policy,
            self.complaints,
        ]
    }

    /// Counts from values in the order of [`ProviderCounts::NAMES`].
    pub fn from_values(values: [u64; 7]) -> Self {
        let [
            deliveries,
            address_bounces,
            temporary_bounces,
            blocked,
            authentication,
            policy,
            complaints,
        ] = values;
        Self {
            deliveries,
            address_bounces,
            temporary_bounces,
            blocked,
            authentication,
            policy,
            complaints,
        }
    }

    /// Bounces that refuse the sender.
    pub fn sender_bounces(&self) -> u64 {
        self.blocked + self.authentication + self.policy
    }

    /// Messages the provider answered: delivered or bounced.
    pub fn answered(&self) -> u64 {
        self.deliveries + self.address_bounces + self.temporary_bounces + self.sender_bounces()
    }

    /// True when nothing is counted.
    pub fn is_zero(&self) -> bool {
        self.values().iter().all(|v| *v == 0)
    }
}

impl AddAssign for ProviderCounts {
    fn add_assign(&mut self, other: ProviderCounts) {
        let mut values = self.values();
        for (total, part) in values.iter_mut().zip(other.values()) {
            *total += part;
        }
        *self = ProviderCounts::from_values(values);
    }
}

/// The rolling window: its length and its bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// How far back rates look (default 24 h). A whole number of buckets.
    pub length: Duration,
    /// Bucket size (default 15 min).
    pub bucket: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            length: Duration::from_secs(24 * 3600),
            bucket: Duration::from_secs(15 * 60),
        }
    }
}

impl WindowConfig {
    /// The start of the bucket `at` falls in.
    pub fn bucket_of(&self, at: Timestamp) -> Timestamp {
        at.floor_to(self.bucket)
    }

    /// The range of bucket starts in the window that ends at `now`: from the first whole
    /// bucket of its length up to `now` itself (a bucket that starts afresh at a resume may
    /// start after the fixed grid's last boundary).
    pub fn buckets_ending(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let first = self
            .bucket_of(now)
            .minus(self.length.saturating_sub(self.bucket));
        (first, now)
    }

    /// The first bucket start of the 24 hours that end with the bucket of `now` (the daily
    /// quota's range, whatever the window's length).
    pub fn day_starting_bucket(&self, now: Timestamp) -> Timestamp {
        self.bucket_of(now.minus(Duration::from_secs(24 * 3600)))
            .plus(self.bucket)
    }

    /// When a bucket's item may be deleted: after it has left every window, plus a day.
    pub fn bucket_expiry(&self, bucket: Timestamp) -> Timestamp {
        bucket
            .plus(self.length)
            .plus(self.bucket)
            .plus(Duration::from_secs(24 * 3600))
    }
}

/// One account's counts in one bucket, overall and per stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bucket {
    /// Bucket start.
    pub start: Timestamp,
    /// All streams together.
    pub total: Counts,
    /// Per stream (`sesguard-stream` tag).
    pub streams: BTreeMap<String, Counts>,
    /// Per mailbox provider ([`provider_of`]).
    ///
    /// [`provider_of`]: crate::domain::feedback::provider::provider_of
    pub providers: BTreeMap<String, ProviderCounts>,
}

impl Bucket {
    /// A bucket starting at `start` holding these streams' counts (and their sum).
    pub fn of(start: Timestamp, streams: &[(&str, Counts)]) -> Self {
        let mut bucket = Bucket {
            start,
            ..Bucket::default()
        };
        for (name, counts) in streams {
            bucket.total += *counts;
            bucket.streams.insert((*name).to_owned(), *counts);
        }
        bucket
    }

    /// Adds `other`'s counts (of the same start) to this bucket: the parts of one bucket
    /// written apart (shards, or deltas of one batch) read as one.
    pub fn absorb(&mut self, other: Bucket) {
        self.total += other.total;
        for (stream, counts) in other.streams {
            *self.streams.entry(stream).or_default() += counts;
        }
        for (provider, counts) in other.providers {
            *self.providers.entry(provider).or_default() += counts;
        }
    }
}

/// What one batch adds to one account's bucket: the counter write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDelta {
    /// The account.
    pub account: String,
    /// The counts to add, with the bucket start.
    pub bucket: Bucket,
    /// When the bucket item may be deleted.
    pub expires_at: Timestamp,
}

impl CounterDelta {
    /// The same additions with one delta per account bucket (a store writes each item once
    /// per atomic change).
    pub fn merged(deltas: Vec<CounterDelta>) -> Vec<CounterDelta> {
        let mut merged: BTreeMap<(String, Timestamp), CounterDelta> = BTreeMap::new();
        for delta in deltas {
            match merged.entry((delta.account.clone(), delta.bucket.start)) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(delta);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let into = slot.get_mut();
                    into.bucket.absorb(delta.bucket);
                    into.expires_at = into.expires_at.max(delta.expires_at);
                }
            }
        }
        merged.into_values().collect()
    }
}

/// An account's totals over a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowTotals {
    /// All streams together.
    pub total: Counts,
    /// Per stream.
    pub streams: BTreeMap<String, Counts>,
    /// Per mailbox provider.
    pub providers: BTreeMap<String, ProviderCounts>,
}

impl WindowTotals {
    /// Sums the buckets whose start lies in `[first, last]`; others are ignored, so a store
    /// may return expired buckets without skewing the rates.
    pub fn sum<'a>(
        buckets: impl IntoIterator<Item = &'a Bucket>,
        first: Timestamp,
        last: Timestamp,
    ) -> Self {
        let mut totals = WindowTotals::default();
        for bucket in buckets {
            if bucket.start < first || bucket.start > last {
                continue;
            }
            totals.total += bucket.total;
            for (stream, counts) in &bucket.streams {
                *totals.streams.entry(stream.clone()).or_default() += *counts;
            }
            for (provider, counts) in &bucket.providers {
                *totals.providers.entry(provider.clone()).or_default() += *counts;
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sends: u64, hard_bounces: u64, complaints: u64) -> Counts {
        Counts {
            sends,
            hard_bounces,
            complaints,
            ..Counts::default()
        }
    }

    #[test]
    fn deltas_of_one_account_bucket_merge_into_one_write() {
        let delta = |account: &str, start: i64, stream: &str, sends: u64| CounterDelta {
            account: account.into(),
            bucket: Bucket::of(
                Timestamp::from_millis(start),
                &[(stream, counts(sends, 0, 0))],
            ),
            expires_at: Timestamp::from_millis(start + 10),
        };
        let merged = CounterDelta::merged(vec![
            delta("primary", 0, "a", 1),
            delta("backup", 0, "a", 4),
            delta("primary", 0, "b", 2),
            delta("primary", 0, "a", 3),
            delta("primary", 900, "a", 5),
        ]);
        assert_eq!(merged.len(), 3);
        let first = merged
            .iter()
            .find(|d| d.account == "primary" && d.bucket.start.as_millis() == 0)
            .unwrap();
        assert_eq!(first.bucket.total.sends, 6);
        assert_eq!(first.bucket.streams["a"].sends, 4);
        assert_eq!(first.bucket.streams["b"].sends, 2);
    }

    #[test]
    fn rates_are_per_send_and_zero_without_sends() {
        let c = counts(200, 10, 1);
        assert_eq!(c.bounce_rate(), 0.05);
        assert_eq!(c.complaint_rate(), 0.005);
        assert_eq!(counts(0, 3, 1).bounce_rate(), 0.0);
    }

    #[test]
    fn the_window_spans_whole_buckets_ending_with_the_current_one() {
        let window = WindowConfig::default();
        let now = Timestamp::from_millis(100 * 24 * 3600 * 1000 + 1_234_567);
        let (first, last) = window.buckets_ending(now);
        assert_eq!(last, now);
        assert_eq!(
            window.bucket_of(now).since(first),
            Duration::from_secs(24 * 3600 - 900)
        );
    }

    #[test]
    fn sums_ignore_buckets_outside_the_window_and_keep_streams_apart() {
        let at = |ms| Timestamp::from_millis(ms);
        let bucket = |start, stream: &str, c| Bucket {
            start: at(start),
            total: c,
            streams: [(stream.to_owned(), c)].into(),
            providers: BTreeMap::new(),
        };
        let buckets = [
            bucket(0, "a", counts(100, 50, 0)),
            bucket(1_000, "a", counts(10, 1, 0)),
            bucket(2_000, "b", counts(20, 2, 1)),
        ];
        let totals = WindowTotals::sum(&buckets, at(1_000), at(2_000));
        assert_eq!(totals.total, counts(30, 3, 1));
        assert_eq!(totals.streams["a"], counts(10, 1, 0));
        assert_eq!(totals.streams["b"], counts(20, 2, 1));
    }
}
