//! The sender processes: instances sending batches of ten through sesguard's gate over the
//! store, to an SES that accepts every message and answers with its events.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sesguard::app::Context;
use sesguard::app::send::{Queued, Sender, SenderMemory};
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::sending::request::{OutgoingMail, SendRequest};
use sesguard::ports::{MailTransport, TransportError};

use crate::ses_event::SesEvent;
use crate::wire::RequestCounter;
use crate::worker::{Report, context, finish};

use crate::{Args, BOUNCE_EVERY};

/// SES as the load sees it: accepts every message and writes its events, one JSON line each,
/// to stdout for the driver to pass on.
pub(crate) struct LoadSes {
    pub(crate) next: AtomicU64,
    /// How long SES takes to accept a message (the median).
    pub(crate) latency: Duration,
    /// When each send left (ms since the epoch).
    pub(crate) sends_at: std::sync::Mutex<Vec<i64>>,
    pub(crate) bounced: AtomicU64,
    pub(crate) process: usize,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<String>,
}

#[async_trait]
impl MailTransport for LoadSes {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError> {
        let left = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        self.sends_at.lock().unwrap().push(left);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // 0.75 to 1.25 times the median, spread evenly over the sends.
        tokio::time::sleep(self.latency.mul_f64(0.75 + (n * 37 % 51) as f64 / 100.0)).await;
        let id = format!("load-{}-{n}", self.process);
        let at = Timestamp::from_millis(left).to_string();
        let to = mail.to[0].as_str().to_owned();
        let about = |event: SesEvent| {
            event
                .to([to.as_str()])
                .source(&mail.from)
                .tags(&mail.tags)
                .sent_at(&at)
                .at(&at)
        };
        let outcome = if to.starts_with("bounce") {
            self.bounced.fetch_add(1, Ordering::Relaxed);
            about(SesEvent::bounce(&id))
                .feedback_id(&format!("{id}-bounce"))
                .status("5.1.1")
        } else {
            about(SesEvent::delivery(&id))
        };
        for event in [about(SesEvent::send(&id)), outcome] {
            let _ = self.events.send(event.published().to_string());
        }
        Ok(id)
    }
}

/// Writes the events SES answered with to stdout, a line each, for the driver to pass on.
fn write_events(
    mut lines: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while let Some(line) = lines.blocking_recv() {
            writeln!(out, "{line}")?;
            if lines.is_empty() {
                out.flush()?;
            }
        }
        out.flush()
    })
}

/// The next ten send requests of process `process`, numbered from `next`: one recipient in
/// [`BOUNCE_EVERY`] bounces.
fn batch(process: usize, next: &AtomicU64) -> Vec<Queued> {
    (0..10)
        .map(|_| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let to = if n % BOUNCE_EVERY == 7 {
                format!("bounce-{process}-{n}@example.net")
            } else {
                format!("user-{process}-{n}@example.com")
            };
            let json = format!(
                r#"{{"stream":"transactional","to":["{to}"],"subject":"Receipt","text":"Thanks","idempotency_key":"load-{process}-{n}"}}"#
            );
            Queued::new(
                format!("m-{process}-{n}"),
                SendRequest::parse(&json).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// When one sender instance sends: a batch every `interval`, the first after its `spread`
/// share of one, until `deadline`.
struct Cadence {
    interval: Duration,
    spread: f64,
    deadline: Instant,
}

/// One sender instance, with its own context as each Lambda instance builds its own (its own
/// store client, with what it last saw of the rate parts, window cache and memory): the
/// decisions it made, by name.
async fn instance(
    deps: Context,
    ses: Arc<LoadSes>,
    next: Arc<AtomicU64>,
    cadence: Cadence,
) -> (BTreeMap<String, u64>, Vec<f64>, u64) {
    let memory = SenderMemory::default();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut durations = Vec::new();
    let mut emf_bytes = 0;
    let mut due = Instant::now() + cadence.interval.mul_f64(cadence.spread);
    while Instant::now() < cadence.deadline {
        tokio::time::sleep_until(due.into()).await;
        due += cadence.interval;
        let sender = Sender::of(&deps, &memory).with_transport(ses.as_ref());
        let started = Instant::now();
        let judged = sender
            .send(batch(ses.process, &next), deps.clock.now())
            .await;
        durations.push(started.elapsed().as_secs_f64() * 1000.0);
        match judged {
            Ok(judged) => {
                let lines = sesguard::lambda::sender::metric_lines(deps.clock.now(), &judged);
                emf_bytes += crate::worker::bytes_of(&lines);
                for j in judged {
                    *outcomes.entry(j.decision.name().to_owned()).or_default() += 1;
                }
            }
            Err(error) => {
                *outcomes
                    .entry(format!("batch failed: {error}"))
                    .or_default() += 10
            }
        }
    }
    (outcomes, durations, emf_bytes)
}

/// A sender process: `--instances` instances sending their share of `--rate` for `--seconds`.
pub(crate) async fn sender_process(args: &Args) -> anyhow::Result<()> {
    let log = RequestCounter::default();
    let (events, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let ses = Arc::new(LoadSes {
        next: AtomicU64::new(0),
        latency: Duration::from_millis(args.ses_latency_ms),
        sends_at: std::sync::Mutex::new(Vec::new()),
        bounced: AtomicU64::new(0),
        process: args.id,
        events,
    });
    let writer = write_events(lines);
    let started = Instant::now();
    // Each instance sends a batch of ten every `interval`: its share of the rate.
    let per_instance = args.rate as f64 / (args.senders * args.instances) as f64;
    let interval = Duration::from_secs_f64(10.0 / per_instance.max(0.001));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for n in 0..args.instances {
        let cadence = Cadence {
            interval,
            spread: n as f64 / args.instances as f64,
            deadline: started + Duration::from_secs(args.seconds),
        };
        let deps = context(args, &log)?;
        tasks.push(tokio::spawn(instance(
            deps,
            ses.clone(),
            next.clone(),
            cadence,
        )));
    }
    let mut report = Report {
        role: "sender".into(),
        ..Report::default()
    };
    for task in tasks {
        let (outcomes, durations, emf_bytes) = task.await?;
        report.emf_bytes += emf_bytes;
        for (name, n) in outcomes {
            *report.outcomes.entry(name).or_default() += n;
        }
        report.batch_ms.extend(durations);
    }
    report.sends_at = std::mem::take(&mut *ses.sends_at.lock().unwrap());
    report.done = ses.next.load(Ordering::Relaxed);
    report.bounced = ses.bounced.load(Ordering::Relaxed);
    drop(ses);
    writer.await??;
    finish(report, &log, started)
}
