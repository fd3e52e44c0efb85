//! The token bucket paced for a store that takes tokens in one conditional write (GCRA): the
//! parts a bucket is split into, and the write to try for a take.

use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::rate_limit::limits::{PACE_SLACK, RateLimits};
use crate::domain::sending::rate_limit::windows::DAY;

/// Sends a second one part of a paced bucket is sized for: a sender batch of 10 writes a
/// part at most 25 times a second.
pub const PACE_PART_RATE: f64 = 250.0;
/// The most parts a bucket is split into (8 × 250 = 2,000 sends a second before a part takes
/// more; a faster account still works, its parts written more often).
pub const MAX_PACE_PARTS: u16 = 8;

/// The token bucket as GCRA (the generic cell rate algorithm): each part of the bucket is
/// one number, its *arrival time* — when it would be empty again at the steady rate — so
/// that a store takes tokens with one write that reads nothing first: add the tokens' worth
/// to the arrival time if the part is busy, keep the tokens that fit under the burst and give
/// the rest back; or restart it from now if it lies behind. A part holds `capacity / parts`
/// tokens and refills at `refill / parts`.
///
/// To keep the common case one write, an arrival time up to `slack_us` behind now — half the
/// burst, or [`PACE_SLACK`](super::PACE_SLACK) if longer — is advanced from where it is rather than restarted,
/// which lends the unused time: in any interval of length W at most capacity +
/// [`RateLimits::lent`] + refill × W sends are granted, where the bucket alone allows
/// capacity + refill × W.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// How many parts the bucket is split into.
    pub parts: u16,
    /// Microseconds one part takes to refill one token.
    pub interval_us: f64,
    /// A full part, in microseconds of refill.
    pub burst_us: f64,
    /// How far behind now an arrival time may lie and still be advanced.
    pub slack_us: f64,
}

/// One conditional write that takes tokens from a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceStep {
    /// Add `by_us` to the arrival time if it is at least `floor_us` (the part is busy). Adds
    /// commute, so writers never refuse each other's; the arrival time the write answers
    /// with says how many of the tokens fit ([`Pace::settle`]), and the rest is given back.
    Advance {
        /// Tokens asked for.
        asked: u64,
        /// Microseconds added.
        by_us: i64,
        /// The lowest arrival time it applies to.
        floor_us: i64,
    },
    /// Set the arrival time to `to_us` if there is none or it lies below `floor_us`.
    Restart {
        /// Tokens this takes.
        granted: u64,
        /// The new arrival time.
        to_us: i64,
        /// The arrival time it must lie below.
        floor_us: i64,
    },
    /// Nothing fits: one token will at `until`.
    Wait {
        /// When.
        until: Timestamp,
    },
}

impl Pace {
    /// Whether a part with arrival time `at` is idle at `now`: absent, or so far behind that
    /// a take restarts it.
    pub fn is_idle(&self, at: Option<i64>, now: Timestamp) -> bool {
        let floor_us = now.as_millis().saturating_mul(1000) - self.slack_us as i64;
        at.is_none_or(|at| at < floor_us)
    }

    /// What to assume of a part's arrival time before writing, from what this writer last
    /// saw of it (`None`: never): busy, at least where it was seen and at least at the
    /// slack's floor. Arrival times never go back, so an Advance from there fits whatever others
    /// wrote since unless the part is full; a part that has gone idle refuses it and tells so,
    /// and the next write restarts it. A wrong guess about an idle part costs a quiet account
    /// a second write; guessing idle instead would make busy instances race to restart parts
    /// others are advancing, at 1,000 sends a second the common case.
    pub fn guess(&self, seen: Option<i64>, now: Timestamp) -> Option<i64> {
        let floor_us = now.as_millis().saturating_mul(1000) - self.slack_us as i64;
        Some(seen.unwrap_or(floor_us).max(floor_us))
    }

    /// The write to try for `wanted` tokens at `now`, given the part's arrival time as last
    /// seen (`None`: never written). A write whose condition fails tells the arrival time it
    /// met; the next step from that one is then right unless another writer came between.
    pub fn step(&self, seen: Option<i64>, wanted: u64, now: Timestamp) -> PaceStep {
        let now_us = now.as_millis().saturating_mul(1000);
        let floor_us = now_us - self.slack_us as i64;
        // Arrival times are whole microseconds: a thousandth of a token absorbs the rounding.
        let tokens = |room_us: f64| (room_us / self.interval_us + 1e-3).floor().max(0.0) as u64;
        match seen {
            None => {}
            Some(at) if at < floor_us => {}
            Some(at) => {
                let asked = wanted.min(tokens(now_us as f64 + self.burst_us - at as f64));
                if asked == 0 {
                    return PaceStep::Wait {
                        until: self.next_token(at).max(now),
                    };
                }
                return PaceStep::Advance {
                    asked,
                    by_us: self.worth_us(asked),
                    floor_us,
                };
            }
        }
        let granted = wanted.min(tokens(self.burst_us));
        PaceStep::Restart {
            granted,
            to_us: now_us + self.worth_us(granted),
            floor_us,
        }
    }

    /// Microseconds of refill `tokens` are worth.
    fn worth_us(&self, tokens: u64) -> i64 {
        (tokens as f64 * self.interval_us).round() as i64
    }

    /// After an [`PaceStep::Advance`] for `asked` tokens by `by_us` answered with arrival time
    /// `new_us` (every write before it included): the tokens that fit under the burst at
    /// `now`, and the microseconds to give back for the rest. Giving back only lowers the
    /// arrival time by tokens nobody was granted, so the part ends as if each writer had
    /// taken, in turn, what fitted.
    pub fn settle(&self, asked: u64, by_us: i64, new_us: i64, now: Timestamp) -> (u64, i64) {
        let now_us = now.as_millis().saturating_mul(1000) as f64;
        let before = (new_us - by_us) as f64;
        let room = (now_us + self.burst_us - before) / self.interval_us + 1e-3;
        let granted = asked.min(room.floor().max(0.0) as u64);
        let back = if granted == asked {
            0
        } else {
            by_us - self.worth_us(granted)
        };
        (granted, back)
    }

    /// When a part with arrival time `at_us` holds one token again.
    pub fn next_token(&self, at_us: i64) -> Timestamp {
        let until_us = at_us as f64 + self.interval_us - self.burst_us;
        Timestamp::from_millis((until_us / 1000.0).ceil() as i64)
    }

    /// The tokens a part holds at `now` given its arrival time.
    pub fn available(&self, at_us: Option<i64>, now: Timestamp) -> f64 {
        let now_us = now.as_millis() as f64 * 1000.0;
        let behind = at_us.map_or(0.0, |at| (at as f64 - now_us).max(0.0));
        ((self.burst_us - behind) / self.interval_us).max(0.0)
    }
}

impl RateLimits {
    /// The bucket as a pace ([`Pace`]): split into parts when it refills faster than one
    /// item should be written.
    pub fn pace(&self) -> Pace {
        let by_rate = (self.refill_per_second / PACE_PART_RATE).ceil();
        let parts = by_rate
            .min(f64::from(MAX_PACE_PARTS))
            .min(self.capacity.floor())
            .max(1.0) as u16;
        let share = f64::from(parts);
        // A bucket that refills slower than a token a day (a send rate of 0) waits a day.
        let interval_us = (1e6 * share / self.refill_per_second).min(DAY.as_micros() as f64);
        let burst_us = self.capacity / share * interval_us;
        Pace {
            parts,
            interval_us,
            burst_us,
            slack_us: (burst_us / 2.0).max(PACE_SLACK * 1e6),
        }
    }
}
