//! Replays the incident sesguard exists for, on the embedded store with a fake clock.
//!
//! 100,800 messages a day for three days: half `verification` mail to unchecked sign-up
//! addresses whose bad share climbs from 3 % to 20 % over the first day and stays there, half
//! `transactional` mail to known addresses (0.5 % bad). Both streams list the primary
//! (5,000,000/day) and then the backup (50,000/day). Every send is an SES `Send` event and every
//! bad address a hard bounce arriving 2 to 10 minutes later (seeded), all through the real ingest
//! path and guard; every message is routed through the real routing snapshot, and what cannot
//! go is deferred and retried, never dropped.
//!
//! With the guard, no account's windowed bounce rate ever reaches 10 %, counting bounces still
//! in flight; without it (thresholds out of reach) the primary crosses 10 %. With the guard
//! the replay has a second act: on day 3 the operator resumes verification after cleaning the
//! list, probation brings it back step by step, and a relapse during probation is caught.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sesguard::adapters::sqlite::SqliteStore;
use sesguard::app::admin::Admin;
use sesguard::app::ingest::Inbound;
use sesguard::app::send::snapshot::Snapshot;
use sesguard::config::Config;
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::feedback::notification::{
    Bounce, BounceType, BouncedRecipient, Event, Format, Mail, Notification,
};
use sesguard::domain::reputation::counters::WindowTotals;
use sesguard::domain::reputation::guard::Alert;
use sesguard::domain::sending::routing::{self, Priority, Route};
use sesguard::domain::sns::unwrap::Content;
use sesguard::ports::{AlertError, AlertSink, Clock};

const MINUTE: i64 = 60_000;
const DAYS: i64 = 3;
const PER_MINUTE: usize = 35; // per stream: 70 a minute, 100,800 a day
const SES_PAUSE: f64 = 0.10;
const BACKUP_QUOTA: u64 = 50_000;
const START: i64 = 1_795_132_800_000; // 2026-11-20T00:00:00Z

fn config(guarded: bool) -> Config {
    let thresholds = if guarded {
        String::new()
    } else {
        // Out of reach: the guard never acts.
        "[guard.thresholds]\nbounce_warn = 0.97\nbounce_pause = 0.98\nbounce_critical = 0.99\n\
         complaint_warn = 0.97\ncomplaint_pause = 0.98\ncomplaint_critical = 0.99\n"
            .to_owned()
    };
    let text = format!(
        "{thresholds}
[[accounts]]
name = \"primary\"
region = \"us-east-1\"
account_id = \"111111111111\"
daily_quota = 5000000
max_send_rate = 500

[[accounts]]
name = \"backup\"
region = \"eu-west-1\"
account_id = \"222222222222\"
daily_quota = {BACKUP_QUOTA}
max_send_rate = 14

[[streams]]
name = \"verification\"
accounts = [\"primary\", \"backup\"]
priority = \"normal\"

[[streams]]
name = \"transactional\"
accounts = [\"primary\", \"backup\"]
priority = \"critical\"
"
    );
    Config::parse(&text, "incident").expect("incident configuration")
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

struct SimClock(Mutex<Timestamp>);

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

#[derive(Default, Clone)]
struct Alerts(Arc<Mutex<Vec<Alert>>>);

#[async_trait]
impl AlertSink for Alerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }

    async fn notice(&self, _subject: &str, _body: &serde_json::Value) -> Result<(), AlertError> {
        Ok(())
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
    stream: &'static str,
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

/// Act two, with the guard: at the start of day 3 the operator has cleaned the sign-up list
/// and resumes verification on the primary; 45 minutes later, still on probation, a new bad
/// source of sign-ups relapses.
const CLEANED: i64 = START + 2 * 1440 * MINUTE;
const RELAPSE: i64 = CLEANED + 45 * MINUTE;

/// The bad share of a stream's addresses at a time.
fn bad_share(stream: &str, at: i64, second_act: bool) -> f64 {
    match stream {
        "verification" if second_act && (CLEANED..RELAPSE).contains(&at) => 0.01,
        "verification" => 0.03 + 0.17 * ((at - START) as f64 / (1440 * MINUTE) as f64).min(1.0),
        _ => 0.005,
    }
}

#[derive(Default, Debug)]
struct Outcome {
    generated: u64,
    sent: BTreeMap<(&'static str, &'static str), u64>,
    /// Distinct messages deferred at least once, by stream and priority.
    deferred: BTreeMap<(&'static str, Priority), u64>,
    /// Deferral decisions (a message retried and deferred again counts each time).
    deferrals: u64,
    longest_wait: BTreeMap<&'static str, i64>,
    pending_at_end: u64,
    /// Highest windowed bounce rate per account, counting bounces in flight, at or above the
    /// minimum volume, with the minute it happened.
    peak: BTreeMap<&'static str, (f64, i64)>,
    peak_stream: BTreeMap<(&'static str, String), f64>,
    backup_peak_24h: u64,
    /// The backup's highest windowed rate at any volume (counting bounces in flight), with
    /// its sends then: below the minimum volume rates are not judged, by SES or the guard.
    backup_any_volume: (f64, u64, u64),
    alerts: Vec<Alert>,
    timeline: Vec<String>,
}

async fn replay(guarded: bool) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("incident.db")).unwrap());
    let clock = Arc::new(SimClock(Mutex::new(Timestamp::from_millis(START))));
    let alerts = Alerts::default();
    let config = config(guarded);
    let min_volume = config.guard.thresholds.min_volume;
    let window = config.ingest_policy().window;
    let deps = sesguard::wiring::local(config.clone(), store, clock.clone())
        .with_alerts(Arc::new(alerts.clone()));

    let mut rng = Rng(0x5e5_6a4d);
    let mut next_id = 0_u64;
    let mut queues: BTreeMap<&'static str, (VecDeque<Pending>, i64)> = [
        ("verification", (VecDeque::new(), 0)),
        ("transactional", (VecDeque::new(), 0)),
    ]
    .into();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut backup_sends: VecDeque<i64> = VecDeque::new();
    let mut out = Outcome::default();

    for minute in 0..DAYS * 1440 {
        let now = START + minute * MINUTE;
        *clock.0.lock().unwrap() = Timestamp::from_millis(now);
        for (queue, _) in queues.values_mut() {
            for _ in 0..PER_MINUTE {
                next_id += 1;
                queue.push_back(Pending {
                    id: next_id,
                    created: now,
                    deferred: false,
                });
                out.generated += 1;
            }
        }

        if guarded && now == CLEANED {
            let resumed = Admin::new(&deps, "ana")
                .resume(
                    "primary",
                    Some("verification".into()),
                    true,
                    "sign-up list cleaned",
                    Timestamp::from_millis(now),
                )
                .await
                .unwrap();
            out.timeline.push(format!(
                "{} primary stream verification: {} -> {} (operator: {}) at {:.0} % of its traffic",
                clock_text(now),
                resumed.from,
                resumed.to,
                resumed.note.unwrap_or_default(),
                resumed.share.unwrap_or(1.0) * 100.0
            ));
        }

        // Route what is due, oldest first, against one snapshot per minute.
        let mut snapshot = Snapshot::load(
            deps.store.as_ref(),
            deps.ses.as_ref(),
            &config,
            Timestamp::from_millis(now),
        )
        .await
        .unwrap();
        let mut batch = Vec::new();
        for (stream, (queue, retry_at)) in queues.iter_mut() {
            if now < *retry_at {
                continue;
            }
            let priority = config.stream(stream).unwrap().priority;
            while let Some(message) = queue.front() {
                match snapshot
                    .route(stream, priority, routing::draw(&format!("m{}", message.id)))
                    .unwrap()
                {
                    Route::Send { account } => {
                        let account: &'static str = if account == "primary" {
                            "primary"
                        } else {
                            "backup"
                        };
                        snapshot.record_send(account, stream, 1);
                        let wait = out.longest_wait.entry(stream).or_insert(0);
                        *wait = (*wait).max(now - message.created);
                        *out.sent.entry((account, stream)).or_insert(0) += 1;
                        if account == "backup" {
                            backup_sends.push_back(now);
                        }
                        batch.push(notification(Event::Send, message.id, account, stream, now));
                        if rng.unit() < bad_share(stream, now, guarded) {
                            let delay = 2 + (rng.next() % 9) as i64;
                            in_flight.push(InFlight {
                                arrives: now + delay * MINUTE,
                                sent: now,
                                account,
                                stream,
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
                            *out.deferred.entry((stream, priority)).or_insert(0) += 1;
                        }
                        *retry_at = until.as_millis();
                        if out.timeline.last().is_none_or(|l| !l.contains(&reason)) {
                            out.timeline
                                .push(format!("{} {stream}: deferred ({reason})", clock_text(now)));
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
                bounce.stream,
                bounce.sent,
            ));
        }
        let report = deps.ingest(batch, Timestamp::from_millis(now)).await;
        assert_eq!(report.summary().failed, 0, "minute {minute}");
        for applied in &report.transitions {
            let c = &applied.alert.change;
            out.timeline.push(format!(
                "{} {}{}: {} -> {}{} ({:?}) bounce rate {:.2} % over {} sends; {}",
                clock_text(now),
                c.account,
                c.stream
                    .as_ref()
                    .map(|s| format!(" stream {s}"))
                    .unwrap_or_default(),
                c.from,
                c.to,
                c.share
                    .map(|s| format!(" {:.0} %", s * 100.0))
                    .unwrap_or_default(),
                c.cause,
                c.bounce_rate * 100.0,
                c.window_sends,
                applied.alert.traffic
            ));
        }

        // The invariant, as SES would see it once the feedback in flight lands.
        let (first, last) = window.buckets_ending(Timestamp::from_millis(now));
        for account in ["primary", "backup"] {
            let read = deps.store.window(account, first, last).await.unwrap();
            let totals = WindowTotals::sum(&read.buckets, first, last);
            let pending = in_flight
                .iter()
                .filter(|f| f.account == account && f.sent >= first.as_millis())
                .count() as u64;
            let bad = totals.total.hard_bounces + pending;
            if account == "backup" && totals.total.sends > 0 {
                let rate = bad as f64 / totals.total.sends as f64;
                if rate > out.backup_any_volume.0 {
                    out.backup_any_volume = (rate, totals.total.sends, bad);
                }
            }
            if totals.total.sends >= min_volume {
                let rate = (totals.total.hard_bounces + pending) as f64 / totals.total.sends as f64;
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
        while backup_sends
            .front()
            .is_some_and(|t| *t <= now - 1440 * MINUTE)
        {
            backup_sends.pop_front();
        }
        out.backup_peak_24h = out.backup_peak_24h.max(backup_sends.len() as u64);
    }
    out.pending_at_end = queues.values().map(|(q, _)| q.len() as u64).sum();
    out.alerts = alerts.0.lock().unwrap().clone();
    out
}

fn clock_text(at: i64) -> String {
    let minutes = (at - START) / MINUTE;
    format!(
        "day {} {:02}:{:02}",
        minutes / 1440 + 1,
        (minutes % 1440) / 60,
        minutes % 60
    )
}

fn print(title: &str, out: &Outcome) {
    println!("\n== {title}");
    for line in &out.timeline {
        println!("  {line}");
    }
    for (account, (rate, minute)) in &out.peak {
        println!(
            "  peak {account}: {:.2} % (counting bounces in flight) at {}",
            rate * 100.0,
            clock_text(START + minute * MINUTE)
        );
    }
    for ((account, stream), rate) in &out.peak_stream {
        println!("  peak {account} / {stream}: {:.2} %", rate * 100.0);
    }
    for ((account, stream), n) in &out.sent {
        println!("  sent {account} / {stream}: {n}");
    }
    for ((stream, priority), n) in &out.deferred {
        println!("  deferred {stream} ({}): {n} messages", priority.as_str());
    }
    println!("  deferral decisions (retries included): {}", out.deferrals);
    let (rate, sends, bad) = out.backup_any_volume;
    if sends > 0 {
        println!(
            "  backup at any volume: at most {bad} bounces (in flight included) over {sends} sends ({:.1} %), below the {} sends at which rates are judged",
            rate * 100.0,
            200
        );
    }
    for (stream, wait) in &out.longest_wait {
        println!("  longest wait {stream}: {} min", wait / MINUTE);
    }
    println!(
        "  generated {}, sent {}, still deferred {}, backup peak 24 h sends {}",
        out.generated,
        out.sent.values().sum::<u64>(),
        out.pending_at_end,
        out.backup_peak_24h
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_keeps_every_account_under_the_ses_thresholds_and_loses_no_mail() {
    let guarded = replay(true).await;
    print("with the guard", &guarded);

    // No account ever reaches 10 %, counting bounces still in flight.
    for (account, (rate, minute)) in &guarded.peak {
        assert!(
            *rate < SES_PAUSE,
            "{account} reached {:.2} % at minute {minute}",
            rate * 100.0
        );
    }
    // Act one: the verification stream is quarantined on the primary at its threshold, with
    // one alert, and fails over.
    let verification: Vec<&Alert> = guarded
        .alerts
        .iter()
        .filter(|a| {
            a.change.account == "primary" && a.change.stream.as_deref() == Some("verification")
        })
        .collect();
    let quarantine = &verification[0].change;
    assert_eq!(quarantine.to, "quarantined");
    assert!(
        quarantine.bounce_rate >= 0.08,
        "at its threshold: {}",
        quarantine.bounce_rate
    );
    assert_eq!(verification[0].traffic, "verification fails over to backup");
    // Act two: the operator's resume puts it on probation, a step is passed on clean mail,
    // and the relapse during probation sends it back to quarantine.
    let steps: Vec<(&str, &str, Option<f64>)> = verification[1..]
        .iter()
        .map(|a| (a.change.from.as_str(), a.change.to.as_str(), a.change.share))
        .collect();
    assert_eq!(
        steps,
        [
            ("quarantined", "probation", Some(0.1)),
            ("probation", "probation", Some(0.25)),
            ("probation", "quarantined", None),
        ]
    );
    assert_eq!(verification[1].change.actor, "operator:ana");
    let relapse = verification[3].change.at.as_millis();
    assert!(
        (RELAPSE..RELAPSE + 30 * MINUTE).contains(&relapse),
        "caught within half an hour of the relapse"
    );
    // Caught below the critical level: the primary never went past 9 %.
    assert!(guarded.peak["primary"].0 < 0.09, "{:?}", guarded.peak);
    assert!(
        guarded
            .sent
            .get(&("backup", "verification"))
            .is_some_and(|n| *n > 0),
        "verification went to the backup"
    );
    assert!(
        !guarded
            .alerts
            .iter()
            .any(|a| a.change.account == "primary" && a.change.to == "paused"),
        "the primary never paused"
    );
    // Transactional mail keeps flowing: never deferred.
    assert_eq!(guarded.longest_wait["transactional"], 0);
    assert!(
        !guarded
            .deferred
            .keys()
            .any(|(stream, _)| *stream == "transactional")
    );
    assert_eq!(guarded.sent.get(&("backup", "transactional")), None);
    // The backup never exceeds its daily quota.
    assert!(guarded.backup_peak_24h <= BACKUP_QUOTA);
    // What no account could take is deferred and counted, never dropped.
    let sent: u64 = guarded.sent.values().sum();
    assert_eq!(sent + guarded.pending_at_end, guarded.generated);
    assert!(
        guarded
            .deferred
            .get(&("verification", Priority::Normal))
            .is_some_and(|n| *n > 0)
    );
    // The backup took the risky stream only within its bounce budget: at most the warn level
    // of the minimum volume (4 % of 200 = 8 expected bounces), plus the luck of the draw.
    let (_, _, backup_bad) = guarded.backup_any_volume;
    assert!(
        backup_bad <= 16,
        "the backup inherited {backup_bad} bounces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_guard_the_primary_crosses_the_ses_pause_threshold() {
    let unguarded = replay(false).await;
    print("without the guard", &unguarded);
    let (rate, minute) = unguarded.peak["primary"];
    assert!(
        rate >= SES_PAUSE,
        "peak {:.2} % at minute {minute}",
        rate * 100.0
    );
    assert!(unguarded.alerts.is_empty());
    assert_eq!(
        unguarded.pending_at_end, 0,
        "nothing deferred: everything went to the primary"
    );
}
