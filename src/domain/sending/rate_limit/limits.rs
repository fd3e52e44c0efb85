//! One account's send-rate limits — a token bucket (capacity, refill per second) and
//! optional per-minute, per-hour and per-day counts — the line SES's send rate draws under
//! them, and the patch that changes them, from the configuration and from operators at run
//! time.

use serde::{Deserialize, Serialize};

use std::time::Duration;

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
    /// The line these limits are held to ([`SesLine::hold`]) whatever is patched over them;
    /// `None` for a bare bucket.
    #[serde(skip)]
    pub line: Option<SesLine>,
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
            line: None,
        }
    }

    /// Sends the paced bucket may grant in an interval over capacity + refill × its length:
    /// what its slack lends, half the burst or [`PACE_SLACK`] of refill.
    pub fn lent(&self) -> f64 {
        (self.capacity / 2.0).max(PACE_SLACK * self.refill_per_second)
    }
}

/// The least time a part's arrival time may lie behind now and still be advanced (seconds).
/// A burst of a tenth of a second (SES's line) would leave a slack of 50 ms, and a part
/// written every 25 ms by instances whose sight of it is old would be found idle and
/// restarted, racing, several times a second (`make load` under DynamoDB's rules: 1.4 % of
/// requests were conflict retries).
pub const PACE_SLACK: f64 = 0.25;

/// The burst of the line's own limits: a tenth of a second's sends. A twentieth left a
/// 300-a-second account's sixteen sender instances, taking four tokens each, finding the
/// bucket dry one batch in ten at 70 % of its refill (`make load`); a slower account's
/// batches take their tokens over a few takes.
const BURST_SHARE: f64 = 1.0 / 10.0;

/// An account's send-rate line — SES accepts at most `max_send_rate` sends in any second —
/// and what the bucket that keeps every sender instance's sends under it allows for between a
/// grant and SES: the paced bucket's over-grant, a token's life before it is used, and the skew
/// between the instances' clocks.
///
/// The model. A paced bucket of capacity *b* refilling at *r* grants fewer than
/// *b* + *L* + *r*·*W* sends in any interval of length *W*, where *L* is what its slack lends,
/// half the burst or a quarter second's refill ([`RateLimits::lent`]). A sender uses a token within its life *τ* of the take or drops it,
/// so the sends in a window of *W* were granted within *W* + *τ*; and an instance whose clock
/// is off by up to *σ* takes as if the window were *σ* wider at either end. So the sends
/// reaching SES in any window of *W* seconds are fewer than
///
/// > *b* + *L* + *r*·(*W* + *τ* + 2*σ*)
///
/// and SES allows ⌊*R*·max(1, *W*)⌋ (a window shorter than a second lies within one). Sends are
/// whole, so the bound may reach one more than SES allows; it does so at *W* = 1 second and
/// stays under for every longer window, since *r* < *R*.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SesLine {
    /// Sends a second SES accepts from the account (`MaxSendRate`, or configured).
    pub max_send_rate: f64,
    /// How far apart any two sender instances' clocks may be from true time, at most.
    pub clock_skew: Duration,
    /// How long after the take a token may still be used; older ones are dropped.
    pub token_life: Duration,
}

impl SesLine {
    /// Seconds a window of grants is wider than the window of sends they can land in: a
    /// token's life and the clock skew at either end.
    pub fn spread(&self) -> f64 {
        self.token_life.as_secs_f64() + 2.0 * self.clock_skew.as_secs_f64()
    }

    /// The most sends SES allows in any window of `window` seconds.
    pub fn allowed(&self, window: f64) -> u64 {
        (self.max_send_rate.max(0.0) * window.max(1.0)).floor() as u64
    }

    /// Sends in any window of `window` seconds under `limits` are fewer than this.
    pub fn bound(&self, limits: &RateLimits, window: f64) -> f64 {
        limits.capacity + limits.lent() + limits.refill_per_second * (window + self.spread())
    }

    /// The line's own limits: a tenth of a second's burst and the refill the rest leaves.
    pub fn limits(&self) -> RateLimits {
        let burst = (self.max_send_rate * BURST_SHARE).max(1.0);
        self.hold(RateLimits {
            capacity: burst,
            refill_per_second: self.max_send_rate,
            ..RateLimits::from_send_rate(self.max_send_rate)
        })
    }

    /// `wanted` held to the line: its capacity at most a third of what one second allows (at
    /// least one token), its refill at most what the burst and what the slack lends leave of
    /// that second, spread over the second and the [`spread`](Self::spread). Never looser
    /// than `wanted`.
    pub fn hold(&self, wanted: RateLimits) -> RateLimits {
        let room = self.allowed(1.0) as f64 + 1.0;
        let capacity = wanted.capacity.min(room / 3.0).max(1.0);
        // The slack lends half the burst, or PACE_SLACK of refill: both must fit.
        let lending_burst = (room - 1.5 * capacity) / (1.0 + self.spread());
        let lending_time = (room - capacity) / (1.0 + self.spread() + PACE_SLACK);
        let left = lending_burst.min(lending_time).max(f64::MIN_POSITIVE);
        RateLimits {
            capacity,
            refill_per_second: wanted.refill_per_second.min(left),
            line: Some(*self),
            ..wanted
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
            line: limits.line,
        })
        .map(|patched| match patched.line {
            Some(line) => line.hold(patched),
            None => patched,
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
