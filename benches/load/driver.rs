//! The driver: the server, the tables, the worker processes and the events passed between
//! them; it collects the workers' reports.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sesguard::adapters::dynamodb::{DynamoStore, Tables};
use sesguard::ports::{Clock, CounterWindow, SystemClock};

use crate::Args;
use crate::report::{Seen, render, summarize};
use crate::wire::RequestCounter;
use sesguard::domain::reputation::counters::Counts;

use crate::worker::{Report, client, cpu_seconds};

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The server the run uses, stopped when dropped.
pub(crate) struct Server {
    pub(crate) endpoint: String,
    pub(crate) child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn server(args: &Args) -> anyhow::Result<Server> {
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

pub(crate) fn worker(
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
        .env("RUST_LOG", &args.log_level)
        .stderr(Stdio::piped());
    if role == "sender" {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
    } else {
        command.stdin(Stdio::piped()).stdout(Stdio::null());
    }
    Ok(command.spawn()?)
}

/// The last line of a worker's stderr: its report (earlier lines are its logs, kept).
pub(crate) fn collect(mut child: Child, name: &str, out: &Path) -> anyhow::Result<Report> {
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
    let (last, logs) = lines.split_last().context("no report")?;
    let mut report: Report =
        serde_json::from_str(last).with_context(|| format!("{name}'s report"))?;
    report.log_bytes = logs.iter().map(|line| line.len() as u64 + 1).sum();
    Ok(report)
}

/// The ingest processes' inputs, shared by the pumps.
type Inputs = Arc<Mutex<Vec<std::io::BufWriter<std::process::ChildStdin>>>>;

/// Passes a sender process's events (its stdout, a line each) to the ingest processes in turn,
/// as SQS hands batches to instances, counting them in `events`.
fn pump(
    stdout: std::process::ChildStdout,
    first: usize,
    inputs: Inputs,
    events: Arc<AtomicU64>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || -> std::io::Result<()> {
        for (n, line) in BufReader::new(stdout).lines().enumerate() {
            let line = line?;
            let mut inputs = inputs.lock().unwrap();
            let count = inputs.len();
            writeln!(inputs[(n + first) % count], "{line}")?;
            events.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })
}

/// What the workers did: the senders' and the ingesters' reports, and the events passed on.
struct Worked {
    sent: Vec<Report>,
    stored: Vec<Report>,
    events: u64,
}

/// Starts the ingest and sender processes over `names` (the tables), passes events between
/// them, and collects their reports once the senders are done and the ingesters drained.
fn run_workers(args: &Args, endpoint: &str, names: &str) -> anyhow::Result<Worked> {
    let mut ingesters = (0..args.ingesters)
        .map(|i| worker(args, "ingest", i, endpoint, names))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs: Inputs = Arc::new(Mutex::new(
        ingesters
            .iter_mut()
            .map(|c| std::io::BufWriter::new(c.stdin.take().expect("piped")))
            .collect(),
    ));
    let events = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut pumps = Vec::new();
    for i in 0..args.senders {
        let mut child = worker(args, "sender", i, endpoint, names)?;
        let stdout = child.stdout.take().expect("piped");
        pumps.push(pump(stdout, i, inputs.clone(), events.clone()));
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
    Ok(Worked {
        sent,
        stored,
        events: events.load(Ordering::Relaxed),
    })
}

/// What the store counted for the account over the last day, in all.
fn counted(store: &DynamoStore, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Counts> {
    let window = runtime.block_on(async {
        let now = SystemClock.now();
        store
            .window("primary", now.minus(Duration::from_secs(86_400)), now)
            .await
    })?;
    let mut totals = Counts::default();
    for bucket in &window.buckets {
        totals += bucket.total;
    }
    Ok(totals)
}

/// The driver: fresh tables on the server, the workers, the report (`report.json` and the
/// text), and with `--check` the criteria.
pub(crate) fn drive(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let server = server(args)?;
    let stamp = std::process::id();
    let tables = Tables {
        suppressions: format!("load-suppressions-{stamp}"),
        state: format!("load-state-{stamp}"),
    };
    let setup = RequestCounter::default();
    let store = DynamoStore::new(client(&server.endpoint, &setup), tables.clone());
    runtime.block_on(store.create_tables())?;
    let names = format!("{},{}", tables.suppressions, tables.state);
    // The workers reach the server through DynamoDB's rules, unless they are off.
    let proxy = match args.rules.as_str() {
        "on" => Some(runtime.block_on(crate::rules::start(
            crate::rules::Rules {
                median_ms: args.latency_median_ms,
                p99_ms: args.latency_p99_ms,
                hold_ms: args.hold_ms,
                write_units: 1000.0,
                read_units: 3000.0,
            },
            server.endpoint.clone(),
        ))?),
        "off" => None,
        other => bail!("--rules `{other}`: on or off"),
    };
    let through = proxy
        .as_ref()
        .map_or(server.endpoint.clone(), |p| p.endpoint.clone());
    println!(
        "load: {} sends/s for {} s from {} sender processes and {} ingest processes, {} instances each, on {}",
        args.rate, args.seconds, args.senders, args.ingesters, args.instances, server.endpoint
    );
    let worked = run_workers(args, &through, &names)?;
    let totals = counted(&store, runtime)?;
    let injected = proxy.as_ref().map(crate::rules::Proxy::injected);
    let server_cpu = server
        .child
        .as_ref()
        .map_or(0.0, |child| cpu_seconds(&child.id().to_string()));
    let seen = Seen {
        events: worked.events,
        counted: totals,
        injected: injected.as_ref(),
        server_cpu,
        driver_cpu: cpu_seconds("self"),
    };
    let summary = summarize(args, &worked.sent, &worked.stored, &seen);
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
