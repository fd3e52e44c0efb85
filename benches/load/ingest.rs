//! The ingest processes: instances storing the feedback the driver passes on, ten records at
//! a time, as the ingest function does — a record that fails goes back, five receives at most.

use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;

use crate::wire::RequestCounter;
use crate::worker::{Report, context, finish};

use crate::{Args, MAX_RECEIVES};

/// A feedback record waiting in the "queue": its body, when it may be received, and how
/// often it was.
pub(crate) struct Record {
    pub(crate) body: String,
    pub(crate) ready: Instant,
    pub(crate) receives: u32,
}

/// The "queue" of one ingest process: records waiting, and whether the driver closed it.
#[derive(Clone, Default)]
struct Queue {
    records: Arc<Mutex<std::collections::VecDeque<Record>>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Queue {
    /// Fills the queue from stdin, one record a line, each ready after `delay`; closes it at
    /// the end of the input.
    fn fill_from_stdin(&self, delay: Duration) -> std::thread::JoinHandle<()> {
        let queue = self.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                queue.records.lock().unwrap().push_back(Record {
                    body: line,
                    ready: Instant::now() + delay,
                    receives: 0,
                });
            }
            queue.closed.store(true, Ordering::SeqCst);
        })
    }

    /// Up to ten records ready now, in order.
    fn receive(&self) -> Vec<Record> {
        let mut records = self.records.lock().unwrap();
        let now = Instant::now();
        let ready = records
            .iter()
            .take(10)
            .take_while(|r| r.ready <= now)
            .count();
        records.drain(..ready).collect()
    }

    /// Whether the driver closed the queue and nothing is left in it.
    fn done(&self) -> bool {
        self.closed.load(Ordering::SeqCst) && self.records.lock().unwrap().is_empty()
    }

    /// Puts back the records of `batch` at `failed` (their index): each returns after a
    /// visibility timeout (shortened), or counts as dead-lettered after its last receive.
    fn put_back(&self, batch: Vec<Record>, failed: Vec<usize>, report: &mut Report) {
        let mut batch: Vec<Option<Record>> = batch.into_iter().map(Some).collect();
        for index in failed {
            let Some(mut record) = batch.get_mut(index).and_then(Option::take) else {
                continue;
            };
            record.receives += 1;
            if record.receives >= MAX_RECEIVES {
                report.dead_lettered += 1;
            } else {
                report.retried += 1;
                record.ready = Instant::now() + Duration::from_secs(1);
                self.records.lock().unwrap().push_back(record);
            }
        }
    }
}

/// Stores one batch as the ingest function does: the indexes of the records that failed.
async fn store(deps: &Context, batch: &[Record], report: &mut Report) -> Vec<usize> {
    let bodies: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"messageId": format!("r{i}"), "receiptHandle": "h",
                   "body": r.body, "eventSource": "aws:sqs"})
        })
        .collect();
    let (_, records) = sesguard::lambda::ingest::decode(json!({ "Records": bodies }), "load");
    let outcome = Ingestor::of(deps).ingest(records, deps.clock.now()).await;
    // What the function writes besides: a log line per record, the EMF lines.
    outcome.log();
    let lines = sesguard::lambda::ingest::metric_lines(deps.clock.now(), &outcome);
    report.emf_bytes += crate::worker::bytes_of(&lines);
    let mut failed = Vec::new();
    for (id, outcome) in outcome.records {
        *report
            .outcomes
            .entry(outcome.name().to_owned())
            .or_default() += 1;
        if outcome.name() == "failed" {
            failed.push(id.trim_start_matches('r').parse().unwrap_or(0));
        } else {
            report.done += 1;
        }
    }
    failed
}

/// One ingest instance: batches from the queue until it is done.
async fn instance(deps: Context, queue: Queue) -> Report {
    let mut report = Report::default();
    loop {
        let batch = queue.receive();
        if batch.is_empty() {
            if queue.done() {
                return report;
            }
            // The event source mapping's batching window, shortened.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let started = Instant::now();
        let failed = store(&deps, &batch, &mut report).await;
        report
            .batch_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        queue.put_back(batch, failed, &mut report);
    }
}

/// An ingest process: `--instances` instances over one queue fed from stdin.
pub(crate) async fn ingest_process(args: &Args) -> anyhow::Result<()> {
    let log = RequestCounter::default();
    let queue = Queue::default();
    let reader = queue.fill_from_stdin(Duration::from_millis(args.feedback_delay_ms));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.instances {
        tasks.push(tokio::spawn(instance(context(args, &log)?, queue.clone())));
    }
    let mut report = Report {
        role: "ingest".into(),
        ..Report::default()
    };
    for task in tasks {
        let part = task.await?;
        report.done += part.done;
        report.retried += part.retried;
        report.dead_lettered += part.dead_lettered;
        report.batch_ms.extend(part.batch_ms);
        report.emf_bytes += part.emf_bytes;
        for (name, n) in part.outcomes {
            *report.outcomes.entry(name).or_default() += n;
        }
    }
    let _ = reader.join();
    finish(report, &log, started)
}
