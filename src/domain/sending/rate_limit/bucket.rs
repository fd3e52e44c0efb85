//! The token bucket of one account's limits, shared by every sender instance through the
//! store: its state (tokens and the window counts), a take at a moment (how many sends may go
//! now, the new state, and when the next one may go), and how much of each limit is used.
//! Pure arithmetic: a state and the time in, the answer out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::rate_limit::limits::RateLimits;
use crate::domain::sending::rate_limit::windows::{
    self, DAY, HOUR, MINUTE, Period, Periods, WindowCount,
};

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

    /// Fits up to `wanted` sends into the window limits of `next` at `now` and counts them.
    fn fit_windows(
        &self,
        next: &mut RateState,
        wanted: u64,
        now: Timestamp,
    ) -> (u64, Vec<Timestamp>) {
        windows::fit(
            [
                (&mut next.minute, self.per_minute, MINUTE),
                (&mut next.hour, self.per_hour, HOUR),
                (&mut next.day, self.per_day, DAY),
            ],
            wanted,
            now,
        )
    }

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
