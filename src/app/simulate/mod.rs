//! The incident sesguard exists for, simulated minute by minute through the real routing,
//! ingest path and guard, on a store of its own with a simulated clock: `sesguard simulate`
//! and the incident replay test.
//!
//! Each stream sends a share of the daily volume, half each by default: `verification` mail to
//! unchecked sign-up addresses whose bad share climbs from 3 % to 20 % over the first day, and
//! `transactional` mail to known addresses (0.5 % bad). Every stream lists the primary and then
//! the backup. Every send is an SES `Send` event and every bad address a hard bounce arriving 2
//! to 10 minutes later (seeded); what cannot go is deferred and retried, never dropped. With
//! the guard the story may have a second act ([`Act`]): at the start of a given day the
//! operator resumes the quarantined stream after cleaning the list, and 45 minutes later, still
//! on probation, a new bad source of sign-ups relapses; or the operator resumes in haste; or
//! pauses the primary for maintenance. The scheduled review runs every five minutes, and every
//! outcome counts the mail an account sent while over the critical level as the guard could
//! see it.
//!
//! Run once with the guard and once with thresholds out of reach, the two outcomes say what the
//! guard changed; [`picture`] draws both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::app::Context;
use crate::app::admin::{Admin, AdminError};
use crate::app::plot::{Chart, Level, Line, Mark};
use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::history::{Alert, HistoryEntry};
use crate::domain::reputation::thresholds::Thresholds;
use crate::domain::sending::routing::Priority;
use crate::ports::{AlertError, AlertSink, Clock};

mod bad_mix;
mod minute;
mod picture;
mod scenario;
pub use bad_mix::*;
use minute::World;
pub use picture::*;
pub use scenario::*;

const MINUTE: i64 = 60_000;
/// SES may pause an account at a 10 % bounce rate, and reviews it from 5 %.
pub const SES_PAUSE: f64 = 0.10;
const SES_REVIEW: f64 = 0.05;

/// Where simulated time starts: 2026-11-20T00:00:00Z.
pub const START: i64 = 1_795_132_800_000;

/// A clock the simulation sets.
#[derive(Debug)]
pub struct SimClock(Mutex<Timestamp>);

impl SimClock {
    /// At the simulation's start.
    pub fn new() -> Self {
        Self(Mutex::new(Timestamp::from_millis(START)))
    }

    fn set(&self, at: i64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Timestamp::from_millis(at);
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Alerts kept for the outcome instead of sent.
#[derive(Debug, Default, Clone)]
pub struct KeptAlerts(Arc<Mutex<Vec<Alert>>>);

#[async_trait]
impl AlertSink for KeptAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(alert.clone());
        Ok(())
    }

    async fn notice(&self, _subject: &str, _body: &serde_json::Value) -> Result<(), AlertError> {
        Ok(())
    }
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Messages generated.
    pub generated: u64,
    /// Sent, by account and stream.
    pub sent: BTreeMap<(&'static str, String), u64>,
    /// Distinct messages deferred at least once, by stream and priority.
    pub deferred: BTreeMap<(String, Priority), u64>,
    /// Deferral decisions (a message retried and deferred again counts each time).
    pub deferrals: u64,
    /// The longest any message of a stream waited, in milliseconds.
    pub longest_wait: BTreeMap<String, i64>,
    /// Messages still waiting at the end.
    pub pending_at_end: u64,
    /// Highest windowed bounce rate per account, counting bounces in flight, at or above the
    /// minimum volume, with the minute it happened.
    pub peak: BTreeMap<&'static str, (f64, i64)>,
    /// Highest windowed bounce rate per account and stream, at the minimum volume.
    pub peak_stream: BTreeMap<(&'static str, String), f64>,
    /// The most the backup sent in any 24 hours.
    pub backup_peak_24h: u64,
    /// The backup's highest windowed rate at any volume (counting bounces in flight), with its
    /// sends and bad addresses then.
    pub backup_any_volume: (f64, u64, u64),
    /// Every alert.
    pub alerts: Vec<Alert>,
    /// What happened, line by line.
    pub timeline: Vec<String>,
    /// Every 15 minutes: the minute and each account's windowed bounce rate as SES would see it
    /// once the feedback in flight lands (none below the minimum volume, where rates are not
    /// judged).
    pub rates: Vec<(i64, Option<f64>, Option<f64>)>,
    /// The minute of each transition, with what it was.
    pub transitions: Vec<(i64, String)>,
    /// Messages each account sent while its rate as the guard could see it (the feedback
    /// arrived) was at or over the critical level: none, by the guard's invariant.
    pub sent_over_the_line: BTreeMap<&'static str, u64>,
    /// Bad addresses prevention refused before sending, by kind (runs with prevention).
    pub prevented: BTreeMap<BadKind, u64>,
}

/// `day D HH:MM` of a simulated time.
pub fn clock_text(at: i64) -> String {
    let minutes = (at - START) / MINUTE;
    format!(
        "day {} {:02}:{:02}",
        minutes / 1440 + 1,
        (minutes % 1440) / 60,
        minutes % 60
    )
}

/// Runs `scenario` over `deps` (a fresh store, `clock` as its clock, its alerts `alerts`):
/// with the guard when `guarded`, and the second act then.
pub async fn run(
    deps: &Context,
    clock: &SimClock,
    alerts: &KeptAlerts,
    scenario: &Scenario,
    guarded: bool,
) -> Result<Outcome, SimulateError> {
    scenario.validate()?;
    let mut world = World::new(deps, scenario, guarded);
    let mut act = scenario.act.filter(|_| guarded);
    for minute in 0..i64::from(scenario.days) * 1440 {
        let now = START + minute * MINUTE;
        clock.set(now);
        world.generate(now);
        let acted = world.guard_acted.as_ref();
        if let Some(step) = act
            && operate(deps, scenario, step, minute, acted, &mut world.out).await?
        {
            act = None;
        }
        let mut batch = world.route(now).await?;
        world.feedback(now, &mut batch);
        world.ingest(minute, now, batch).await?;
        world.measure(minute, now).await?;
    }
    let mut out = world.finish();
    out.alerts = alerts
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(out)
}

/// Says a transition the guard applied at `minute` in the timeline, and remembers the guard's
/// first pause or quarantine on the primary.
fn tell(
    alert: &Alert,
    minute: i64,
    guard_acted: &mut Option<(i64, Option<String>)>,
    out: &mut Outcome,
) {
    let c = &alert.change;
    if guard_acted.is_none() && c.account == "primary" && c.to.is_stopped() {
        *guard_acted = Some((minute, c.stream.clone()));
    }
    let share = c
        .share
        .map(|s| format!(" {:.0} %", s * 100.0))
        .unwrap_or_default();
    let what = format!(
        "{}{}: {} -> {}{share}",
        c.account,
        c.stream
            .as_ref()
            .map(|s| format!(" stream {s}"))
            .unwrap_or_default(),
        c.from,
        c.to,
    );
    let bounds = c
        .bounds
        .map(|b| format!(" ({:.1}–{:.1})", b.bounce[0] * 100.0, b.bounce[1] * 100.0))
        .unwrap_or_default();
    out.timeline.push(format!(
        "{} {what} ({:?}) bounce rate {:.2} %{bounds} over {} sends, {:.2} % as SES sees it; {}",
        clock_text(START + minute * MINUTE),
        c.cause,
        c.bounce_rate * 100.0,
        c.window_sends,
        c.ses.map_or(c.bounce_rate, |v| v.bounce_rate) * 100.0,
        alert.traffic
    ));
    let short = format!(
        "{} {}{share}",
        c.stream.as_deref().unwrap_or(&c.account),
        c.to
    );
    out.transitions.push((minute, short));
}

/// The operator's `act` at `minute`, if it is due: performs it and says it in the timeline.
/// Returns whether the act is done.
async fn operate(
    deps: &Context,
    scenario: &Scenario,
    act: Act,
    minute: i64,
    guard_acted: Option<&(i64, Option<String>)>,
    out: &mut Outcome,
) -> Result<bool, SimulateError> {
    let now = START + minute * MINUTE;
    let admin = Admin::of(deps, "ana");
    let Some((done, what)) = perform(&admin, scenario, act, minute, guard_acted).await else {
        return Ok(false);
    };
    match done {
        Ok(entry) => {
            out.timeline.push(operator_line(&entry, now));
            out.transitions.push((minute, what));
        }
        // Nothing to resume (the guard never acted on it): said, not an error.
        Err(AdminError::Conflict(why)) => out.timeline.push(format!(
            "{} the operator would act, but: {why}",
            clock_text(now)
        )),
        Err(other) => {
            return Err(SimulateError::Step(format!("the operator: {other}")));
        }
    }
    Ok(true)
}

/// The operator's `act` performed, if it is due at `minute`: what the operations answered, and
/// the transition as the picture names it (`None`: not due).
async fn perform(
    admin: &Admin<'_>,
    scenario: &Scenario,
    act: Act,
    minute: i64,
    guard_acted: Option<&(i64, Option<String>)>,
) -> Option<(Result<HistoryEntry, AdminError>, String)> {
    let now = START + minute * MINUTE;
    let at = Timestamp::from_millis(now);
    Some(match act {
        Act::CleanedResume { day } => {
            if scenario.start_of_day(day) != now {
                return None;
            }
            let stream = scenario.streams[0].name.clone();
            let done = admin
                .resume(
                    "primary",
                    Some(stream.clone()),
                    true,
                    "sign-up list cleaned",
                    at,
                )
                .await;
            (done, format!("{stream} resumed"))
        }
        Act::HastyResume { after } => {
            let (_, stream) = guard_acted.filter(|(m, _)| minute == m + after)?;
            // Hasty indeed: at full traffic at once, no probation.
            let done = admin
                .resume("primary", stream.clone(), false, "looks fine now", at)
                .await;
            let what = stream.clone().unwrap_or_else(|| "primary".into());
            (done, format!("{what} resumed"))
        }
        Act::TimedPause { at: start, minutes } => {
            if minute != start {
                return None;
            }
            let duration = std::time::Duration::from_secs(minutes as u64 * 60);
            let done = admin
                .pause("primary", None, Some(duration), "maintenance", at)
                .await;
            (done, format!("primary paused {} h", minutes / 60))
        }
    })
}

/// The timeline's line for a transition the operator made at `now`.
fn operator_line(entry: &HistoryEntry, now: i64) -> String {
    format!(
        "{} {}{}: {} -> {} (operator: {}){}",
        clock_text(now),
        entry.account,
        entry
            .stream
            .as_ref()
            .map(|s| format!(" stream {s}"))
            .unwrap_or_default(),
        entry.from,
        entry.to,
        entry.note.as_deref().unwrap_or_default(),
        entry
            .share
            .map(|s| format!(" at {:.0} % of its traffic", s * 100.0))
            .unwrap_or_default(),
    )
}
