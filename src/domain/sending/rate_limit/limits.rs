//! One account's send-rate limits — a token bucket (capacity, refill per second) and
//! optional per-minute, per-hour and per-day counts — and the patch that changes them, from
//! the configuration and from operators at run time.

use serde::{Deserialize, Serialize};

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
