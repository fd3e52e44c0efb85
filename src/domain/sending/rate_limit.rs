//! Send-rate limits of one account: a token bucket (capacity, refill per second) that all
//! sender instances share through the store, plus per-minute, per-hour and per-day counts in
//! fixed windows. Pure arithmetic: a state and the time in, how many sends may go now, the new
//! state, and when the next one may go.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;

/// One account's limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimits {
    /// Tokens the bucket holds at most (a burst).
    pub capacity: f64,
    /// Tokens added per second.
    pub refill_per_second: f64,
    /// Sends per calendar minute (UTC), when limited.
    pub per_minute: Option<u64>,
    /// Sends per hour, when limited.
    pub per_hour: Option<u64>,
    /// Sends per day, when limited.
    pub per_day: Option<u64>,
    /// Off: everything is granted.
    pub enabled: bool,
}

impl RateLimits {
    /// The default limits of an account allowed `max_send_rate` sends per second: a bucket of
    /// one second's sends, refilled at that rate.
    pub fn from_send_rate(max_send_rate: f64) -> Self {
        Self {
            capacity: max_send_rate.max(1.0),
            refill_per_second: max_send_rate.max(f64::MIN_POSITIVE),
            per_minute: None,
            per_hour: None,
            per_day: None,
            enabled: true,
        }
    }
}

/// Changes to an account's limits: from the configuration (`[accounts.limits]`) over the
/// defaults, and from operators at run time (`PATCH /accounts/{name}/limits`) over those.
/// A field left out keeps its value; a window limit given as JSON `null` is lifted.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    /// Token bucket capacity (a burst), at least 1.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub capacity: Option<f64>,
    /// Tokens added per second, more than 0.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub refill_per_second: Option<f64>,
    /// Sends per calendar minute (`null`: unlimited).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_minute: Option<Option<u64>>,
    /// Sends per hour (`null`: unlimited).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_hour: Option<Option<u64>>,
    /// Sends per day (`null`: unlimited).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_day: Option<Option<u64>>,
    /// Off: the limiter grants everything.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
}

/// A count that is present, with a value or `null`. JSON has one kind of number, so a whole
/// number written with a fraction (`284.0`) is the same count as `284`.
fn present<'de, D>(deserializer: D) -> Result<Option<Option<u64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Whole(u64),
        Written(f64),
    }
    match Option::<Count>::deserialize(deserializer)? {
        None => Ok(Some(None)),
        Some(Count::Whole(n)) => Ok(Some(Some(n))),
        // 2^64 itself is past u64's range: `<` the bound, not `<=`.
        Some(Count::Written(x))
            if x >= 0.0 && x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0 =>
        {
            Ok(Some(Some(x as u64)))
        }
        Some(Count::Written(x)) => Err(serde::de::Error::custom(format!(
            "`{x}` is not a count: a whole number from 0"
        ))),
    }
}

/// Limits that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct InvalidLimits {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

/// A field that may be left out but, when given, is not `null` (which would say nothing).
fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl LimitsPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The limits with this patch over them; the bucket must keep a capacity of at least one
    /// send and a positive refill, or nothing could ever be granted.
    pub fn apply(&self, limits: RateLimits) -> Result<RateLimits, InvalidLimits> {
        let capacity = self.capacity.unwrap_or(limits.capacity);
        if !(capacity >= 1.0 && capacity.is_finite()) {
            return Err(InvalidLimits {
                field: "capacity",
                problem: "must be a number of at least 1",
            });
        }
        let refill_per_second = self.refill_per_second.unwrap_or(limits.refill_per_second);
        if !(refill_per_second > 0.0 && refill_per_second.is_finite()) {
            return Err(InvalidLimits {
                field: "refill_per_second",
                problem: "must be a number above 0",
            });
        }
        Ok(RateLimits {
            capacity,
            refill_per_second,
            per_minute: self.per_minute.unwrap_or(limits.per_minute),
            per_hour: self.per_hour.unwrap_or(limits.per_hour),
            per_day: self.per_day.unwrap_or(limits.per_day),
            enabled: self.enabled.unwrap_or(limits.enabled),
        })
    }

    /// This patch, then `later` over it.
    pub fn then(self, later: &LimitsPatch) -> LimitsPatch {
        LimitsPatch {
            capacity: later.capacity.or(self.capacity),
            refill_per_second: later.refill_per_second.or(self.refill_per_second),
            per_minute: later.per_minute.or(self.per_minute),
            per_hour: later.per_hour.or(self.per_hour),
            per_day: later.per_day.or(self.per_day),
            enabled: later.enabled.or(self.enabled),
        }
    }
}

/// Sends counted in one fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowCount {
    /// The window's start.
    pub start: Timestamp,
    /// Sends in it.
    pub count: u64,
}

/// The shared state of one account's limits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RateState {
    /// Tokens in the bucket at `at`.
    pub tokens: f64,
    /// When `tokens` was measured.
    pub at: Timestamp,
    /// This minute's sends.
    pub minute: WindowCount,
    /// This hour's sends.
    pub hour: WindowCount,
    /// This day's sends.
    pub day: WindowCount,
}

/// The answer to a request for sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    /// How many may go now (at most the number asked for).
    pub granted: u64,
    /// The state to write back.
    pub state: RateState,
    /// When one more may go, if fewer than asked were granted.
    pub next_at: Option<Timestamp>,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl RateLimits {
    /// `state` with a full bucket at `now` (an operator's refill); window counts are kept.
    pub fn refilled(&self, state: Option<RateState>, now: Timestamp) -> RateState {
        RateState {
            tokens: self.capacity,
            at: now,
            ..state.unwrap_or_default()
        }
    }

    /// Takes up to `wanted` sends at `now` from `state` (`None`: a full bucket, empty windows).
    pub fn take(&self, state: Option<&RateState>, wanted: u64, now: Timestamp) -> Grant {
        let mut next = match state {
            Some(s) => *s,
            None => RateState {
                tokens: self.capacity,
                at: now,
                ..RateState::default()
            },
        };
        if !self.enabled {
            return Grant {
                granted: wanted,
                state: next,
                next_at: None,
            };
        }
        let elapsed = now.since(next.at).as_secs_f64();
        next.tokens = (next.tokens + elapsed * self.refill_per_second).min(self.capacity);
        next.at = now.max(next.at);
        let room = next.tokens.max(0.0).floor() as u64;
        let (granted, mut waits) = self.fit_windows(&mut next, wanted.min(room), now);
        next.tokens -= granted as f64;
        let next_at = (granted < wanted).then(|| {
            if next.tokens < 1.0 {
                let seconds = (1.0 - next.tokens) / self.refill_per_second;
                waits.push(now.plus(Duration::from_secs_f64(seconds.min(DAY.as_secs_f64()))));
            }
            waits.into_iter().max().unwrap_or(now)
        });
        Grant {
            granted,
            state: next,
            next_at,
        }
    }

    /// Whether a per-minute, per-hour or per-day limit is set.
    pub fn has_windows(&self) -> bool {
        self.per_minute.is_some() || self.per_hour.is_some() || self.per_day.is_some()
    }

    /// Counts up to `wanted` sends (already paced by the bucket, see [`Pace`]) against the
    /// window limits alone; the bucket's fields of `state` are left as they are.
    pub fn take_windows(&self, state: Option<&RateState>, wanted: u64, now: Timestamp) -> Grant {
        let mut next = state.copied().unwrap_or_default();
        if !self.enabled {
            return Grant {
                granted: wanted,
                state: next,
                next_at: None,
            };
        }
        let (granted, waits) = self.fit_windows(&mut next, wanted, now);
        Grant {
            granted,
            state: next,
            next_at: (granted < wanted).then(|| waits.into_iter().max().unwrap_or(now)),
        }
    }

    /// Fits up to `wanted` sends into the window limits of `next` at `now` and counts them:
    /// how many fit, and when each window that is now full turns.
    fn fit_windows(
        &self,
        next: &mut RateState,
        wanted: u64,
        now: Timestamp,
    ) -> (u64, Vec<Timestamp>) {
        let windows = [
            (&mut next.minute, self.per_minute, MINUTE),
            (&mut next.hour, self.per_hour, HOUR),
            (&mut next.day, self.per_day, DAY),
        ];
        let mut room = wanted;
        let mut limited = Vec::new();
        for (window, limit, length) in windows {
            let start = now.floor_to(length);
            if window.start != start {
                *window = WindowCount { start, count: 0 };
            }
            if let Some(limit) = limit {
                room = room.min(limit.saturating_sub(window.count));
                limited.push((window, limit, length));
            }
        }
        let mut waits = Vec::new();
        for (window, limit, length) in limited {
            window.count += room;
            if window.count >= limit {
                waits.push(window.start.plus(length));
            }
        }
        (room, waits)
    }

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
            slack_us: burst_us / 2.0,
        }
    }
}

/// Sends a second one part of a paced bucket is sized for: a sender batch of 10 writes a
/// part at most 25 times a second.
pub const PACE_PART_RATE: f64 = 250.0;
/// The most parts a bucket is split into (8 × 250 = 2,000 sends a second before a part takes
/// more; a faster account still works, its parts written more often).
pub const MAX_PACE_PARTS: u16 = 8;

/// The token bucket as GCRA (the generic cell rate algorithm): each part of the bucket is
/// one number, its *arrival time* — when it would be empty again at the steady rate — so
/// that a store takes tokens with one conditional write that reads nothing first: advance the
/// arrival time by the tokens' worth if it lies in a range, or restart it from now if it lies
/// behind. A part holds `capacity / parts` tokens and refills at `refill / parts`.
///
/// To keep the common case one write, an arrival time up to `slack_us` (half the burst)
/// behind now is advanced from where it is rather than restarted, which lends the unused
/// time: in any interval of length W at most 1.5 × capacity + refill × W sends are granted,
/// where the bucket alone allows capacity + refill × W.
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
    /// Add `by_us` to the arrival time if it lies within `[floor_us, ceiling_us]`.
    Advance {
        /// Tokens this takes.
        granted: u64,
        /// Microseconds added.
        by_us: i64,
        /// The lowest arrival time it applies to.
        floor_us: i64,
        /// The highest.
        ceiling_us: i64,
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
                let granted = wanted.min(tokens(now_us as f64 + self.burst_us - at as f64));
                if granted == 0 {
                    return PaceStep::Wait {
                        until: self.next_token(at).max(now),
                    };
                }
                let by = granted as f64 * self.interval_us;
                return PaceStep::Advance {
                    granted,
                    by_us: by.round() as i64,
                    floor_us,
                    // The same thousandth of a token as `tokens`, or the write could refuse
                    // the very arrival time it was computed from.
                    ceiling_us: (now_us as f64 + self.burst_us - by + 1e-3 * self.interval_us)
                        .floor() as i64,
                };
            }
        }
        let granted = wanted.min(tokens(self.burst_us));
        PaceStep::Restart {
            granted,
            to_us: now_us + (granted as f64 * self.interval_us).round() as i64,
            floor_us,
        }
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

/// One limit's use at a moment, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Period {
    /// The limit (`None`: unlimited).
    pub limit: Option<u64>,
    /// Used in the period (for `second`: tokens missing from the bucket).
    pub current: u64,
    /// What may still go in the period (`None`: unlimited).
    pub available: Option<u64>,
    /// `current` as a percentage of `limit`.
    pub percentage: Option<f64>,
    /// `ok`, `near` (80 % used or more), `exhausted`, `unlimited` or `disabled`.
    pub status: &'static str,
}

impl Period {
    fn of(limit: Option<u64>, current: u64, enabled: bool) -> Self {
        let available = limit.map(|l| l.saturating_sub(current));
        let percentage = limit.map(|l| {
            if l == 0 {
                100.0
            } else {
                current as f64 * 100.0 / l as f64
            }
        });
        let status = match (enabled, available, percentage) {
            (false, _, _) => "disabled",
            (true, None, _) => "unlimited",
            (true, Some(0), _) => "exhausted",
            (true, Some(_), Some(p)) if p >= 80.0 => "near",
            _ => "ok",
        };
        Self {
            limit,
            current,
            available,
            percentage,
            status,
        }
    }
}

/// The use of every limit of an account at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Periods {
    /// The token bucket: its capacity, and the tokens in it now.
    pub second: Period,
    /// This calendar minute.
    pub minute: Period,
    /// This hour.
    pub hour: Period,
    /// This day (UTC).
    pub day: Period,
}

impl RateLimits {
    /// How much of each limit `state` has used at `now` (`None`: nothing used yet).
    pub fn periods(&self, state: Option<&RateState>, now: Timestamp) -> Periods {
        let tokens = match state {
            None => self.capacity,
            Some(s) => {
                let elapsed = now.since(s.at).as_secs_f64();
                (s.tokens + elapsed * self.refill_per_second).min(self.capacity)
            }
        };
        let capacity = self.capacity.floor() as u64;
        let used_tokens = capacity.saturating_sub(tokens.max(0.0).floor() as u64);
        let used = |window: Option<&WindowCount>, length: Duration| {
            window
                .filter(|w| w.start == now.floor_to(length))
                .map_or(0, |w| w.count)
        };
        Periods {
            second: Period::of(Some(capacity), used_tokens, self.enabled),
            minute: Period::of(
                self.per_minute,
                used(state.map(|s| &s.minute), MINUTE),
                self.enabled,
            ),
            hour: Period::of(
                self.per_hour,
                used(state.map(|s| &s.hour), HOUR),
                self.enabled,
            ),
            day: Period::of(self.per_day, used(state.map(|s| &s.day), DAY), self.enabled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_795_132_800_000); // a midnight

    fn at(seconds: f64) -> Timestamp {
        T0.plus(Duration::from_secs_f64(seconds))
    }

    #[test]
    fn a_full_bucket_grants_its_capacity_then_refills_at_the_rate() {
        let limits = RateLimits::from_send_rate(14.0);
        let first = limits.take(None, 20, T0);
        assert_eq!(first.granted, 14);
        assert_eq!(first.next_at, Some(at(1.0 / 14.0)));
        let half_second = limits.take(Some(&first.state), 20, at(0.5));
        assert_eq!(half_second.granted, 7);
        let later = limits.take(Some(&half_second.state), 3, at(10.0));
        assert_eq!((later.granted, later.next_at), (3, None));
        assert!(
            (later.state.tokens - 11.0).abs() < 1e-9,
            "capped at capacity, minus 3"
        );
    }

    /// A store's conditional write of one part: the new arrival time, or the one it met.
    fn write(part: &mut Option<i64>, step: PaceStep) -> Result<u64, Option<i64>> {
        match step {
            PaceStep::Advance {
                granted,
                by_us,
                floor_us,
                ceiling_us,
            } => match *part {
                Some(at) if (floor_us..=ceiling_us).contains(&at) => {
                    *part = Some(at + by_us);
                    Ok(granted)
                }
                other => Err(other),
            },
            PaceStep::Restart {
                granted,
                to_us,
                floor_us,
            } => match *part {
                Some(at) if at >= floor_us => Err(Some(at)),
                _ => {
                    *part = Some(to_us);
                    Ok(granted)
                }
            },
            PaceStep::Wait { .. } => Ok(0),
        }
    }

    #[test]
    fn a_paced_part_grants_like_the_bucket() {
        let pace = RateLimits::from_send_rate(14.0).pace();
        assert_eq!(pace.parts, 1);
        let mut part = None;
        let first = pace.step(None, 20, T0);
        assert!(matches!(first, PaceStep::Restart { granted: 14, .. }));
        assert_eq!(write(&mut part, first), Ok(14));
        let empty = pace.step(part, 1, T0);
        let PaceStep::Wait { until } = empty else {
            panic!("{empty:?}")
        };
        assert!(
            until >= at(1.0 / 14.0) && until <= at(1.0 / 14.0).plus(Duration::from_millis(1)),
            "one token's refill away"
        );
        let half = pace.step(part, 20, at(0.5));
        assert!(
            matches!(half, PaceStep::Advance { granted: 7, .. }),
            "{half:?}"
        );
        assert_eq!(write(&mut part, half), Ok(7));
        assert!((pace.available(part, at(0.5))).abs() < 1e-6);
        assert!((pace.available(part, at(100.0)) - 14.0).abs() < 1e-6);
    }

    #[test]
    fn a_bucket_that_never_refills_paces_a_token_a_day_not_nan() {
        let pace = RateLimits::from_send_rate(0.0).pace();
        let mut part = None;
        let first = pace.step(None, 5, T0);
        assert_eq!(write(&mut part, first), Ok(1), "{first:?}");
        let PaceStep::Wait { until } = pace.step(part, 5, at(60.0)) else {
            panic!("no token a minute later")
        };
        assert!(until >= at(86_400.0) && until <= at(86_401.0), "{until:?}");
    }

    #[test]
    fn fast_buckets_are_split_into_parts_that_each_hold_a_token() {
        let parts = |rate: f64, capacity: f64| {
            RateLimits {
                capacity,
                ..RateLimits::from_send_rate(rate)
            }
            .pace()
            .parts
        };
        assert_eq!(parts(14.0, 14.0), 1);
        assert_eq!(parts(250.0, 250.0), 1);
        assert_eq!(parts(1_000.0, 1_000.0), 4);
        assert_eq!(parts(50_000.0, 50_000.0), MAX_PACE_PARTS);
        assert_eq!(parts(1_000.0, 2.0), 2, "a part holds at least one token");
        let pace = RateLimits::from_send_rate(1_000.0).pace();
        assert!((pace.available(None, T0) * f64::from(pace.parts) - 1_000.0).abs() < 1e-6);
    }

    /// Six writers take in turns at random moments (`gap_ms` apart on average, up to
    /// `most` tokens each) for a minute, each acting on what its own last write met, as sender
    /// instances do: the grants (time, tokens) and the writes made.
    fn race(limits: &RateLimits, gap_ms: u64, most: u64) -> (Vec<(i64, u64)>, usize) {
        let pace = limits.pace();
        let mut part = None;
        let mut seen = [None::<i64>; 6];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut grants, mut writes, mut clock_ms) = (Vec::new(), 0, 0_i64);
        while clock_ms < 60_000 {
            clock_ms += random(2 * gap_ms) as i64;
            let now = T0.plus(Duration::from_millis(clock_ms as u64));
            let writer = random(6) as usize;
            let wanted = 1 + random(most);
            let mut assumed = pace.guess(seen[writer], now);
            for _ in 0..4 {
                let step = pace.step(assumed, wanted, now);
                if matches!(step, PaceStep::Wait { .. }) {
                    grants.push((clock_ms, 0));
                    break;
                }
                writes += 1;
                let outcome = write(&mut part, step);
                seen[writer] = match outcome {
                    Ok(_) => part,
                    Err(met) => met,
                };
                match outcome {
                    Ok(granted) => {
                        grants.push((clock_ms, granted));
                        break;
                    }
                    Err(met) => assumed = met,
                }
            }
        }
        (grants, writes)
    }

    #[test]
    fn racing_writers_above_the_rate_never_take_more_than_the_stated_bound() {
        let limits = RateLimits::from_send_rate(100.0);
        let (grants, writes) = race(&limits, 20, 10);
        for window_ms in [100_i64, 1_000, 10_000] {
            for (i, (start, _)) in grants.iter().enumerate() {
                let sum: u64 = grants[i..]
                    .iter()
                    .take_while(|(t, _)| t - start < window_ms)
                    .map(|(_, g)| g)
                    .sum();
                let bound = 1.5 * limits.capacity + 100.0 * window_ms as f64 / 1000.0;
                assert!(
                    sum as f64 <= bound + 1.0,
                    "{sum} in {window_ms} ms from {start}"
                );
            }
        }
        let total: u64 = grants.iter().map(|(_, g)| g).sum();
        assert!(
            (5_800..=6_300).contains(&total),
            "{total} over 60 s at 100/s"
        );
        // Full, a part refuses writers whose last sight of it is stale: those write twice.
        assert!(
            writes < grants.len() * 2,
            "{writes} writes for {} takes",
            grants.len()
        );
    }

    #[test]
    fn racing_writers_below_the_rate_take_in_one_write_each() {
        let limits = RateLimits::from_send_rate(250.0);
        assert_eq!(limits.pace().parts, 1);
        // About 180 tokens a second wanted from a 250/s part: 5 on average every 28 ms.
        let (grants, writes) = race(&limits, 28, 9);
        let wanted_total: u64 = grants.len() as u64 * 5;
        let total: u64 = grants.iter().map(|(_, g)| g).sum();
        assert!(
            total * 100 >= wanted_total * 95,
            "{total} of about {wanted_total}"
        );
        // The extra writes are the restarts of a part that fell more than the slack behind
        // (once every second or two at this load): under 3 %.
        assert!(
            writes * 100 <= grants.len() * 103,
            "{writes} writes for {} takes",
            grants.len()
        );
    }

    #[test]
    fn window_limits_bind_and_say_when_the_window_turns() {
        let limits = RateLimits {
            per_minute: Some(5),
            per_hour: Some(7),
            ..RateLimits::from_send_rate(100.0)
        };
        let a = limits.take(None, 10, at(30.0));
        assert_eq!(
            (a.granted, a.next_at),
            (5, Some(at(60.0))),
            "the minute is full"
        );
        let b = limits.take(Some(&a.state), 10, at(61.0));
        assert_eq!(
            (b.granted, b.next_at),
            (2, Some(at(3600.0))),
            "the hour is full"
        );
        let c = limits.take(Some(&b.state), 1, at(3600.5));
        assert_eq!(c.granted, 1, "a new hour");
    }

    #[test]
    fn patches_change_only_what_they_name_and_null_lifts_a_window() {
        let base = RateLimits {
            per_hour: Some(100),
            ..RateLimits::from_send_rate(14.0)
        };
        let patch: LimitsPatch =
            serde_json::from_str(r#"{"capacity": 28, "per_minute": 50, "per_hour": null}"#)
                .unwrap();
        let patched = patch.apply(base).unwrap();
        assert_eq!(patched.capacity, 28.0);
        assert_eq!(patched.refill_per_second, 14.0);
        assert_eq!((patched.per_minute, patched.per_hour), (Some(50), None));
        assert!(patched.enabled);
        assert!(LimitsPatch::default().is_empty());
        let later = LimitsPatch {
            enabled: Some(false),
            ..LimitsPatch::default()
        };
        let both = patch.then(&later).apply(base).unwrap();
        assert_eq!((both.capacity, both.enabled), (28.0, false));
    }

    #[test]
    fn patches_that_would_stop_the_bucket_are_refused() {
        let base = RateLimits::from_send_rate(14.0);
        let zero: LimitsPatch = serde_json::from_str(r#"{"refill_per_second": 0}"#).unwrap();
        assert_eq!(zero.apply(base).unwrap_err().field, "refill_per_second");
        let small: LimitsPatch = serde_json::from_str(r#"{"capacity": 0.5}"#).unwrap();
        assert_eq!(small.apply(base).unwrap_err().field, "capacity");
        assert!(serde_json::from_str::<LimitsPatch>(r#"{"burst": 3}"#).is_err());
    }

    #[test]
    fn periods_show_each_limits_use_now() {
        let limits = RateLimits {
            per_minute: Some(10),
            per_day: Some(100),
            ..RateLimits::from_send_rate(14.0)
        };
        let fresh = limits.periods(None, at(30.0));
        assert_eq!(
            (fresh.second.limit, fresh.second.available),
            (Some(14), Some(14))
        );
        assert_eq!(fresh.minute.status, "ok");
        assert_eq!(fresh.hour.status, "unlimited");
        let taken = limits.take(None, 9, at(30.0));
        let p = limits.periods(Some(&taken.state), at(30.0));
        assert_eq!((p.second.current, p.second.available), (9, Some(5)));
        assert_eq!(
            (p.minute.current, p.minute.available, p.minute.status),
            (9, Some(1), "near")
        );
        assert_eq!(p.minute.percentage, Some(90.0));
        assert_eq!(p.day.current, 9);
        let next_minute = limits.periods(Some(&taken.state), at(61.0));
        assert_eq!(next_minute.minute.current, 0, "a new minute");
        assert_eq!(next_minute.second.available, Some(14), "refilled");
        assert_eq!(next_minute.day.current, 9, "the same day");
        let off = RateLimits {
            enabled: false,
            ..limits
        };
        assert_eq!(off.periods(None, at(0.0)).minute.status, "disabled");
    }

    #[test]
    fn disabled_limits_grant_everything() {
        let limits = RateLimits {
            enabled: false,
            ..RateLimits::from_send_rate(1.0)
        };
        assert_eq!(limits.take(None, 1_000, T0).granted, 1_000);
    }

    #[test]
    fn asking_for_nothing_changes_nothing_but_the_refill() {
        let limits = RateLimits::from_send_rate(2.0);
        let g = limits.take(None, 0, T0);
        assert_eq!((g.granted, g.next_at), (0, None));
        assert_eq!(g.state.tokens, 2.0);
    }
}
