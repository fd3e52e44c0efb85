//! The ingest processes: instances storing the feedback the driver passes on, ten records at
//! a time, as the ingest function does — a record that fails goes back, five receives at most.

use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sesguard::app::ingest::Ingestor;

use crate::wire::RequestCounter;
use crate::worker::*;
use crate::{Args, MAX_RECEIVES};

/// A feedback record waiting in the "queue": its body, when it may be received, and how
/// often it was.
pub(crate) struct Record {
    pub(crate) body: String,
    pub(crate) ready: Instant,
    pub(crate) receives: u32,
}

pub(crate) async fn ingest_process(args: &Args) -> anyhow::Result<()> {
    let log = RequestCounter::default();
    let queue = Arc::new(Mutex::new(std::collections::VecDeque::<Record>::new()));
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let delay = Duration::from_millis(args.feedback_delay_ms);
    let reader = {
        let (queue, closed) = (queue.clone(), closed.clone());
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                queue.lock().unwrap().push_back(Record {
                    body: line,
                    ready: Instant::now() + delay,
                    receives: 0,
                });
            }
            closed.store(true, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.instances {
        let deps = context(args, &log)?;
        let (queue, closed) = (queue.clone(), closed.clone());
        tasks.push(tokio::spawn(async move {
            let mut report = Report::default();
            loop {
                let batch: Vec<Record> = {
                    let mut queue = queue.lock().unwrap();
                    let now = Instant::now();
                    let ready = queue.iter().take(10).take_while(|r| r.ready <= now).count();
                    queue.drain(..ready).collect()
                };
                if batch.is_empty() {
                    if closed.load(Ordering::SeqCst) && queue.lock().unwrap().is_empty() {
                        return report;
                    }
                    // The event source mapping's batching window, shortened.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let bodies: Vec<Value> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        json!({"messageId": format!("r{i}"), "receiptHandle": "h",
                               "body": r.body, "eventSource": "aws:sqs"})
                    })
                    .collect();
                let (_, records) =
                    sesguard::lambda::ingest::decode(json!({ "Records": bodies }), "load");
                let outcome = Ingestor::of(&deps).ingest(records, deps.clock.now()).await;
                let mut back = Vec::new();
                for (id, outcome) in outcome.records {
                    *report
                        .outcomes
                        .entry(outcome.name().to_owned())
                        .or_default() += 1;
                    let index: usize = id.trim_start_matches('r').parse().unwrap_or(0);
                    if outcome.name() == "failed" {
                        back.push(index);
                    } else {
                        report.done += 1;
                    }
                }
                let mut batch: Vec<Option<Record>> = batch.into_iter().map(Some).collect();
                for index in back {
                    let Some(mut record) = batch.get_mut(index).and_then(Option::take) else {
                        continue;
                    };
                    record.receives += 1;
                    if record.receives >= MAX_RECEIVES {
                        report.dead_lettered += 1;
                    } else {
                        report.retried += 1;
                        // Back after a visibility timeout (shortened).
                        record.ready = Instant::now() + Duration::from_secs(1);
                        queue.lock().unwrap().push_back(record);
                    }
                }
            }
        }));
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
        for (name, n) in part.outcomes {
            *report.outcomes.entry(name).or_default() += n;
        }
    }
    let _ = reader.join();
    finish(report, &log, started)
}
