//! Send-rate limits of one account: a token bucket (capacity, refill per second) that all
//! sender instances share through the store, paced into parts for one-write takes, plus
//! per-minute, per-hour and per-day counts in fixed windows. Pure arithmetic: a state and the
//! time in, how many sends may go now, the new state, and when the next one may go.

mod bucket;
mod limits;
mod pace;
#[cfg(test)]
mod tests;
mod windows;

pub use bucket::{Grant, RateState};
pub use limits::{InvalidLimits, LimitsPatch, PACE_SLACK, RateLimits, SesLine};
pub use pace::{MAX_PACE_PARTS, PACE_PART_RATE, Pace, PaceStep};
pub use windows::{Period, Periods, WindowCount};
