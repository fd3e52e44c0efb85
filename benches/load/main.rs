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

use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;

mod cost;
mod driver;
mod ingest;
mod report;
mod rules;
mod sender;
#[path = "../../tests/support/ses_event.rs"]
mod ses_event;
#[path = "../../tests/support/wire.rs"]
mod wire;
mod worker;

use driver::drive;
use ingest::ingest_process;
use sender::sender_process;

/// One account allowed twice the run's target rate (`MAX_SEND_RATE`, [`worker::limit_for`]: SES's
/// line leaves about 60 % of it to the limiter, so that the run is at about 85 % of
/// what the limiter refills: it paces, and binds now and then), its send count from Send events, warn and pause levels above
/// the run's 5 % bounces (the guard reviews every batch but has nothing to do).
pub(crate) const LOAD_CONFIG: &str = r#"
[tables]
suppressions = "unused"
state = "unused"

# Never the internet's DNS: the harness measures the store (prevention's DNS is tested against
# a zone of its own), and these recipients' example.com publishes a null MX.
[prevention]
dns = "off"

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
pub(crate) const BOUNCE_EVERY: u64 = 20;
/// Receives of a feedback record before it would go to the DLQ (the template's maxReceiveCount).
pub(crate) const MAX_RECEIVES: u32 = 5;

#[derive(Parser, Debug, Clone)]
#[command(about = "sesguard's load harness (see the module documentation)")]
pub(crate) struct Args {
    /// `driver` (the default), or a worker: `sender`, `ingest`.
    #[arg(long, default_value = "driver")]
    pub(crate) role: String,
    /// Target sends a second in all.
    #[arg(long, default_value_t = 1000)]
    pub(crate) rate: u64,
    /// How long the senders send.
    #[arg(long, default_value_t = 20)]
    pub(crate) seconds: u64,
    /// Sender processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) senders: usize,
    /// Ingest processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) ingesters: usize,
    /// Concurrent instances in each process.
    #[arg(long, default_value_t = 8)]
    pub(crate) instances: usize,
    /// How long an SES event takes to reach ingest (SES, SNS, SQS and the batching window
    /// take seconds; without it every Send event would find its send record still open).
    #[arg(long, default_value_t = 2000)]
    pub(crate) feedback_delay_ms: u64,
    /// How long SES takes to accept a message: the median of a spread from 0.75 to 1.25 times it.
    #[arg(long, default_value_t = 60)]
    pub(crate) ses_latency_ms: u64,
    /// DynamoDB's rules between the workers and the server (latency, transaction conflicts,
    /// partition throttling; `rules.rs`): `on` (the default) or `off`.
    #[arg(long, default_value = "on")]
    pub(crate) rules: String,
    /// The rules' request latency: median and 99th percentile, log-normal.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) latency_median_ms: f64,
    #[arg(long, default_value_t = 25.0)]
    pub(crate) latency_p99_ms: f64,
    /// How long a transaction holds its items under the rules.
    #[arg(long, default_value_t = 10)]
    pub(crate) hold_ms: u64,
    /// The workers' log level (`RUST_LOG`): the functions' default, so that the log bytes per
    /// message are what CloudWatch Logs would take.
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
    /// A DynamoDB-compatible server already running; else `--fakecloud` is started.
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// The fakecloud binary to start on a free port.
    #[arg(long)]
    pub(crate) fakecloud: Option<PathBuf>,
    /// Where the reports go.
    #[arg(long, default_value = "target/load")]
    pub(crate) out: PathBuf,
    /// Exit non-zero when a criterion of the issue fails.
    #[arg(long)]
    pub(crate) check: bool,
    /// Workers: their number and tables (`SUPPRESSIONS,STATE`).
    #[arg(long, default_value_t = 0)]
    pub(crate) id: usize,
    #[arg(long, default_value = "")]
    pub(crate) tables: String,
    /// `cargo bench` passes this to every bench.
    #[arg(long, hide = true)]
    pub(crate) bench: bool,
}

pub(crate) fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.role.as_str() {
        "driver" => drive(&args, &runtime),
        "sender" => {
            sesguard::telemetry::init();
            runtime.block_on(sender_process(&args))
        }
        "ingest" => {
            sesguard::telemetry::init();
            runtime.block_on(ingest_process(&args))
        }
        other => bail!("unknown role `{other}`: driver, sender or ingest"),
    }
}
