//! What every worker process shares: its store client (counted on the wire), its context over
//! the run's tables, and the report it leaves on stderr when it ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sesguard::adapters::dynamodb::{DynamoStore, Tables};
use sesguard::app::Context;
use sesguard::config::Config;
use sesguard::ports::SystemClock;
use sesguard::telemetry::CONTENTION;

use crate::{Args, LOAD_CONFIG};

use crate::wire::{RequestCounter, Wire};

pub(crate) fn client(endpoint: &str, log: &RequestCounter) -> aws_sdk_dynamodb::Client {
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

pub(crate) fn tables_of(text: &str) -> anyhow::Result<Tables> {
    let (suppressions, state) = text
        .split_once(',')
        .context("--tables SUPPRESSIONS,STATE")?;
    Ok(Tables {
        suppressions: suppressions.into(),
        state: state.into(),
    })
}

/// The account's send rate in a run at `rate`: twice it, so that SES's line (about 60 % of
/// the rate, [`SesLine`](sesguard::domain::sending::rate_limit::SesLine)) leaves the run at
/// about 85 % of what the limiter refills: it paces, and binds now and then.
pub(crate) fn limit_for(rate: u64) -> u64 {
    (rate * 2).max(20)
}

/// SES's line of the account in a run at `rate`, with the sender's defaults.
pub(crate) fn line_for(rate: u64) -> sesguard::domain::sending::rate_limit::SesLine {
    Config::default().ses_line(limit_for(rate) as f64)
}

/// How many parts the account's paced bucket has in a run at `rate`.
pub(crate) fn parts_for(rate: u64) -> u16 {
    line_for(rate).limits().pace().parts
}

pub(crate) fn context(args: &Args, log: &RequestCounter) -> anyhow::Result<Context> {
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
pub(crate) struct Report {
    pub(crate) role: String,
    pub(crate) seconds: f64,
    /// Sender: messages SES accepted; ingest: records stored.
    pub(crate) done: u64,
    /// Sender: of those, messages that bounce.
    pub(crate) bounced: u64,
    /// Sender: decisions by name; ingest: outcomes by name.
    pub(crate) outcomes: BTreeMap<String, u64>,
    /// Ingest: records failed and put back; records that ran out of receives.
    pub(crate) retried: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) conflicts: u64,
    pub(crate) throttles: u64,
    pub(crate) wire: Wire,
    /// Sender: when each send left for SES (ms since the epoch).
    pub(crate) sends_at: Vec<i64>,
    /// How long each batch took, as a Lambda invocation would (ms).
    pub(crate) batch_ms: Vec<f64>,
    /// Bytes the process logged (its stderr but for this report), and the EMF lines its
    /// invocations would have printed.
    pub(crate) log_bytes: u64,
    pub(crate) emf_bytes: u64,
    /// CPU seconds the process used, user and system.
    pub(crate) cpu_seconds: f64,
}

/// CPU seconds process `pid` (`self` for this one) has used, user and system, from
/// `/proc/PID/stat` (Linux; 0 elsewhere).
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The `q` quantile of `sorted` (nearest rank; 0 when empty).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Bytes `lines` take with their newlines.
pub(crate) fn bytes_of(lines: &[String]) -> u64 {
    lines.iter().map(|line| line.len() as u64 + 1).sum()
}

pub(crate) fn finish(
    mut report: Report,
    log: &RequestCounter,
    started: Instant,
) -> anyhow::Result<()> {
    report.seconds = started.elapsed().as_secs_f64();
    report.cpu_seconds = cpu_seconds("self");
    (report.conflicts, report.throttles) = CONTENTION.take();
    let mut wire = log.take_wire();
    // Keys written once (claims, send records) cannot be hot; keep the report small.
    wire.keys
        .retain(|_, seconds| seconds.values().map(|&n| u64::from(n)).sum::<u64>() > 2);
    report.wire = wire;
    eprintln!("{}", serde_json::to_string(&report)?);
    Ok(())
}
