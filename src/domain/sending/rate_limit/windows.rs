//! Fixed counting windows — the calendar minute, hour and day (UTC) — that per-window limits
//! count sends in, and each limit's use as operators see it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::common::timestamp::Timestamp;

/// Sends counted in one fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowCount {
    /// The window's start.
    pub start: Timestamp,
    /// Sends in it.
    pub count: u64,
}

pub(crate) const MINUTE: Duration = Duration::from_secs(60);
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// Fits up to `wanted` sends into `windows` (each with its limit, `None`: unlimited, and its
/// length) at `now` and counts them: how many fit, and when each window that is now full turns.
pub(crate) fn fit(
    windows: [(&mut WindowCount, Option<u64>, Duration); 3],
    wanted: u64,
    now: Timestamp,
) -> (u64, Vec<Timestamp>) {
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
    pub(crate) fn of(limit: Option<u64>, current: u64, enabled: bool) -> Self {
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
