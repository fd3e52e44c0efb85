//! A simulation between its minutes, and each minute's steps: new mail, routing, the sends
//! and their bounces on the way, ingest and the scheduled review, the rates measured. What is
//! simulated is in [`super::scenario`]; how the outcome is told, in [`super::picture`].

use std::collections::{BTreeMap, VecDeque};

use crate::app::Context;
use crate::app::ingest::{Inbound, Ingestor};
use crate::app::review::Guard;
use crate::app::send::snapshot::Snapshot;
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::notification::{
    Bounce, BounceType, BouncedRecipient, Event, Format, Mail, Notification,
};
use crate::domain::reputation::counters::{WindowConfig, WindowTotals};
use crate::domain::reputation::thresholds::Thresholds;
use crate::domain::sending::routing::{self, Priority, Route};
use crate::domain::sns::unwrap::Content;

use super::{BadKind, MINUTE, Outcome, Scenario, SimulateError, clock_text, tell};

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
#[derive(Clone, Copy)]
struct Pending {
    id: u64,
    created: i64,
    deferred: bool,
    /// Whether its address is bad, and of what kind, once drawn (runs with prevention draw
    /// before routing; the others when it is sent).
    drawn: Option<Option<BadKind>>,
}

/// A bounce not yet delivered to sesguard.
struct InFlight {
    arrives: i64,
    sent: i64,
    account: &'static str,
    stream: usize,
    id: u64,
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

/// A simulation between its minutes: the mail waiting and in flight, and what happened.
pub(super) struct World<'a> {
    deps: &'a Context,
    scenario: &'a Scenario,
    guarded: bool,
    min_volume: u64,
    critical: f64,
    window: WindowConfig,
    /// Messages each stream gets a minute.
    per_minute: usize,
    rng: Rng,
    next_id: u64,
    /// Each stream's waiting messages, and when it may route again.
    queues: Vec<(VecDeque<Pending>, i64)>,
    in_flight: Vec<InFlight>,
    /// When the backup sent, over the last 24 hours.
    backup_sends: VecDeque<i64>,
    pub(super) out: Outcome,
    /// The guard's first pause or quarantine on the primary: when, and of which stream.
    pub(super) guard_acted: Option<(i64, Option<String>)>,
    /// Whether each account's rate as the guard can see it (no feedback in flight) was at or
    /// over the critical level at the end of the last minute.
    over_the_line: [bool; 2],
    /// The last deferral reason told for each stream: the timeline says each one once.
    told: BTreeMap<String, String>,
}

impl<'a> World<'a> {
    /// Nothing sent yet, nothing waiting.
    pub(super) fn new(deps: &'a Context, scenario: &'a Scenario, guarded: bool) -> Self {
        let config = deps.config.as_ref();
        Self {
            deps,
            scenario,
            guarded,
            min_volume: config.default_thresholds().min_volume,
            critical: Thresholds::of(config.guard.profile).bounce_critical,
            window: config.ingest_policy().window,
            per_minute: (scenario.daily_volume / scenario.streams.len() as u64 / 1440) as usize,
            rng: Rng(scenario.seed),
            next_id: 0,
            queues: scenario
                .streams
                .iter()
                .map(|_| (VecDeque::new(), 0))
                .collect(),
            in_flight: Vec::new(),
            backup_sends: VecDeque::new(),
            out: Outcome::default(),
            guard_acted: None,
            over_the_line: [false; 2],
            told: BTreeMap::new(),
        }
    }

    /// The outcome, with the messages still waiting.
    pub(super) fn finish(self) -> Outcome {
        let mut out = self.out;
        out.pending_at_end = self.queues.iter().map(|(q, _)| q.len() as u64).sum();
        out
    }

    /// The minute's new messages, `per_minute` on each stream.
    pub(super) fn generate(&mut self, now: i64) {
        for (queue, _) in &mut self.queues {
            for _ in 0..self.per_minute {
                self.next_id += 1;
                queue.push_back(Pending {
                    id: self.next_id,
                    created: now,
                    deferred: false,
                    drawn: None,
                });
                self.out.generated += 1;
            }
        }
    }

    /// Routes what is due, oldest first, against one snapshot for the minute; returns the
    /// `Send` events of what went.
    pub(super) async fn route(&mut self, now: i64) -> Result<Vec<Inbound>, SimulateError> {
        let config = self.deps.config.as_ref();
        let mut snapshot = Snapshot::load(
            self.deps.store.as_ref(),
            self.deps.ses.as_ref(),
            config,
            Timestamp::from_millis(now),
        )
        .await
        .map_err(|e| SimulateError::Step(format!("routing: {e}")))?;
        let mut batch = Vec::new();
        for (index, stream) in self.scenario.streams.iter().enumerate() {
            if now < self.queues[index].1 {
                continue;
            }
            let priority = config
                .stream(&stream.name)
                .map_or(Priority::Normal, |s| s.priority);
            while !self.queues[index].0.is_empty() {
                if let Some(kind) = self.prevented(index, now) {
                    self.queues[index].0.pop_front();
                    *self.out.prevented.entry(kind).or_insert(0) += 1;
                    continue;
                }
                let Some(&message) = self.queues[index].0.front() else {
                    break;
                };
                let draw = routing::draw(&format!("m{}", message.id));
                let route = snapshot
                    .route(&stream.name, priority, draw, &[])
                    .map_err(|e| SimulateError::Step(format!("routing: {e}")))?;
                match route {
                    Route::Send { account } => {
                        let account = if account == "primary" {
                            "primary"
                        } else {
                            "backup"
                        };
                        snapshot.record_send(account, &stream.name, 1);
                        batch.push(self.sent(account, index, message, now));
                        self.queues[index].0.pop_front();
                    }
                    Route::Defer { until, reason } => {
                        self.defer(index, priority, until, reason, now);
                        break;
                    }
                }
            }
        }
        Ok(batch)
    }

    /// With prevention on an unverified stream: the kind of the front message's bad address
    /// (drawn now, once) when the real checks refuse it; `None` when it may be sent.
    fn prevented(&mut self, index: usize, now: i64) -> Option<BadKind> {
        let stream = &self.scenario.streams[index];
        if !(self.scenario.prevent && stream.unverified) {
            return None;
        }
        let share = self.scenario.bad_share(stream, index, now, self.guarded);
        let front = self.queues[index].0.front_mut()?;
        let drawn = *front.drawn.get_or_insert_with(|| {
            (self.rng.unit() < share).then(|| self.scenario.mix.kind(self.rng.unit()))
        });
        let kind = drawn?;
        let (address, dns) = kind.sample(front.id);
        (!self.deps.prevention.check(&address, dns).deliverable).then_some(kind)
    }

    /// A message `account` sent: counted, and, when its address is bad, its bounce on its way.
    /// Returns its `Send` event.
    fn sent(&mut self, account: &'static str, index: usize, message: Pending, now: i64) -> Inbound {
        let stream = &self.scenario.streams[index];
        if self.over_the_line[usize::from(account == "backup")] {
            *self.out.sent_over_the_line.entry(account).or_insert(0) += 1;
        }
        let wait = self
            .out
            .longest_wait
            .entry(stream.name.clone())
            .or_insert(0);
        *wait = (*wait).max(now - message.created);
        *self
            .out
            .sent
            .entry((account, stream.name.clone()))
            .or_insert(0) += 1;
        if account == "backup" {
            self.backup_sends.push_back(now);
        }
        let event = notification(Event::Send, message.id, account, &stream.name, now);
        let bad = match message.drawn {
            Some(kind) => kind.is_some(),
            None => self.rng.unit() < self.scenario.bad_share(stream, index, now, self.guarded),
        };
        if bad {
            let delay = 2 + (self.rng.next() % 9) as i64;
            self.in_flight.push(InFlight {
                arrives: now + delay * MINUTE,
                sent: now,
                account,
                stream: index,
                id: message.id,
            });
        }
        event
    }

    /// A stream deferred: everything behind it gets the same answer this minute, and the
    /// timeline says the reason unless it said it last.
    fn defer(
        &mut self,
        index: usize,
        priority: Priority,
        until: Timestamp,
        reason: String,
        now: i64,
    ) {
        let stream = &self.scenario.streams[index];
        let (queue, retry_at) = &mut self.queues[index];
        self.out.deferrals += queue.len() as u64;
        for message in queue.iter_mut().filter(|m| !m.deferred) {
            message.deferred = true;
            *self
                .out
                .deferred
                .entry((stream.name.clone(), priority))
                .or_insert(0) += 1;
        }
        *retry_at = until.as_millis();
        if self.told.get(&stream.name) != Some(&reason) {
            self.told.insert(stream.name.clone(), reason.clone());
            self.out.timeline.push(format!(
                "{} {}: deferred ({reason})",
                clock_text(now),
                stream.name
            ));
        }
    }

    /// The bounces that arrive this minute, into `batch`.
    pub(super) fn feedback(&mut self, now: i64, batch: &mut Vec<Inbound>) {
        let (arriving, later): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|f| f.arrives <= now);
        self.in_flight = later;
        for bounce in &arriving {
            batch.push(notification(
                hard_bounce(bounce.id, bounce.arrives),
                bounce.id,
                bounce.account,
                &self.scenario.streams[bounce.stream].name,
                bounce.sent,
            ));
        }
    }

    /// Ingests the minute's batch, runs the scheduled review when it is due, and tells every
    /// transition either applied.
    pub(super) async fn ingest(
        &mut self,
        minute: i64,
        now: i64,
        batch: Vec<Inbound>,
    ) -> Result<(), SimulateError> {
        let report = Ingestor::of(self.deps)
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
            let review = Guard::of(self.deps)
                .review_all(Timestamp::from_millis(now))
                .await
                .map_err(|e| SimulateError::Step(format!("scheduled review: {e}")))?;
            applied.extend(review.applied);
        }
        for applied in &applied {
            tell(&applied.alert, minute, &mut self.guard_acted, &mut self.out);
        }
        Ok(())
    }

    /// The rates as SES would see them once the feedback in flight lands, every 15 minutes
    /// kept for the picture, and the backup's busiest 24 hours.
    pub(super) async fn measure(&mut self, minute: i64, now: i64) -> Result<(), SimulateError> {
        let (first, last) = self.window.buckets_ending(Timestamp::from_millis(now));
        let mut seen = [None; 2];
        for (slot, account) in ["primary", "backup"].into_iter().enumerate() {
            let read = self.deps.store.window(account, first, last).await?;
            let totals = WindowTotals::sum(&read.buckets, first, last);
            seen[slot] = self.judge(slot, account, minute, first, &totals);
        }
        if minute % 15 == 0 {
            self.out.rates.push((minute, seen[0], seen[1]));
        }
        while self
            .backup_sends
            .front()
            .is_some_and(|t| *t <= now - 1440 * MINUTE)
        {
            self.backup_sends.pop_front();
        }
        self.out.backup_peak_24h = self.out.backup_peak_24h.max(self.backup_sends.len() as u64);
        Ok(())
    }

    /// One account's window since `first`: whether the guard can see it over the line, and its
    /// rate counting the bounces in flight, kept as a peak at the minimum volume. Returns that
    /// rate, or `None` below the minimum volume.
    fn judge(
        &mut self,
        slot: usize,
        account: &'static str,
        minute: i64,
        first: Timestamp,
        totals: &WindowTotals,
    ) -> Option<f64> {
        let known = &totals.total;
        self.over_the_line[slot] =
            known.sends >= self.min_volume && known.bounce_rate() >= self.critical;
        let pending = self
            .in_flight
            .iter()
            .filter(|f| f.account == account && f.sent >= first.as_millis())
            .count() as u64;
        let bad = known.hard_bounces + pending;
        let rate = if known.sends > 0 {
            bad as f64 / known.sends as f64
        } else {
            0.0
        };
        if account == "backup" && rate > self.out.backup_any_volume.0 {
            self.out.backup_any_volume = (rate, known.sends, bad);
        }
        if known.sends < self.min_volume {
            return None;
        }
        let peak = self.out.peak.entry(account).or_insert((0.0, 0));
        if rate > peak.0 {
            *peak = (rate, minute);
        }
        for (stream, counts) in &totals.streams {
            if counts.sends >= self.min_volume {
                let peak = self
                    .out
                    .peak_stream
                    .entry((account, stream.clone()))
                    .or_insert(0.0);
                *peak = peak.max(counts.bounce_rate());
            }
        }
        Some(rate)
    }
}

/// How often the scheduled review runs, in minutes (the template's `ReviewMinutes` default).
const REVIEW_MINUTES: i64 = 5;
