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
        let windows = [
            (&mut next.minute, self.per_minute, MINUTE),
            (&mut next.hour, self.per_hour, HOUR),
            (&mut next.day, self.per_day, DAY),
        ];
        let mut room = next.tokens.max(0.0).floor() as u64;
        let mut waits = Vec::new();
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
        let granted = wanted.min(room);
        next.tokens -= granted as f64;
        for (window, limit, length) in limited {
            window.count += granted;
            if window.count >= limit {
                waits.push(window.start.plus(length));
            }
        }
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
