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

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::app::Context;
use crate::app::admin::{Admin, AdminError};
use crate::app::ingest::Inbound;
use crate::app::ingest::Ingestor;
use crate::app::plot::{Chart, Level, Line, Mark};
use crate::app::review::Guard;
use crate::app::send::snapshot::Snapshot;
use crate::config::Config;
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::notification::{
    Bounce, BounceType, BouncedRecipient, Event, Format, Mail, Notification,
};
use crate::domain::reputation::counters::WindowTotals;
use crate::domain::reputation::history::Alert;
use crate::domain::reputation::thresholds::Thresholds;
use crate::domain::sending::routing::{self, Priority, Route};
use crate::domain::sns::unwrap::Content;
use crate::ports::{AlertError, AlertSink, Clock};

mod picture;
mod scenario;
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

/// SplitMix64: a small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A message waiting to be sent.
struct Pending {
    id: u64,
    created: i64,
    deferred: bool,
}

/// A bounce not yet delivered to sesguard.
struct InFlight {
    arrives: i64,
    sent: i64,
    account: &'static str,
    stream: usize,
    id: u64,
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

/// A notification about the mail `id` sent at `sent`.
fn notification(event: Event, id: u64, account: &str, stream: &str, sent: i64) -> Inbound {
    let tags = BTreeMap::from([
        ("sesguard-account".to_owned(), vec![account.to_owned()]),
        ("sesguard-stream".to_owned(), vec![stream.to_owned()]),
    ]);
    let mail = Mail {
        message_id: format!("m{id}"),
        timestamp: Some(Timestamp::from_millis(sent)),
        destination: vec![format!("u{id}@example.com")],
        tags,
        ..Mail::default()
    };
    Inbound {
        id: format!("{}-{id}", event.type_name()),
        sns: None,
        content: Ok(Content::Notification(Box::new(Notification {
            format: Format::EventPublishing,
            mail,
            event,
            damaged: Vec::new(),
        }))),
    }
}

fn hard_bounce(id: u64, at: i64) -> Event {
    Event::Bounce(Bounce {
        bounce_type: BounceType::Permanent,
        type_name: "Permanent".into(),
        sub_type: "General".into(),
        recipients: vec![BouncedRecipient {
            address: EmailAddress::parse(&format!("u{id}@example.com")),
            action: Some("failed".into()),
            status: Some("5.1.1".into()),
            diagnostic_code: None,
        }],
        timestamp: Some(Timestamp::from_millis(at)),
        feedback_id: Some(format!("fb{id}")),
    })
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
    let config = deps.config.as_ref();
    let min_volume = config.default_thresholds().min_volume;
    let window = config.ingest_policy().window;
    let per_minute = (scenario.daily_volume / scenario.streams.len() as u64 / 1440) as usize;
    let mut rng = Rng(scenario.seed);
    let mut next_id = 0_u64;
    let mut queues: Vec<(VecDeque<Pending>, i64)> = scenario
        .streams
        .iter()
        .map(|_| (VecDeque::new(), 0))
        .collect();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut backup_sends: VecDeque<i64> = VecDeque::new();
    let mut out = Outcome::default();
    let mut act = scenario.act.filter(|_| guarded);
    // The guard's first pause or quarantine on the primary: when, and of which stream.
    let mut guard_acted: Option<(i64, Option<String>)> = None;
    let critical = Thresholds::of(config.guard.profile).bounce_critical;
    // Whether each account's rate as the guard can see it (no feedback in flight) was at or
    // over the critical level at the end of the last minute.
    let mut over_the_line = [false; 2];
    // The last deferral reason told for each stream: the timeline says each one once.
    let mut told: BTreeMap<String, String> = BTreeMap::new();

    for minute in 0..i64::from(scenario.days) * 1440 {
        let now = START + minute * MINUTE;
        clock.set(now);
        for (queue, _) in &mut queues {
            for _ in 0..per_minute {
                next_id += 1;
                queue.push_back(Pending {
                    id: next_id,
                    created: now,
                    deferred: false,
                });
                out.generated += 1;
            }
        }

        if let Some(step) = act
            && operate(deps, scenario, step, minute, guard_acted.as_ref(), &mut out).await?
        {
            act = None;
        }

        // Route what is due, oldest first, against one snapshot per minute.
        let mut snapshot = Snapshot::load(
            deps.store.as_ref(),
            deps.ses.as_ref(),
            config,
            Timestamp::from_millis(now),
        )
        .await
        .map_err(|e| SimulateError::Step(format!("routing: {e}")))?;
        let mut batch = Vec::new();
        for (index, (queue, retry_at)) in queues.iter_mut().enumerate() {
            if now < *retry_at {
                continue;
            }
            let stream = &scenario.streams[index];
            let priority = config
                .stream(&stream.name)
                .map_or(Priority::Normal, |s| s.priority);
            while let Some(message) = queue.front() {
                let draw = routing::draw(&format!("m{}", message.id));
                let route = snapshot
                    .route(&stream.name, priority, draw)
                    .map_err(|e| SimulateError::Step(format!("routing: {e}")))?;
                match route {
                    Route::Send { account } => {
                        let account: &'static str = if account == "primary" {
                            "primary"
                        } else {
                            "backup"
                        };
                        snapshot.record_send(account, &stream.name, 1);
                        if over_the_line[usize::from(account == "backup")] {
                            *out.sent_over_the_line.entry(account).or_insert(0) += 1;
                        }
                        let wait = out.longest_wait.entry(stream.name.clone()).or_insert(0);
                        *wait = (*wait).max(now - message.created);
                        *out.sent.entry((account, stream.name.clone())).or_insert(0) += 1;
                        if account == "backup" {
                            backup_sends.push_back(now);
                        }
                        batch.push(notification(
                            Event::Send,
                            message.id,
                            account,
                            &stream.name,
                            now,
                        ));
                        if rng.unit() < scenario.bad_share(stream, index, now, guarded) {
                            let delay = 2 + (rng.next() % 9) as i64;
                            in_flight.push(InFlight {
                                arrives: now + delay * MINUTE,
                                sent: now,
                                account,
                                stream: index,
                                id: message.id,
                            });
                        }
                        queue.pop_front();
                    }
                    Route::Defer { until, reason } => {
                        // Everything behind it in this stream gets the same answer this minute.
                        out.deferrals += queue.len() as u64;
                        for message in queue.iter_mut().filter(|m| !m.deferred) {
                            message.deferred = true;
                            *out.deferred
                                .entry((stream.name.clone(), priority))
                                .or_insert(0) += 1;
                        }
                        *retry_at = until.as_millis();
                        if told.get(&stream.name) != Some(&reason) {
                            told.insert(stream.name.clone(), reason.clone());
                            out.timeline.push(format!(
                                "{} {}: deferred ({reason})",
                                clock_text(now),
                                stream.name
                            ));
                        }
                        break;
                    }
                }
            }
        }

        // Feedback that arrives this minute.
        let (arriving, later): (Vec<InFlight>, Vec<InFlight>) =
            in_flight.into_iter().partition(|f| f.arrives <= now);
        in_flight = later;
        for bounce in &arriving {
            batch.push(notification(
                hard_bounce(bounce.id, bounce.arrives),
                bounce.id,
                bounce.account,
                &scenario.streams[bounce.stream].name,
                bounce.sent,
            ));
        }
        let report = Ingestor::of(deps)
            .ingest(batch, Timestamp::from_millis(now))
            .await;
        if report.summary().failed > 0 {
            return Err(SimulateError::Step(format!(
                "ingest failed at {}",
                clock_text(now)
            )));
        }
        let mut applied = report.transitions;
        // The scheduled review (the template's `Review`, every 5 minutes): timed pauses end,
        // probation steps pass, accounts no batch touched are judged too.
        if minute % REVIEW_MINUTES == 0 {
            let review = Guard::of(deps)
                .review_all(Timestamp::from_millis(now))
                .await
                .map_err(|e| SimulateError::Step(format!("scheduled review: {e}")))?;
            applied.extend(review.applied);
        }
        for applied in &applied {
            tell(&applied.alert, minute, &mut guard_acted, &mut out);
        }

        // The rates as SES would see them once the feedback in flight lands.
        let (first, last) = window.buckets_ending(Timestamp::from_millis(now));
        let mut seen = [None; 2];
        for (slot, account) in ["primary", "backup"].into_iter().enumerate() {
            let read = deps.store.window(account, first, last).await?;
            let totals = WindowTotals::sum(&read.buckets, first, last);
            let known = &totals.total;
            over_the_line[slot] = known.sends >= min_volume && known.bounce_rate() >= critical;
            let pending = in_flight
                .iter()
                .filter(|f| f.account == account && f.sent >= first.as_millis())
                .count() as u64;
            let bad = totals.total.hard_bounces + pending;
            let rate = if totals.total.sends > 0 {
                bad as f64 / totals.total.sends as f64
            } else {
                0.0
            };
            if account == "backup" && rate > out.backup_any_volume.0 {
                out.backup_any_volume = (rate, totals.total.sends, bad);
            }
            if totals.total.sends >= min_volume {
                seen[slot] = Some(rate);
                let peak = out.peak.entry(account).or_insert((0.0, 0));
                if rate > peak.0 {
                    *peak = (rate, minute);
                }
                for (stream, counts) in &totals.streams {
                    if counts.sends >= min_volume {
                        let peak = out
                            .peak_stream
                            .entry((account, stream.clone()))
                            .or_insert(0.0);
                        *peak = peak.max(counts.bounce_rate());
                    }
                }
            }
        }
        if minute % 15 == 0 {
            out.rates.push((minute, seen[0], seen[1]));
        }
        while backup_sends
            .front()
            .is_some_and(|t| *t <= now - 1440 * MINUTE)
        {
            backup_sends.pop_front();
        }
        out.backup_peak_24h = out.backup_peak_24h.max(backup_sends.len() as u64);
    }
    out.pending_at_end = queues.iter().map(|(q, _)| q.len() as u64).sum();
    out.alerts = alerts
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(out)
}

/// How often the scheduled review runs, in minutes (the template's `ReviewMinutes` default).
const REVIEW_MINUTES: i64 = 5;

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
    let at = Timestamp::from_millis(now);
    let admin = Admin::of(deps, "ana");
    let (done, what) = match act {
        Act::CleanedResume { day } => {
            if scenario.start_of_day(day) != now {
                return Ok(false);
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
            let Some((acted, stream)) = guard_acted.filter(|(m, _)| minute == m + after) else {
                return Ok(false);
            };
            let _ = acted;
            // Hasty indeed: at full traffic at once, no probation.
            let done = admin
                .resume("primary", stream.clone(), false, "looks fine now", at)
                .await;
            let what = stream.clone().unwrap_or_else(|| "primary".into());
            (done, format!("{what} resumed"))
        }
        Act::TimedPause { at: start, minutes } => {
            if minute != start {
                return Ok(false);
            }
            let duration = std::time::Duration::from_secs(minutes as u64 * 60);
            let done = admin
                .pause("primary", None, Some(duration), "maintenance", at)
                .await;
            (done, format!("primary paused {} h", minutes / 60))
        }
    };
    match done {
        Ok(entry) => {
            out.timeline.push(format!(
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
                entry.note.unwrap_or_default(),
                entry
                    .share
                    .map(|s| format!(" at {:.0} % of its traffic", s * 100.0))
                    .unwrap_or_default(),
            ));
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
