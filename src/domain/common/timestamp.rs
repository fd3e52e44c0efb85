//! Millisecond UTC timestamps as SES and SNS write them (RFC 3339), and the arithmetic the
//! domain needs on them. Nothing here reads a clock: callers pass the current time in.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp string that is not RFC 3339.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not an RFC 3339 timestamp")]
pub struct TimestampError {
    /// The text that failed to parse.
    pub input: String,
}

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down), as DynamoDB TTL attributes want them.
    pub const fn as_epoch_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses `2016-01-27T14:59:38.237Z` and any other RFC 3339 form.
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(input.trim(), &Rfc3339).map_err(|_| TimestampError {
            input: input.to_owned(),
        })?;
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).map(Self).map_err(|_| TimestampError {
            input: input.to_owned(),
        })
    }

    /// `2016-01-27T14:59:38.237Z`: UTC with milliseconds.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(at) => {
                let (y, mo, d) = (at.year(), u8::from(at.month()), at.day());
                let (h, mi, s, ms) = (at.hour(), at.minute(), at.second(), at.millisecond());
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            }
            Err(_) => format!("@{}ms", self.0),
        }
    }

    /// The UTC day, `YYYY-MM-DD`.
    pub fn day(self) -> String {
        self.to_rfc3339().chars().take(10).collect()
    }

    /// This time moved forward by `by` (saturating).
    pub fn plus(self, by: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(by)))
    }

    /// This time moved back by `by` (saturating).
    pub fn minus(self, by: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(by)))
    }

    /// The start of the `step`-long slot this time falls in (slots start at the epoch).
    pub fn floor_to(self, step: Duration) -> Self {
        let step = duration_millis(step).max(1);
        Self(self.0 - self.0.rem_euclid(step))
    }

    /// Time from `earlier` to this one; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ses_timestamps_round_trip_with_millisecond_precision() {
        let at = Timestamp::parse_rfc3339("2016-01-27T14:59:38.237Z").unwrap();
        assert_eq!(at.as_millis(), 1_453_906_778_237);
        assert_eq!(at.to_rfc3339(), "2016-01-27T14:59:38.237Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let at = Timestamp::parse_rfc3339("2016-01-27T15:59:38.237+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2016-01-27T14:59:38.237Z");
    }

    #[test]
    fn text_that_is_not_a_timestamp_is_rejected_with_the_text() {
        let err = Timestamp::parse_rfc3339("yesterday").unwrap_err();
        assert_eq!(err.input, "yesterday");
    }

    #[test]
    fn floor_to_finds_the_slot_start_also_before_the_epoch() {
        let step = Duration::from_secs(900);
        assert_eq!(
            Timestamp::from_millis(1_000_123).floor_to(step).as_millis(),
            900_000
        );
        assert_eq!(
            Timestamp::from_millis(-1).floor_to(step).as_millis(),
            -900_000
        );
    }

    #[test]
    fn since_is_zero_when_the_other_time_is_later() {
        let a = Timestamp::from_millis(5_000);
        assert_eq!(
            a.since(Timestamp::from_millis(2_000)),
            Duration::from_secs(3)
        );
        assert_eq!(Timestamp::from_millis(2_000).since(a), Duration::ZERO);
    }
}
