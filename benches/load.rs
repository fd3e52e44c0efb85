//! `make load`: one account sending at a target rate, with its feedback, against a local
//! DynamoDB-compatible server — sender and ingest instances in separate processes, as Lambda
//! runs them — and what it costs the store.
//!
//! The driver starts the server (fakecloud, or `--endpoint` for one already running), creates
//! fresh tables and starts `--senders` sender processes and `--ingesters` ingest processes,
//! each running `--instances` concurrent instances (a [`Sender`] or an ingest batch loop, each
//! with its own context — store client, window cache, memory — as one warm Lambda instance). Sender instances take batches of ten requests
//! at their share of `--rate` and send them through sesguard's own gate over the DynamoDB
//! store to a transport that accepts every message and answers with its SES events: Send,
//! then Delivery, or a permanent Bounce for one recipient in twenty. The driver passes those
//! events to the ingest processes, whose instances store them ten at a time as the ingest
//! function does (a record that fails goes back, five receives, then counts as dead-lettered).
//!
//! Every DynamoDB request is counted on the wire by an interceptor in each process: requests
//! by operation, write units (1 per item written, 2 per transaction action), read units (an
//! estimate from the answer's size), refusals by error, and every key written, per second. The
//! report: achieved sends and events per second, requests and write units per message,
//! conflict retries and throttles, and the hottest keys — measured, and derived at 1,000 sends
//! a second from their writes per message. `--check` fails the run when feedback was
//! dead-lettered, a send went uncounted, a key would take more than 100 writes a second at
//! 1,000 sends a second, or conflict retries reached 1 % of requests.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sesguard::adapters::dynamodb::{DynamoStore, Tables};
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;
use sesguard::app::send::{Queued, Sender, SenderMemory};
use sesguard::config::Config;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::sending::request::{OutgoingMail, SendRequest};
use sesguard::ports::{Clock, CounterWindow, MailTransport, SystemClock, TransportError};
use sesguard::telemetry::CONTENTION;

/// One account allowed half as much again as the run's target rate (`MAX_SEND_RATE`; so that
/// the limiter paces, never binds, and its parts are as busy as an account's sending 1,000 a
/// second under a 1,500 limit), its send count from Send events, warn and pause levels above
/// the run's 5 % bounces (the guard reviews every batch but has nothing to do).
const LOAD_CONFIG: &str = r#"
[tables]
suppressions = "unused"
state = "unused"

[guard.thresholds]
bounce_warn = 0.06
bounce_pause = 0.08
bounce_critical = 0.09

[[accounts]]
name = "primary"
region = "us-east-1"
account_id = "111111111111"
send_count_source = "ses_events"
configuration_set = "sesguard"
from = "no-reply@example.com"
daily_quota = 500000000
max_send_rate = MAX_SEND_RATE

[[streams]]
name = "transactional"
accounts = ["primary"]
priority = "normal"
"#;

/// Recipients whose mail bounces: one in twenty.
const BOUNCE_EVERY: u64 = 20;
/// Receives of a feedback record before it would go to the DLQ (the template's maxReceiveCount).
const MAX_RECEIVES: u32 = 5;

#[derive(Parser, Debug, Clone)]
#[command(about = "sesguard's load harness (see the module documentation)")]
struct Args {
    /// `driver` (the default), or a worker: `sender`, `ingest`.
    #[arg(long, default_value = "driver")]
    role: String,
    /// Target sends a second in all.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long the senders send.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Sender processes.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Ingest processes.
    #[arg(long, default_value_t = 2)]
    ingesters: usize,
    /// Concurrent instances in each process.
    #[arg(long, default_value_t = 8)]
    instances: usize,
    /// How long an SES event takes to reach ingest (SES, SNS, SQS and the batching window
    /// take seconds; without it every Send event would find its send record still open).
    #[arg(long, default_value_t = 2000)]
    feedback_delay_ms: u64,
    /// A DynamoDB-compatible server already running; else `--fakecloud` is started.
    #[arg(long)]
    endpoint: Option<String>,
    /// The fakecloud binary to start on a free port.
    #[arg(long)]
    fakecloud: Option<PathBuf>,
    /// Where the reports go.
    #[arg(long, default_value = "target/load")]
    out: PathBuf,
    /// Exit non-zero when a criterion of the issue fails.
    #[arg(long)]
    check: bool,
    /// Workers: their number and tables (`SUPPRESSIONS,STATE`).
    #[arg(long, default_value_t = 0)]
    id: usize,
    #[arg(long, default_value = "")]
    tables: String,
    /// `cargo bench` passes this to every bench.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.role.as_str() {
        "driver" => drive(&args, &runtime),
        "sender" => runtime.block_on(sender_process(&args)),
        "ingest" => runtime.block_on(ingest_process(&args)),
        other => bail!("unknown role `{other}`: driver, sender or ingest"),
    }
}

// --- Counting on the wire -------------------------------------------------------------------

/// What one process's DynamoDB client sent and heard.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wire {
    requests: BTreeMap<String, u64>,
    write_units: u64,
    read_units: u64,
    refusals: BTreeMap<String, u64>,
    /// Writes per key per second (since the epoch), for keys written more than once.
    keys: HashMap<String, BTreeMap<u64, u32>>,
}

#[derive(Debug, Clone, Default)]
struct WireLog(Arc<Mutex<Wire>>);

fn key_of(table: &str, key: &Value) -> String {
    let text = |name: &str| {
        key.get(name)
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
    };
    match (text("pk"), text("sk"), text("email")) {
        (Some(pk), Some(sk), _) => format!("{pk} | {sk}"),
        (_, _, Some(email)) => format!("{table}: {email}"),
        _ => format!("{table}: ?"),
    }
}

/// The keys a write request names, and its write units.
fn written(operation: &str, body: &Value) -> (Vec<String>, u64) {
    let table = body["TableName"].as_str().unwrap_or_default();
    match operation {
        "PutItem" => (vec![key_of(table, &body["Item"])], 1),
        "UpdateItem" | "DeleteItem" => (vec![key_of(table, &body["Key"])], 1),
        "TransactWriteItems" => {
            let actions = body["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let keys = actions
                .iter()
                .filter_map(|action| {
                    let (kind, inner) = action.as_object()?.iter().next()?;
                    let table = inner["TableName"].as_str().unwrap_or_default();
                    (kind != "ConditionCheck").then(|| match kind.as_str() {
                        "Put" => key_of(table, &inner["Item"]),
                        _ => key_of(table, &inner["Key"]),
                    })
                })
                .collect();
            (keys, 2 * actions.len() as u64)
        }
        "BatchWriteItem" => {
            let mut keys = Vec::new();
            for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                for request in requests.as_array().into_iter().flatten() {
                    if let Some(item) = request.pointer("/PutRequest/Item") {
                        keys.push(key_of(table, item));
                    } else if let Some(key) = request.pointer("/DeleteRequest/Key") {
                        keys.push(key_of(table, key));
                    }
                }
            }
            let units = keys.len() as u64;
            (keys, units)
        }
        _ => (Vec::new(), 0),
    }
}

impl Intercept for WireLog {
    fn name(&self) -> &'static str {
        "WireLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let (keys, units) = written(&operation, &body);
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut wire = self.0.lock().unwrap();
        *wire.requests.entry(operation).or_default() += 1;
        wire.write_units += units;
        for key in keys {
            *wire.keys.entry(key).or_default().entry(second).or_default() += 1;
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(response) = context.response() else {
            return Ok(());
        };
        let Some(bytes) = response.body().bytes() else {
            return Ok(());
        };
        let mut wire = self.0.lock().unwrap();
        if response.status().as_u16() >= 400 {
            let error: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let kind = error["__type"].as_str().unwrap_or("unknown");
            let kind = kind.rsplit('#').next().unwrap_or(kind).to_owned();
            *wire.refusals.entry(kind).or_default() += 1;
            return Ok(());
        }
        // Read units, estimated: a strongly consistent read costs one unit per 4 KB.
        let answer: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let units = if answer.get("Items").is_some() || answer.get("Item").is_some() {
            (bytes.len() as u64).div_ceil(4096)
        } else if let Some(responses) = answer.get("Responses").and_then(Value::as_object) {
            responses
                .values()
                .filter_map(Value::as_array)
                .map(|items| items.len() as u64)
                .sum()
        } else {
            0
        };
        wire.read_units += units;
        Ok(())
    }
}

fn client(endpoint: &str, log: &WireLog) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "sesguard-load",
        ))
        .interceptor(log.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn tables_of(text: &str) -> anyhow::Result<Tables> {
    let (suppressions, state) = text
        .split_once(',')
        .context("--tables SUPPRESSIONS,STATE")?;
    Ok(Tables {
        suppressions: suppressions.into(),
        state: state.into(),
    })
}

/// The account's send rate in a run at `rate`: half as much again.
fn limit_for(rate: u64) -> u64 {
    (rate * 3 / 2).max(15)
}

/// How many parts the account's paced bucket has in a run at `rate`.
fn parts_for(rate: u64) -> u16 {
    sesguard::domain::sending::rate_limit::RateLimits::from_send_rate(limit_for(rate) as f64)
        .pace()
        .parts
}

fn context(args: &Args, log: &WireLog) -> anyhow::Result<Context> {
    let endpoint = args.endpoint.as_deref().context("--endpoint")?;
    let store = DynamoStore::new(client(endpoint, log), tables_of(&args.tables)?);
    let config = Config::parse(
        &LOAD_CONFIG.replace("MAX_SEND_RATE", &limit_for(args.rate).to_string()),
        "load",
    )?;
    Ok(sesguard::wiring::local(
        config,
        Arc::new(store),
        Arc::new(SystemClock),
    ))
}

/// A worker's account of its run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    role: String,
    seconds: f64,
    /// Sender: messages SES accepted; ingest: records stored.
    done: u64,
    /// Sender: of those, messages that bounce.
    bounced: u64,
    /// Sender: decisions by name; ingest: outcomes by name.
    outcomes: BTreeMap<String, u64>,
    /// Ingest: records failed and put back; records that ran out of receives.
    retried: u64,
    dead_lettered: u64,
    conflicts: u64,
    throttles: u64,
    wire: Wire,
}

fn finish(mut report: Report, log: &WireLog, started: Instant) -> anyhow::Result<()> {
    report.seconds = started.elapsed().as_secs_f64();
    (report.conflicts, report.throttles) = CONTENTION.take();
    let mut wire = std::mem::take(&mut *log.0.lock().unwrap());
    // Keys written once (claims, send records) cannot be hot; keep the report small.
    wire.keys
        .retain(|_, seconds| seconds.values().map(|&n| u64::from(n)).sum::<u64>() > 2);
    report.wire = wire;
    eprintln!("{}", serde_json::to_string(&report)?);
    Ok(())
}

// --- Sender processes -----------------------------------------------------------------------

/// SES as the load sees it: accepts every message and writes its events, one JSON line each,
/// to stdout for the driver to pass on.
struct LoadSes {
    next: AtomicU64,
    bounced: AtomicU64,
    process: usize,
    events: tokio::sync::mpsc::UnboundedSender<String>,
}

#[async_trait]
impl MailTransport for LoadSes {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("load-{}-{n}", self.process);
        let at = Timestamp::from_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64,
        )
        .to_string();
        let to = mail.to[0].as_str().to_owned();
        let tags: BTreeMap<&String, [&String; 1]> =
            mail.tags.iter().map(|(k, v)| (k, [v])).collect();
        let message = json!({"timestamp": at, "source": mail.from, "messageId": id,
            "sendingAccountId": "111111111111", "destination": [to], "tags": tags});
        let send = json!({"eventType": "Send", "send": {}, "mail": message});
        let outcome = if to.starts_with("bounce") {
            self.bounced.fetch_add(1, Ordering::Relaxed);
            json!({"eventType": "Bounce", "mail": message, "bounce": {
                "bounceType": "Permanent", "bounceSubType": "General", "timestamp": at,
                "feedbackId": format!("{id}-bounce"),
                "bouncedRecipients": [{"emailAddress": to, "status": "5.1.1"}]}})
        } else {
            json!({"eventType": "Delivery", "mail": message, "delivery": {
                "timestamp": at, "recipients": [to], "smtpResponse": "250 ok"}})
        };
        for event in [send, outcome] {
            let _ = self.events.send(event.to_string());
        }
        Ok(id)
    }
}

async fn sender_process(args: &Args) -> anyhow::Result<()> {
    let log = WireLog::default();
    let (events, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let ses = Arc::new(LoadSes {
        next: AtomicU64::new(0),
        bounced: AtomicU64::new(0),
        process: args.id,
        events,
    });
    let writer = tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while let Some(line) = lines.blocking_recv() {
            writeln!(out, "{line}")?;
            if lines.is_empty() {
                out.flush()?;
            }
        }
        out.flush()
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    // Each instance sends a batch of ten every `interval`: its share of the rate.
    let per_instance = args.rate as f64 / (args.senders * args.instances) as f64;
    let interval = Duration::from_secs_f64(10.0 / per_instance.max(0.001));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for instance in 0..args.instances {
        // Each instance its own context, as each Lambda instance builds its own: its own store
        // client (with what it last saw of the rate parts), window cache and memory.
        let deps = context(args, &log)?;
        let (ses, next) = (ses.clone(), next.clone());
        let process = args.id;
        let spread = instance as f64 / args.instances as f64;
        tasks.push(tokio::spawn(async move {
            let memory = SenderMemory::default();
            let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
            // Instances start spread over one interval.
            let mut due = Instant::now() + interval.mul_f64(spread);
            while Instant::now() < deadline {
                tokio::time::sleep_until(due.into()).await;
                due += interval;
                let batch = (0..10)
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
                    .collect();
                let sender = Sender::of(&deps, &memory).with_transport(ses.as_ref());
                match sender.send(batch, deps.clock.now()).await {
                    Ok(judged) => {
                        for j in judged {
                            *outcomes.entry(j.decision.name().to_owned()).or_default() += 1;
                        }
                    }
                    Err(error) => {
                        *outcomes.entry(format!("batch failed: {error}")).or_default() += 10
                    }
                }
            }
            outcomes
        }));
    }
    let mut report = Report {
        role: "sender".into(),
        ..Report::default()
    };
    for task in tasks {
        for (name, n) in task.await? {
            *report.outcomes.entry(name).or_default() += n;
        }
    }
    report.done = ses.next.load(Ordering::Relaxed);
    report.bounced = ses.bounced.load(Ordering::Relaxed);
    drop(ses);
    writer.await??;
    finish(report, &log, started)
}

// --- Ingest processes -----------------------------------------------------------------------

/// A feedback record waiting in the "queue": its body, when it may be received, and how
/// often it was.
struct Record {
    body: String,
    ready: Instant,
    receives: u32,
}

async fn ingest_process(args: &Args) -> anyhow::Result<()> {
    let log = WireLog::default();
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

// --- The driver -----------------------------------------------------------------------------

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The server the run uses, stopped when dropped.
struct Server {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn server(args: &Args) -> anyhow::Result<Server> {
    if let Some(endpoint) = &args.endpoint {
        return Ok(Server {
            endpoint: endpoint.clone(),
            child: None,
        });
    }
    let binary = args
        .fakecloud
        .as_ref()
        .context("give --endpoint URL or --fakecloud BINARY")?;
    let port = free_port()?;
    std::fs::create_dir_all(&args.out)?;
    let log = std::fs::File::create(args.out.join("fakecloud.log"))?;
    let child = Command::new(binary)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let server = Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("fakecloud did not listen on {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

fn worker(
    args: &Args,
    role: &str,
    id: usize,
    endpoint: &str,
    tables: &str,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .args([
            "--role",
            role,
            "--id",
            &id.to_string(),
            "--endpoint",
            endpoint,
        ])
        .args(["--tables", tables, "--rate", &args.rate.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--senders", &args.senders.to_string()])
        .args(["--instances", &args.instances.to_string()])
        .args(["--feedback-delay-ms", &args.feedback_delay_ms.to_string()])
        .env("RUST_LOG", "error")
        .stderr(Stdio::piped());
    if role == "sender" {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
    } else {
        command.stdin(Stdio::piped()).stdout(Stdio::null());
    }
    Ok(command.spawn()?)
}

/// The last line of a worker's stderr: its report (earlier lines are its logs, kept).
fn collect(mut child: Child, name: &str, out: &Path) -> anyhow::Result<Report> {
    let stderr = child.stderr.take().context("worker stderr")?;
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait()?;
    std::fs::write(out.join(format!("{name}.log")), lines.join("\n"))?;
    if !status.success() {
        bail!("{name} failed ({status}); its log is in {}", out.display());
    }
    let last = lines.last().context("no report")?;
    serde_json::from_str(last).with_context(|| format!("{name}'s report"))
}

fn drive(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let server = server(args)?;
    let stamp = std::process::id();
    let tables = Tables {
        suppressions: format!("load-suppressions-{stamp}"),
        state: format!("load-state-{stamp}"),
    };
    let setup = WireLog::default();
    let store = DynamoStore::new(client(&server.endpoint, &setup), tables.clone());
    runtime.block_on(store.create_tables())?;
    let names = format!("{},{}", tables.suppressions, tables.state);
    println!(
        "load: {} sends/s for {} s from {} sender processes and {} ingest processes, {} instances each, on {}",
        args.rate, args.seconds, args.senders, args.ingesters, args.instances, server.endpoint
    );

    let mut ingesters = (0..args.ingesters)
        .map(|i| worker(args, "ingest", i, &server.endpoint, &names))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs: Vec<_> = ingesters
        .iter_mut()
        .map(|c| c.stdin.take().expect("piped"))
        .collect();
    let inputs = Arc::new(Mutex::new(
        inputs
            .into_iter()
            .map(std::io::BufWriter::new)
            .collect::<Vec<_>>(),
    ));
    let events = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut pumps = Vec::new();
    for i in 0..args.senders {
        let mut child = worker(args, "sender", i, &server.endpoint, &names)?;
        let stdout = child.stdout.take().expect("piped");
        let (inputs, events) = (inputs.clone(), events.clone());
        // Events go to the ingest processes in turn, as SQS hands batches to instances.
        pumps.push(std::thread::spawn(move || -> std::io::Result<()> {
            for (n, line) in BufReader::new(stdout).lines().enumerate() {
                let line = line?;
                let mut inputs = inputs.lock().unwrap();
                let count = inputs.len();
                writeln!(inputs[(n + i) % count], "{line}")?;
                events.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
        senders.push(child);
    }
    let mut sent = Vec::new();
    for (i, child) in senders.into_iter().enumerate() {
        sent.push(collect(child, &format!("sender-{i}"), &args.out)?);
    }
    for pump in pumps {
        pump.join().expect("pump")?;
    }
    // Closing their input lets the ingest processes drain and stop.
    for input in std::mem::take(&mut *inputs.lock().unwrap()) {
        input.into_inner().map_err(|e| e.into_error())?;
    }
    let mut stored = Vec::new();
    for (i, child) in ingesters.into_iter().enumerate() {
        stored.push(collect(child, &format!("ingest-{i}"), &args.out)?);
    }
    let counted = runtime.block_on(async {
        let now = SystemClock.now();
        store
            .window("primary", now.minus(Duration::from_secs(86_400)), now)
            .await
    })?;
    let mut totals = sesguard::domain::reputation::counters::Counts::default();
    for bucket in &counted.buckets {
        totals += bucket.total;
    }
    let summary = summarize(args, &sent, &stored, events.load(Ordering::Relaxed), totals);
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    print!("{}", render(&summary));
    drop(server);
    if args.check {
        let failures = summary["failures"].as_array().cloned().unwrap_or_default();
        if !failures.is_empty() {
            bail!("the load run failed its checks: {failures:?}");
        }
    }
    Ok(())
}

fn summarize(
    args: &Args,
    sent: &[Report],
    stored: &[Report],
    events: u64,
    counted: sesguard::domain::reputation::counters::Counts,
) -> Value {
    let accepted: u64 = sent.iter().map(|r| r.done).sum();
    let send_seconds = sent.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let ingest_seconds = stored.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let all: Vec<&Report> = sent.iter().chain(stored).collect();
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut keys: HashMap<&str, BTreeMap<u64, u32>> = HashMap::new();
    let (mut write_units, mut read_units, mut conflicts, mut throttles) = (0, 0, 0, 0);
    for report in &all {
        for (op, n) in &report.wire.requests {
            *requests.entry(op.clone()).or_default() += n;
        }
        for (kind, n) in &report.wire.refusals {
            *refusals.entry(kind.clone()).or_default() += n;
        }
        for (key, seconds) in &report.wire.keys {
            let merged = keys.entry(key).or_default();
            for (second, n) in seconds {
                *merged.entry(*second).or_default() += n;
            }
        }
        write_units += report.wire.write_units;
        read_units += report.wire.read_units;
        conflicts += report.conflicts;
        throttles += report.throttles;
    }
    let total_requests: u64 = requests.values().sum();
    let per_message = |n: u64| n as f64 / accepted.max(1) as f64;
    // The hottest keys: their busiest second here, and their writes per message carried to
    // 1,000 sends a second. A counter shard's writes per message do not depend on the rate; a
    // rate part's do, through the number of parts: at 1,000 sends a second under a 1,500
    // limit the same takes spread over that many parts.
    let spread = f64::from(parts_for(args.rate)) / f64::from(parts_for(1000));
    let at_1000 = |key: &str, total: u64| {
        let scale = if key.contains("| rate#") { spread } else { 1.0 };
        per_message(total) * 1000.0 * scale
    };
    let mut hot: Vec<(&str, u32, u64, f64)> = keys
        .iter()
        .map(|(key, seconds)| {
            let busiest = seconds.values().copied().max().unwrap_or(0);
            let total = seconds.values().map(|&n| u64::from(n)).sum();
            (*key, busiest, total, at_1000(key, total))
        })
        .collect();
    hot.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(b.0)));
    hot.truncate(10);
    let hottest_at_1000 = hot.first().map_or(0.0, |h| h.3);
    let outcomes = |reports: &[Report]| {
        let mut merged: BTreeMap<String, u64> = BTreeMap::new();
        for report in reports {
            for (name, n) in &report.outcomes {
                *merged.entry(name.clone()).or_default() += n;
            }
        }
        merged
    };
    let dead_lettered: u64 = stored.iter().map(|r| r.dead_lettered).sum();
    let retried: u64 = stored.iter().map(|r| r.retried).sum();
    let bounces: u64 = sent.iter().map(|r| r.bounced).sum();
    let mut failures = Vec::new();
    if dead_lettered > 0 {
        failures.push(format!("{dead_lettered} feedback records dead-lettered"));
    }
    if counted.hard_bounces != bounces {
        failures.push(format!(
            "{bounces} bounces sent, {} counted",
            counted.hard_bounces
        ));
    }
    if counted.sends != accepted {
        failures.push(format!(
            "{accepted} sends accepted, {} counted",
            counted.sends
        ));
    }
    if hottest_at_1000 > 100.0 {
        failures.push(format!(
            "the hottest key would take {hottest_at_1000:.0} writes a second at 1,000 sends a second"
        ));
    }
    if conflicts * 100 >= total_requests.max(1) {
        failures.push(format!(
            "{conflicts} conflict retries in {total_requests} requests"
        ));
    }
    json!({
        "target_rate": args.rate,
        "processes": {"senders": args.senders, "ingesters": args.ingesters, "instances_each": args.instances},
        "sends_accepted": accepted,
        "send_seconds": send_seconds,
        "sends_per_second": accepted as f64 / send_seconds.max(1e-9),
        "events": events,
        "events_per_second": events as f64 / ingest_seconds.max(1e-9),
        "sender_outcomes": outcomes(sent),
        "ingest_outcomes": outcomes(stored),
        "ingest_retried": retried,
        "dead_lettered": dead_lettered,
        "counted": {"sends": counted.sends, "deliveries": counted.deliveries,
                    "hard_bounces": counted.hard_bounces, "bounces_sent": bounces},
        "requests": requests,
        "requests_per_message": per_message(total_requests),
        "requests_per_message_by_operation": requests.iter().map(|(k, v)| (k.clone(), per_message(*v))).collect::<BTreeMap<_, _>>(),
        "write_units_per_message": per_message(write_units),
        "read_units_per_message": per_message(read_units),
        "refusals": refusals,
        "conflict_retries": conflicts,
        "conflict_retries_per_second": conflicts as f64 / send_seconds.max(1e-9),
        "conflict_share_of_requests": conflicts as f64 / total_requests.max(1) as f64,
        "throttles": throttles,
        "account_limit": limit_for(args.rate),
        "rate_parts": {"here": parts_for(args.rate), "at_1000_sends": parts_for(1000)},
        "hottest_keys": hot.iter().map(|(key, busiest, total, derived)| json!({
            "key": key, "writes": total, "busiest_second": busiest,
            "writes_per_message": per_message(*total),
            "per_second_at_1000_sends": derived,
        })).collect::<Vec<_>>(),
        "failures": failures,
    })
}

fn render(summary: &Value) -> String {
    let mut text = String::new();
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    text += &format!(
        "\nsent     {} messages in {:.1} s: {:.0} sends/s (target {})\n",
        summary["sends_accepted"],
        f(&summary["send_seconds"]),
        f(&summary["sends_per_second"]),
        summary["target_rate"]
    );
    text += &format!(
        "events   {} ingested: {:.0}/s; outcomes {}; retried {}, dead-lettered {}\n",
        summary["events"],
        f(&summary["events_per_second"]),
        summary["ingest_outcomes"],
        summary["ingest_retried"],
        summary["dead_lettered"]
    );
    text += &format!("counted  {}\n", summary["counted"]);
    text += &format!(
        "limit    the account's {} sends/s, paced in {} parts ({} at 1,000 sends/s under 1,500)\n",
        summary["account_limit"],
        summary["rate_parts"]["here"],
        summary["rate_parts"]["at_1000_sends"]
    );
    text += &format!(
        "requests {:.2} per message, write units {:.2}, read units {:.2} (estimated)\n",
        f(&summary["requests_per_message"]),
        f(&summary["write_units_per_message"]),
        f(&summary["read_units_per_message"])
    );
    for (op, n) in summary["requests_per_message_by_operation"]
        .as_object()
        .into_iter()
        .flatten()
    {
        text += &format!("         {op:<20} {:.3} per message\n", f(n));
    }
    text += &format!(
        "refused  {}; conflict retries {} ({:.1}/s, {:.3} % of requests); throttles {}\n",
        summary["refusals"],
        summary["conflict_retries"],
        f(&summary["conflict_retries_per_second"]),
        100.0 * f(&summary["conflict_share_of_requests"]),
        summary["throttles"]
    );
    text += "hottest keys: writes, busiest second here, per second at 1,000 sends/s\n";
    for key in summary["hottest_keys"].as_array().into_iter().flatten() {
        text += &format!(
            "         {:<48} {:>7} {:>5} {:>8.1}\n",
            key["key"].as_str().unwrap_or_default(),
            key["writes"],
            key["busiest_second"],
            f(&key["per_second_at_1000_sends"])
        );
    }
    let failures = summary["failures"].as_array().cloned().unwrap_or_default();
    if failures.is_empty() {
        text += "checks   passed: nothing dead-lettered, every send counted, no key over 100 writes/s at 1,000 sends/s, conflict retries under 1 %\n";
    } else {
        text += &format!("checks   FAILED: {failures:?}\n");
    }
    text
}
