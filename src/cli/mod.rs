//! The `sesguard` command line: the same use cases as the functions, on the store named by
//! `--store` (default an SQLite file under `.sesguard/`). Every command takes `--json`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::adapters::store_url::DEFAULT_STORE;
use crate::app::Context;
use crate::app::admin::{Admin, ImportReport, LimitsView, LineFormat};
use crate::app::check;
use crate::app::ingest::{Inbound, InboundError};
use crate::app::send::{Decision, Queued, Sender, SenderMemory};
use crate::app::status;
use crate::app::webhook::{Certificates, Webhook};
use crate::domain::common::address::EmailAddress;
use crate::domain::feedback::suppression::{Reason, Suppression};
use crate::domain::reputation::history::HistoryEntry;
use crate::domain::sending::rate_limit::LimitsPatch;
use crate::domain::sending::request::SendRequest;
use crate::domain::sending::routing::Priority;
use crate::domain::sns::unwrap::EnvelopeError;
use crate::lambda::ingest::decode;
use crate::wiring::Wiring;

/// Prints a line to stdout. A closed pipe (`sesguard ... | head`) ends the program quietly,
/// as command-line tools do, instead of panicking like `println!`.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*)
            && error.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }};
}

mod addresses;
mod bounces;
mod bulk_ingest;
mod dispatch;
mod output;
mod simulation;
mod suppression_commands;
use output::*;
use suppression_commands::*;

pub use dispatch::run;

/// How the command line logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Guards the sender reputation of Amazon SES accounts.
#[derive(Debug, Parser)]
#[command(name = "sesguard", version)]
pub struct Cli {
    /// Where the store lives: `sqlite:PATH` or `dynamodb`.
    #[arg(long, global = true, env = "SESGUARD_STORE", default_value = DEFAULT_STORE)]
    pub store: String,
    /// Configuration file (TOML); without it, `SESGUARD_CONFIG_TOML` or the defaults.
    #[arg(long, global = true, env = "SESGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log lines on stderr: warnings and errors by default, `-v` adds what each command
    /// does, `-vv` the details (`RUST_LOG` overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as `human` text (the default) or `json`, one object per line, for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record SES notifications from files (`-` for stdin: one JSON document, or JSON lines
    /// of one envelope each) in any accepted shape, in chunks of one store transaction each.
    Ingest {
        /// Files holding raw SES JSON, an SNS envelope, or an SNS or SQS Lambda event.
        #[arg(required = true)]
        files: Vec<String>,
        /// Verify every SNS envelope (topic, certificate URL, age, certificate, signature)
        /// before anything is recorded; what fails is reported by name and counted as failed.
        #[arg(long)]
        verify: bool,
        /// With `--verify`: trust this PEM certificate as if fetched from the SigningCertURL.
        #[arg(long, requires = "verify")]
        cert: Option<PathBuf>,
        /// With `--verify`: allow this topic too (repeatable), besides `webhook.topics`.
        #[arg(long = "topic", requires = "verify")]
        topics: Vec<String>,
        /// Records per store transaction (default 1000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        chunk: u64,
        /// Log every record's outcome, not only the failures.
        #[arg(long)]
        log_records: bool,
    },
    /// Read the suppression list.
    Suppressions {
        /// What to read.
        #[command(subcommand)]
        command: SuppressionsCommand,
    },
    /// Account rates and state.
    Accounts {
        /// What to show.
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// What would happen to a message now (suppression, pause, quarantine, quota), without
    /// sending it.
    Check {
        /// The stream the message belongs to.
        #[arg(long)]
        stream: String,
        /// A recipient; repeat for several.
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// critical, normal or bulk (default: the stream's).
        #[arg(long)]
        priority: Option<Priority>,
        /// The SES template the message would use.
        #[arg(long)]
        template: Option<String>,
        /// The application has verified the recipients.
        #[arg(long, conflicts_with = "unverified")]
        verified: bool,
        /// The recipients are not verified (the default).
        #[arg(long)]
        unverified: bool,
    },
    /// Send one request through the same gate and transport as the sender function (the file
    /// outbox in local runs), and print the decision.
    Send {
        /// The send request (JSON; `-` for stdin).
        #[arg(long)]
        file: String,
    },
    /// Template policy: blocked templates and templates only for verified recipients.
    Policy {
        /// What to change.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Operator changes other than account transitions, newest first.
    Audit {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Bounces, read by hand.
    Bounces {
        /// What to do.
        #[command(subcommand)]
        command: BouncesCommand,
    },
    /// Recipient addresses: can they receive mail? Prevention's checks (DNS, provider rules,
    /// typos, throw-away services), nothing sent.
    Addresses {
        /// What to do.
        #[command(subcommand)]
        command: AddressesCommand,
    },
    /// A DNS server of known records for local runs: point `SESGUARD_DNS` at it.
    Dns {
        /// What to do.
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// SNS deliveries.
    Sns {
        /// What to do.
        #[command(subcommand)]
        command: SnsCommand,
    },
    /// Store administration.
    Store {
        /// What to do.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Simulate an incident minute by minute through the real routing, ingest and guard, with
    /// and without sesguard, on a store of its own (the `[guard]` settings of `--config`):
    /// print both timelines and write the picture of each account's bounce rate over time.
    /// The options below change the chosen scenario.
    Simulate {
        /// The scenario: `seed` (the seed incident; the operator resumes the cleaned stream on
        /// day 3 and it relapses), `hasty-resume` (no culprit stream: the account pauses, and
        /// the operator resumes it an hour later, at full traffic, fixing nothing), `timed-pause` (the
        /// operator pauses the primary for ten hours on day 2; the window slides over the line
        /// meanwhile).
        #[arg(long, default_value = "seed", value_parser = simulation::preset)]
        scenario: crate::app::simulate::Preset,
        /// Days simulated (1 to 30).
        #[arg(long)]
        days: Option<u32>,
        /// Messages a day, split evenly over the streams.
        #[arg(long)]
        daily_volume: Option<u64>,
        /// A stream and the bad share of its addresses over time:
        /// `NAME=FROM..TO@HOURS` in percent, `,critical` for critical mail, `,unverified` for
        /// addresses nobody has verified (repeat for each; the seed:
        /// `verification=3..20@24,unverified` and `transactional=0.5..0.5@0,critical`).
        #[arg(long = "stream", value_name = "SPEC")]
        streams: Vec<String>,
        /// The primary's 24-hour quota (the seed: 5,000,000).
        #[arg(long)]
        primary_quota: Option<u64>,
        /// The backup's 24-hour quota (the seed: 50,000).
        #[arg(long)]
        backup_quota: Option<u64>,
        /// The seed of the bad addresses and the feedback delays.
        #[arg(long)]
        seed: Option<u64>,
        /// The day on whose start the operator resumes the first stream after cleaning its
        /// list, with a relapse 45 minutes later (0: the operator does nothing).
        #[arg(long)]
        resume_day: Option<u32>,
        /// Also run with prevention on the unverified streams, with and without the guard, and
        /// draw the primary's bounce rate with and without prevention (`SVG` with
        /// `-prevention` before its extension).
        #[arg(long)]
        prevention: bool,
        /// The kinds of bad address, in percent of the bad ones (an assumed mix by default:
        /// `dead=20,typo=15,local=5,disposable=20,mailbox=40`); only `mailbox`, a missing
        /// mailbox at a live domain, cannot be caught before sending.
        #[arg(long, value_parser = simulation::bad_mix)]
        bad_mix: Option<crate::app::simulate::BadMix>,
        /// Also run the guard under the other profile (`standard`, `no_review`) and compare
        /// what each costs: mail deferred, failed over, the peaks.
        #[arg(long)]
        profiles: bool,
        /// Where the picture goes (SVG); a PNG is written beside it when `rsvg-convert` or
        /// Chromium is installed.
        #[arg(long, default_value = "target/simulation.svg")]
        svg: std::path::PathBuf,
    },
    /// The configuration file (`--config`): check it, or prepare it for `make deploy`.
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `sesguard config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration, list its accounts and streams, and say how much of a
    /// deployed function's environment its text takes.
    Check,
    /// Print the configuration as the `SesguardConfig` stack parameter for `sam deploy
    /// --parameter-overrides`: validated, without comments, quoted the way SAM reads it
    /// (`--json`: as a CloudFormation `Parameter`, `ParameterKey` and `ParameterValue`).
    DeployParameter,
}

/// `sesguard suppressions ...`
#[derive(Debug, Subcommand)]
pub enum SuppressionsCommand {
    /// One address's suppression (`null` when it is not suppressed).
    Get {
        /// The address; normalised like ingested ones.
        email: String,
    },
    /// Suppressed addresses.
    List {
        /// Only this reason: bounce, complaint, soft_bounce or manual.
        #[arg(long)]
        reason: Option<Reason>,
        /// At most this many.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// Suppress an address by hand (one suppressed already keeps its reason).
    Add {
        /// The address.
        email: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Lift an address's suppression.
    Remove {
        /// The address.
        email: String,
        /// Why (recorded in the audit log, with the removed record).
        #[arg(long)]
        reason: String,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Import addresses from a file (`-` for stdin), streamed: any size in bounded memory.
    Import {
        /// CSV (`email[,reason]`, an `email,...` header is skipped) or JSON lines
        /// (`{"email": ..., "reason": ...}`; an export imports again).
        file: String,
        /// The file's format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: LineFormat,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Export the list (or one reason of it), streamed page by page.
    Export {
        /// Where to write (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
        /// The format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: LineFormat,
        /// Only this reason.
        #[arg(long)]
        only: Option<Reason>,
    },
    /// Import an account's SES account-level suppression list.
    SesImport {
        /// The account.
        #[arg(long)]
        account: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Push the list (or one reason of it) to an account's SES account-level list.
    SesPush {
        /// The account.
        #[arg(long)]
        account: String,
        /// Only this reason.
        #[arg(long)]
        only: Option<Reason>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
}

/// `sesguard accounts ...`
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// State, window totals and rates of every account, or of one.
    Status {
        /// Only this account.
        name: Option<String>,
    },
    /// Review every account now, as the scheduled review does: timed pauses end, probation
    /// steps advance, auto-resume runs on the evidence there is.
    Review,
    /// When each account's SES feedback last arrived, beside the mail it sent in the last 24
    /// hours (SES's count and sesguard's): `silent` when mail went out but no feedback came
    /// within `--within` (the account is not guarded). Exits 1 when any account is silent.
    CheckFeedback {
        /// How recent feedback must be (`1h`, `24h`).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        within: std::time::Duration,
    },
    /// Pause an account, or quarantine one stream on it.
    Pause {
        /// The account.
        name: String,
        /// Why (recorded in history and the alert).
        #[arg(long)]
        reason: String,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// End the pause by itself after this long (`30m`, `2h`).
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "stream")]
        duration: Option<std::time::Duration>,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Resume a paused account, or lift a stream's quarantine: on the probation ramp
    /// (`[guard] probation`) unless `--no-probation`. On one already on probation: ends it.
    Resume {
        /// The account.
        name: String,
        /// Why (recorded in history and the alert).
        #[arg(long)]
        reason: String,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Back to full traffic at once, skipping probation (recorded in history).
        #[arg(long)]
        no_probation: bool,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// An account's send-rate limits and their use; with changes, changes them at run time
    /// (over earlier changes; the next send batch applies them).
    Limits {
        /// The account.
        name: String,
        /// Token bucket capacity (a burst).
        #[arg(long)]
        capacity: Option<f64>,
        /// Tokens added per second.
        #[arg(long)]
        refill_per_second: Option<f64>,
        /// Sends per minute (`none`: unlimited).
        #[arg(long, value_parser = window_limit)]
        per_minute: Option<WindowLimit>,
        /// Sends per hour (`none`: unlimited).
        #[arg(long, value_parser = window_limit)]
        per_hour: Option<WindowLimit>,
        /// Sends per day (`none`: unlimited).
        #[arg(long, value_parser = window_limit)]
        per_day: Option<WindowLimit>,
        /// Switch the limiter on (`true`) or off (`false`).
        #[arg(long)]
        enabled: Option<bool>,
        /// Fill the token bucket now.
        #[arg(long)]
        refill: bool,
        /// Why (required with a change; recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// An account's state changes, newest first.
    History {
        /// The account.
        name: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `sesguard policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the template policy, after applying any changes given.
    Templates {
        /// Block this template (repeatable).
        #[arg(long)]
        block: Vec<String>,
        /// Unblock this template (repeatable).
        #[arg(long)]
        unblock: Vec<String>,
        /// Send this template only to verified recipients (repeatable).
        #[arg(long)]
        verified_only: Vec<String>,
        /// Let this template go to any recipient again (repeatable).
        #[arg(long)]
        any_recipient: Vec<String>,
        /// Why (required with a change; recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Who is acting (default: $USER).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
}

/// `sesguard sns ...`
#[derive(Debug, Subcommand)]
pub enum SnsCommand {
    /// Verify one SNS HTTP envelope as the webhook would (topic, certificate URL, age,
    /// certificate, signature) without acting on it; exits 0 only when it is valid.
    Verify {
        /// The envelope (`-` for stdin).
        file: String,
        /// Trust this PEM certificate as if fetched from the SigningCertURL.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Allow this topic too (repeatable), besides `webhook.topics`.
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
}

/// `sesguard bounces ...`
#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Print each bounced recipient's reason, class and effect on the address (suppress,
    /// soft bounce or record only) and what decided it, as ingest would, recording nothing.
    /// Reads raw SES JSON, an SNS envelope, or an SNS or SQS Lambda event.
    Explain {
        /// Files (`-` for stdin).
        #[arg(required = true)]
        files: Vec<String>,
    },
}

/// `sesguard addresses ...`
#[derive(Debug, Subcommand)]
pub enum AddressesCommand {
    /// Whether each address can receive mail, why not, and what a typo probably meant; exits
    /// 1 when one cannot, 2 when one is not an address.
    Check {
        /// Addresses.
        addresses: Vec<String>,
        /// A file of addresses, one a line (`-` for stdin).
        #[arg(long)]
        file: Option<String>,
    },
}

/// `sesguard dns ...`
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Answer DNS questions over UDP from a zone file (see `events/dns/zone.txt`) until
    /// stopped: tests, the demo and the rehearsal set `SESGUARD_DNS` to it.
    Serve {
        /// The zone file.
        #[arg(long)]
        zone: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:5353")]
        listen: std::net::SocketAddr,
    },
}

/// `sesguard store ...`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the DynamoDB tables (for a local DynamoDB-compatible server; in AWS the
    /// template creates them). A no-op for SQLite, which creates its schema on open.
    CreateTables,
}

/// A window limit on the command line: a number of sends, or `none` (unlimited).
#[derive(Debug, Clone, Copy)]
pub struct WindowLimit(Option<u64>);

fn window_limit(text: &str) -> Result<WindowLimit, String> {
    match text {
        "none" => Ok(WindowLimit(None)),
        _ => text
            .parse()
            .map(|n| WindowLimit(Some(n)))
            .map_err(|_| format!("`{text}` is not a number of sends or `none`")),
    }
}
