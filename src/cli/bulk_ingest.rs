//! `sesguard ingest`: files and standard input recorded in chunks, one store transaction per
//! chunk (each notification still claimed once). A reader task reads the inputs one at a time
//! and, under `--verify`, verifies every SNS envelope before it becomes a record, while the
//! store records the chunk before: memory stays bounded by the few chunks in between, however
//! many files there are. Failures are reported by name on stderr; every record's outcome is
//! logged only with `--log-records`.

use std::io::BufRead as _;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::*;
use crate::app::ingest::Ingestor;
use crate::app::ingest::{Outcome, Summary};
use crate::app::webhook::{Answer, Verifier};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::Envelope;
use crate::domain::sns::unwrap::open_sns;

/// How `sesguard ingest` reads and records.
pub(super) struct Options {
    /// Verify every envelope first.
    pub verify: bool,
    /// A certificate to trust for every SigningCertURL.
    pub cert: Option<PathBuf>,
    /// Topics allowed besides the configured ones.
    pub topics: Vec<String>,
    /// Records per store transaction.
    pub chunk: usize,
    /// Log every record's outcome.
    pub log_records: bool,
}

/// Chunks waiting between the reader and the store.
const QUEUED_CHUNKS: usize = 4;

/// Records every input; the exit code says whether any record failed.
pub(super) async fn ingest(
    wiring: &Wiring,
    deps: &Context,
    files: &[String],
    options: Options,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let verifier = if options.verify {
        let (source, _) = wiring.certificate_source(options.cert.as_deref())?;
        let settings = deps.config.webhook.clone();
        let topics = settings
            .topics
            .iter()
            .chain(&options.topics)
            .cloned()
            .collect();
        Some(Arc::new(Verifier {
            certificates: Arc::new(Certificates::new(source)),
            topics,
            settings,
        }))
    } else {
        None
    };
    let progress = if files.iter().any(|f| f == "-") {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::new(files.len() as u64)
    }
    .with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos} records {per_sec} {msg}")
            .expect("a valid template"),
    );
    let (chunks, mut received) = mpsc::channel(QUEUED_CHUNKS);
    let reader = Reader {
        verifier,
        chunk: options.chunk,
        now: deps.clock.now(),
        chunks,
        pending: Vec::with_capacity(options.chunk),
    };
    let reading = tokio::spawn(reader.read_all(files.to_vec()));
    let mut summary = Summary::default();
    while let Some(chunk) = received.recv().await {
        let records = chunk.len() as u64;
        let report = Ingestor::of(deps).ingest(chunk, deps.clock.now()).await;
        if options.log_records {
            report.log();
        }
        for (id, outcome) in &report.records {
            if let Outcome::Malformed(reason) | Outcome::Failed(reason) = outcome {
                progress.suspend(|| eprintln!("failed {id}: {reason}"));
            }
        }
        summary.add(&report.summary());
        progress.inc(records);
    }
    progress.finish_and_clear();
    reading.await.context("the reader stopped")??;
    if json {
        say!("{}", serde_json::to_string(&summary)?);
    } else {
        say!(
            "processed {}  duplicates {}  suppressed {}  ignored {}  failed {}",
            summary.processed,
            summary.duplicates,
            summary.suppressed,
            summary.ignored,
            summary.failed
        );
    }
    Ok(if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The reader task: inputs in, chunks of records out.
struct Reader {
    verifier: Option<Arc<Verifier>>,
    chunk: usize,
    now: Timestamp,
    chunks: mpsc::Sender<Vec<Inbound>>,
    pending: Vec<Inbound>,
}

impl Reader {
    async fn read_all(mut self, files: Vec<String>) -> anyhow::Result<()> {
        for file in files {
            if file == "-" {
                self.read_stdin().await?;
            } else {
                let bytes = std::fs::read(&file).with_context(|| format!("reading {file}"))?;
                self.document(&bytes, &file).await?;
            }
        }
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.chunks.send(last).await.ok();
        }
        Ok(())
    }

    /// Standard input: JSON lines, one envelope (or any accepted body) per line; or, when its
    /// first line is not a JSON document by itself, the whole input as one document.
    async fn read_stdin(&mut self) -> anyhow::Result<()> {
        let lines = std::io::BufReader::new(std::io::stdin()).lines();
        let mut number = 0;
        let mut whole: Option<String> = None;
        for line in lines {
            let line = line.context("reading stdin")?;
            number += 1;
            if let Some(text) = &mut whole {
                text.push('\n');
                text.push_str(&line);
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            if number == 1 && serde_json::from_str::<serde::de::IgnoredAny>(&line).is_err() {
                whole = Some(line);
                continue;
            }
            self.document(line.as_bytes(), &format!("stdin:{number}"))
                .await?;
        }
        if let Some(text) = whole {
            self.document(text.as_bytes(), "stdin").await?;
        }
        Ok(())
    }

    /// One document's records, verified first under `--verify`.
    async fn document(&mut self, bytes: &[u8], name: &str) -> anyhow::Result<()> {
        let records = match &self.verifier {
            None => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => decode(value, name).1,
                Err(error) => vec![Inbound {
                    id: name.to_owned(),
                    sns: None,
                    content: Err(InboundError::Envelope(EnvelopeError::NotJson(error))),
                }],
            },
            Some(verifier) => verified(verifier, bytes, name, self.now).await,
        };
        for record in records {
            self.pending.push(record);
            if self.pending.len() >= self.chunk {
                let full = std::mem::replace(&mut self.pending, Vec::with_capacity(self.chunk));
                if self.chunks.send(full).await.is_err() {
                    anyhow::bail!("the store side stopped");
                }
            }
        }
        Ok(())
    }
}

/// The records of one document whose envelopes were verified: an SNS envelope (HTTP or Lambda
/// shape), or each SNS record or SQS body of a Lambda event. What is not an envelope, or does
/// not verify, becomes a failed record naming why.
async fn verified(verifier: &Verifier, bytes: &[u8], name: &str, now: Timestamp) -> Vec<Inbound> {
    // Most inputs are one envelope: parsed once, verified as parsed.
    if let Ok(envelope) = Envelope::parse(bytes) {
        let verdict = verifier.check(envelope, now).await;
        return vec![inbound(name.to_owned(), verdict)];
    }
    let bodies: Vec<(String, Vec<u8>)> = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut event)) if event.contains_key("Records") => {
            let records = match event.remove("Records") {
                Some(Value::Array(records)) => records,
                _ => Vec::new(),
            };
            records
                .into_iter()
                .enumerate()
                .map(|(i, record)| {
                    let id = format!("{name}#{i}");
                    let body = match (record.get("Sns"), record.get("body")) {
                        (Some(sns), _) => serde_json::to_vec(sns).unwrap_or_default(),
                        (None, Some(Value::String(body))) => body.clone().into_bytes(),
                        _ => Vec::new(),
                    };
                    (id, body)
                })
                .collect()
        }
        _ => vec![(name.to_owned(), bytes.to_vec())],
    };
    let mut records = Vec::with_capacity(bodies.len());
    for (id, body) in bodies {
        records.push(inbound(id, verifier.verify(&body, now).await));
    }
    records
}

/// The record of one envelope, by its verdict.
fn inbound(id: String, verdict: Result<Envelope, Answer>) -> Inbound {
    match verdict {
        Ok(envelope) => {
            let timestamp = Timestamp::parse_rfc3339(&envelope.timestamp).ok();
            let opened = open_sns(
                envelope.kind.as_str(),
                &envelope.message_id,
                &envelope.topic_arn,
                timestamp,
                &envelope.message,
            );
            Inbound::opened(id, opened)
        }
        Err(answer) => Inbound {
            id,
            sns: None,
            content: Err(InboundError::Unverified(refusal(&answer))),
        },
    }
}

fn refusal(answer: &Answer) -> String {
    match answer {
        Answer::Rejected(rejection) => rejection.to_string(),
        Answer::Unavailable(error) => format!("certificate unavailable: {error}"),
        Answer::Processed(_) | Answer::Duplicate => "not verified".into(),
    }
}
