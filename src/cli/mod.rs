//! The `sesguard` command line: the same use cases as the functions, on the store named by
//! `--store` (default an SQLite file under `.sesguard/`). Every command takes `--json`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::sns_https::{GivenCertificate, SnsHttp};
use crate::adapters::store_url::{DEFAULT_STORE, StoreUrl};
use crate::app::Context;
use crate::app::admin::{Admin, ImportReport, LimitsView, LineFormat};
use crate::app::check;
use crate::app::ingest::{Inbound, InboundError, Report};
use crate::app::send::{Decision, Queued, Sender, SenderMemory};
use crate::app::status;
use crate::app::webhook::{Certificates, Webhook};
use crate::domain::common::address::EmailAddress;
use crate::domain::feedback::suppression::{Reason, Suppression};
use crate::domain::reputation::guard::HistoryEntry;
use crate::domain::sending::rate_limit::LimitsPatch;
use crate::domain::sending::request::SendRequest;
use crate::domain::sending::routing::Priority;
use crate::domain::sns::unwrap::EnvelopeError;
use crate::lambda::ingest::{decode, log_report};
use crate::ports::CertificateSource;
use crate::wiring::Wiring;
use std::sync::Arc;

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
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record SES notifications from files (`-` for stdin) in any accepted shape.
    Ingest {
        /// Files holding raw SES JSON, an SNS envelope, or an SNS or SQS Lambda event.
        #[arg(required = true)]
        files: Vec<String>,
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
    /// --parameter-overrides`: validated, without comments, quoted the way SAM reads it.
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
    /// Resume a paused account, or lift a stream's quarantine.
    Resume {
        /// The account.
        name: String,
        /// Why (recorded in history and the alert).
        #[arg(long)]
        reason: String,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
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

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The configuration commands read the file alone, before any store is opened.
    if let Command::Config { command } = &cli.command {
        return config(cli.config.as_deref(), command, cli.json);
    }
    let deps = Wiring::for_cli(cli.config.as_deref(), &cli.store)
        .await?
        .context()
        .await?;
    match cli.command {
        Command::Ingest { files } => ingest(&deps, &files, cli.json).await,
        Command::Suppressions { command } => suppressions(&deps, command, cli.json).await,
        Command::Accounts {
            command:
                AccountsCommand::Pause {
                    name,
                    reason,
                    stream,
                    duration,
                    actor,
                },
        } => {
            let entry = Admin::new(&deps, actor)
                .pause(&name, stream, duration, &reason, deps.clock.now())
                .await?;
            print_transition(&entry, cli.json)
        }
        Command::Accounts {
            command:
                AccountsCommand::Resume {
                    name,
                    reason,
                    stream,
                    actor,
                },
        } => {
            let entry = Admin::new(&deps, actor)
                .resume(&name, stream, &reason, deps.clock.now())
                .await?;
            print_transition(&entry, cli.json)
        }
        Command::Accounts {
            command: AccountsCommand::History { name, limit },
        } => {
            let history = Admin::new(&deps, "cli").history(&name, limit).await?;
            if cli.json {
                say!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                for e in &history {
                    let stream = e
                        .stream
                        .as_ref()
                        .map(|s| format!(" stream {s}"))
                        .unwrap_or_default();
                    let note = e
                        .note
                        .as_ref()
                        .map(|n| format!(" \"{n}\""))
                        .unwrap_or_default();
                    say!(
                        "{}  {}{stream}: {} -> {}  {:?} by {}  bounce {:.2} % complaint {:.3} % over {} sends{note}",
                        e.at,
                        e.account,
                        e.from,
                        e.to,
                        e.cause,
                        e.actor,
                        e.bounce_rate * 100.0,
                        e.complaint_rate * 100.0,
                        e.window_sends
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts {
            command: AccountsCommand::Status { name },
        } => {
            let statuses = status::status(
                deps.store.as_ref(),
                deps.ses.as_ref(),
                &deps.config,
                deps.clock.now(),
                name.as_deref(),
            )
            .await?;
            if cli.json {
                say!("{}", serde_json::to_string_pretty(&statuses)?);
            } else {
                print_status_table(&statuses);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            stream,
            to,
            priority,
            template,
            verified,
            unverified: _,
        } => {
            let to = to
                .iter()
                .map(|t| EmailAddress::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            let request = check::Request {
                stream: &stream,
                to: &to,
                template: template.as_deref(),
                recipient_verified: verified,
                priority,
            };
            let decision = check::check(
                deps.store.as_ref(),
                deps.ses.as_ref(),
                &deps.config,
                deps.clock.now(),
                &request,
            )
            .await?;
            if cli.json {
                say!("{}", serde_json::to_string_pretty(&decision)?);
            } else {
                let detail = decision
                    .account
                    .clone()
                    .or(decision.reason.clone())
                    .unwrap_or_default();
                match decision.retry_after_seconds {
                    Some(wait) => say!("{}: {detail} (retry in {wait}s)", decision.decision),
                    None => say!("{}: {detail}", decision.decision),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            command:
                PolicyCommand::Templates {
                    block,
                    unblock,
                    verified_only,
                    any_recipient,
                    reason,
                    actor,
                },
        } => {
            let admin = Admin::new(&deps, actor);
            let mut policy = admin.policy().await?;
            let changed = !(block.is_empty()
                && unblock.is_empty()
                && verified_only.is_empty()
                && any_recipient.is_empty());
            policy.blocked.extend(block);
            policy.verified_only.extend(verified_only);
            for template in unblock {
                policy.blocked.remove(&template);
            }
            for template in any_recipient {
                policy.verified_only.remove(&template);
            }
            if changed {
                let reason = reason.unwrap_or_default();
                policy = admin.set_policy(&policy, &reason, deps.clock.now()).await?;
            }
            if cli.json {
                say!("{}", serde_json::to_string_pretty(&policy)?);
            } else {
                let list = |set: &std::collections::BTreeSet<String>| {
                    set.iter().cloned().collect::<Vec<_>>().join(", ")
                };
                say!("blocked         {}", list(&policy.blocked));
                say!("verified only   {}", list(&policy.verified_only));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { limit } => {
            let entries = Admin::new(&deps, "cli").audit_log(limit).await?;
            if cli.json {
                say!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                say!(
                    "{:<25} {:<20} {:<20} {:<30} REASON",
                    "AT",
                    "ACTOR",
                    "ACTION",
                    "TARGET"
                );
                for e in &entries {
                    say!(
                        "{:<25} {:<20} {:<20} {:<30} {}",
                        e.at.to_string(),
                        e.actor,
                        e.action,
                        e.target,
                        e.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts {
            command:
                AccountsCommand::Limits {
                    name,
                    capacity,
                    refill_per_second,
                    per_minute,
                    per_hour,
                    per_day,
                    enabled,
                    refill,
                    reason,
                    actor,
                },
        } => {
            let admin = Admin::new(&deps, actor);
            let now = deps.clock.now();
            let patch = LimitsPatch {
                capacity,
                refill_per_second,
                per_minute: per_minute.map(|w| w.0),
                per_hour: per_hour.map(|w| w.0),
                per_day: per_day.map(|w| w.0),
                enabled,
            };
            let reason = reason.unwrap_or_default();
            let mut view = admin.limits(&name, now).await?;
            if !patch.is_empty() {
                view = admin.set_limits(&name, &patch, &reason, now).await?;
            }
            if refill {
                view = admin.refill(&name, &reason, now).await?;
            }
            if cli.json {
                say!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_limits(&view);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send { file } => {
            let text = read_input(&file)?;
            let queued = Queued {
                id: file.clone(),
                request: SendRequest::parse(&text).map_err(|e| e.to_string()),
                receive_count: 1,
            };
            let memory = SenderMemory::default();
            let judged = Sender::new(&deps, deps.transport.as_ref(), &memory)
                .send(vec![queued], deps.clock.now())
                .await?;
            let decision = &judged[0].decision;
            if cli.json {
                say!("{}", serde_json::to_string_pretty(decision)?);
            } else {
                say!("{}: {}", decision.name(), serde_json::to_string(decision)?);
            }
            Ok(match decision {
                Decision::Invalid { .. } => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            })
        }
        Command::Sns {
            command: SnsCommand::Verify { file, cert, topics },
        } => {
            let body = read_input(&file)?;
            let source: Arc<dyn CertificateSource> = match cert {
                Some(path) => Arc::new(GivenCertificate(
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                )),
                None => Arc::new(SnsHttp::new(deps.config.webhook.fetch_timeout)?),
            };
            let certificates = Certificates::new(source);
            let confirmer = SnsHttp::new(deps.config.webhook.fetch_timeout)?;
            let verdict = Webhook::new(&deps, &certificates, &confirmer, &topics)
                .verify(body.as_bytes(), deps.clock.now())
                .await;
            let (valid, reason) = match verdict {
                Ok(_) => (true, None),
                Err(answer) => (
                    false,
                    answer
                        .body()
                        .get("error")
                        .and_then(|e| e.as_str())
                        .map(str::to_owned),
                ),
            };
            if cli.json {
                say!("{}", serde_json::json!({"valid": valid, "reason": reason}));
            } else {
                say!("{}", reason.unwrap_or_else(|| "valid".into()));
            }
            Ok(if valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Config { command } => config(cli.config.as_deref(), &command, cli.json),
        Command::Store {
            command: StoreCommand::CreateTables,
        } => {
            if cli.store.parse::<StoreUrl>()? == StoreUrl::Dynamodb {
                let sdk = aws_config::load_from_env().await;
                DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), deps.config.tables())
                    .create_tables()
                    .await?;
            }
            if cli.json {
                say!("{}", serde_json::json!({"created": true}));
            } else {
                say!("store ready: {}", cli.store);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sesguard config ...`: needs the file itself, not the store.
fn config(
    path: Option<&std::path::Path>,
    command: &ConfigCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::config::{Config, DEPLOYED_TEXT_LIMIT};
    let path = path.context("no configuration file: give --config PATH or SESGUARD_CONFIG")?;
    let origin = path.display().to_string();
    let (config, deployed) = Config::for_deployment(&Config::read(path)?, &origin)?;
    match command {
        ConfigCommand::DeployParameter => say!("{}", sam_parameter("SesguardConfig", &deployed)?),
        ConfigCommand::Check => {
            let streams: Vec<(&str, &[String])> = config
                .streams
                .iter()
                .map(|s| (s.name.as_str(), s.accounts.as_slice()))
                .collect();
            if json {
                let accounts: Vec<Value> = config
                    .accounts
                    .iter()
                    .map(|a| serde_json::json!({"name": a.name, "region": a.region}))
                    .collect();
                let streams: Vec<Value> = streams
                    .iter()
                    .map(|(name, accounts)| serde_json::json!({"name": name, "accounts": accounts}))
                    .collect();
                say!(
                    "{}",
                    serde_json::json!({
                        "valid": true,
                        "accounts": accounts,
                        "streams": streams,
                        "deployed_bytes": deployed.len(),
                        "deployed_limit": DEPLOYED_TEXT_LIMIT,
                    })
                );
            } else {
                say!("{origin}: valid");
                for account in &config.accounts {
                    say!("  account {} ({})", account.name, account.region);
                }
                for (name, accounts) in &streams {
                    say!("  stream {name} -> {}", accounts.join(", "));
                }
                say!(
                    "  deployed text: {} of {DEPLOYED_TEXT_LIMIT} bytes",
                    deployed.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `KEY="VALUE"` as `sam deploy --parameter-overrides` reads it: it splits its argument at
/// spaces outside quotes and, inside them, turns `\"` back into `"`. It leaves other backslash
/// pairs as they are, so a value with backslashes could arrive changed: those are refused.
fn sam_parameter(key: &str, value: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !value.contains('\\'),
        "the {key} parameter cannot hold a backslash: `sam deploy --parameter-overrides` would change it"
    );
    Ok(format!("{key}=\"{}\"", value.replace('"', "\\\"")))
}

fn print_transition(entry: &HistoryEntry, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        say!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        let stream = entry
            .stream
            .as_ref()
            .map(|s| format!(" stream {s}"))
            .unwrap_or_default();
        say!("{}{stream}: {} -> {}", entry.account, entry.from, entry.to);
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams `file` into the store in chunks, with a progress bar by bytes read on stderr.
async fn import(
    admin: &Admin<'_>,
    file: &str,
    format: LineFormat,
    reason: &str,
    now: crate::domain::common::timestamp::Timestamp,
) -> anyhow::Result<ImportReport> {
    use std::io::BufRead as _;
    let mut importer = admin.importer(format, reason, now)?;
    let (input, size): (Box<dyn std::io::Read>, u64) = if file == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let opened = std::fs::File::open(file).with_context(|| format!("reading {file}"))?;
        let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(opened), size)
    };
    let progress = if size > 0 {
        indicatif::ProgressBar::new(size).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}",
            )
            .expect("a valid template"),
        )
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, input);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {file}"))?;
        if read == 0 {
            break;
        }
        progress.inc(read as u64);
        importer.line(&line).await?;
    }
    progress.finish_and_clear();
    let report = importer.finish(file, reason).await?;
    Ok(report)
}

/// Writes the list page by page to `output` (stdout without one), with a spinner counting
/// addresses on stderr. Returns how many were written.
async fn export(
    deps: &Context,
    output: Option<&std::path::Path>,
    format: LineFormat,
    only: Option<Reason>,
) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let mut out: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} addresses {per_sec}")
            .expect("a valid template"),
    );
    let write_error = |e: std::io::Error| -> anyhow::Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        anyhow::Error::new(e).context("writing the export")
    };
    if let Some(header) = format.header() {
        writeln!(out, "{header}").map_err(write_error)?;
    }
    let admin = Admin::new(deps, "cli");
    let only = only.map(|r| r.as_str());
    let mut cursor: Option<String> = None;
    let mut written = 0;
    loop {
        let page = admin.suppressions(only, cursor.as_deref(), 1000).await?;
        for suppression in &page.items {
            writeln!(out, "{}", format.line(suppression)).map_err(write_error)?;
        }
        written += page.items.len() as u64;
        progress.set_position(written);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.flush().map_err(write_error)?;
    progress.finish_and_clear();
    Ok(written)
}

fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

async fn ingest(deps: &Context, files: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let mut report = Report::default();
    for file in files {
        let text = read_input(file)?;
        let records = match serde_json::from_str::<Value>(&text) {
            Ok(value) => decode(value, file).1,
            Err(error) => vec![Inbound {
                id: file.clone(),
                sns: None,
                content: Err(InboundError::Envelope(EnvelopeError::NotJson(error))),
            }],
        };
        let part = deps.ingest(records, deps.clock.now()).await;
        log_report(&part);
        report.extend(part);
    }
    let summary = report.summary();
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

async fn suppressions(
    deps: &Context,
    command: SuppressionsCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        SuppressionsCommand::Get { email } => {
            let email = EmailAddress::parse(&email)?;
            let found = deps.store.get(&email).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                match &found {
                    Some(s) => print_suppression(s),
                    None => say!("{email} is not suppressed"),
                }
            }
        }
        SuppressionsCommand::List { reason, limit } => {
            let mut all: Vec<Suppression> = Vec::new();
            let mut cursor: Option<String> = None;
            while all.len() < limit {
                let page = deps
                    .store
                    .list(reason, cursor.as_deref(), (limit - all.len()).min(1000))
                    .await?;
                all.extend(page.items);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if json {
                say!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                say!("{:<40} {:<12} {:>6}  LAST SEEN", "EMAIL", "REASON", "COUNT");
                for s in &all {
                    say!(
                        "{:<40} {:<12} {:>6}  {}",
                        s.email,
                        s.reason,
                        s.count,
                        s.last_seen
                    );
                }
            }
        }
        SuppressionsCommand::Add {
            email,
            reason,
            actor,
        } => {
            let admin = Admin::new(deps, actor);
            let added = admin.suppress(&email, &reason, deps.clock.now()).await?;
            let suppression = admin.suppression(&email).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&suppression)?);
            } else if added {
                say!("{} suppressed ({})", suppression.email, suppression.reason);
            } else {
                say!(
                    "{} was suppressed already ({})",
                    suppression.email,
                    suppression.reason
                );
            }
        }
        SuppressionsCommand::Remove {
            email,
            reason,
            actor,
        } => {
            let admin = Admin::new(deps, actor);
            let removed = admin.unsuppress(&email, &reason, deps.clock.now()).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&removed)?);
            } else {
                say!(
                    "{} is no longer suppressed (was: {})",
                    removed.email,
                    removed.reason
                );
            }
        }
        SuppressionsCommand::Import {
            file,
            format,
            reason,
            actor,
        } => {
            let admin = Admin::new(deps, actor);
            let report = import(&admin, &file, format, &reason, deps.clock.now()).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say!(
                    "{} lines: {} suppressed, {} already suppressed, {} invalid",
                    report.read,
                    report.added,
                    report.already,
                    report.invalid_count
                );
                for invalid in &report.invalid {
                    say!("  line {}: {}", invalid.line, invalid.error);
                }
            }
            if report.invalid_count > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        SuppressionsCommand::Export {
            output,
            format,
            only,
        } => {
            let written = export(deps, output.as_deref(), format, only).await?;
            if output.is_some() {
                eprintln!("{written} addresses exported");
            }
        }
        SuppressionsCommand::SesImport {
            account,
            reason,
            actor,
        } => {
            let admin = Admin::new(deps, actor);
            let report = admin
                .import_from_ses(&account, &reason, deps.clock.now())
                .await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say!(
                    "{} addresses on SES's list for {account}: {} suppressed, {} already suppressed",
                    report.read,
                    report.added,
                    report.already
                );
            }
        }
        SuppressionsCommand::SesPush {
            account,
            only,
            reason,
            actor,
        } => {
            let admin = Admin::new(deps, actor);
            let only = only.map(|r| r.as_str());
            let pushed = admin
                .push_to_ses(&account, only, &reason, deps.clock.now())
                .await?;
            if json {
                say!("{}", serde_json::json!({ "pushed": pushed }));
            } else {
                say!("{pushed} addresses pushed to SES's list for {account}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_limits(view: &LimitsView) {
    let l = &view.effective;
    let window =
        |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    say!(
        "{}: bucket {} refilled {}/s, per minute {}, per hour {}, per day {}{}",
        view.account,
        l.capacity,
        l.refill_per_second,
        window(l.per_minute),
        window(l.per_hour),
        window(l.per_day),
        if l.enabled { "" } else { " (limiter off)" }
    );
    say!(
        "{:<8} {:>10} {:>10} {:>10} {:>7}  STATUS",
        "PERIOD",
        "LIMIT",
        "CURRENT",
        "AVAILABLE",
        "USED"
    );
    let p = &view.periods;
    for (name, period) in [
        ("second", p.second),
        ("minute", p.minute),
        ("hour", p.hour),
        ("day", p.day),
    ] {
        let or_dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
        say!(
            "{:<8} {:>10} {:>10} {:>10} {:>7}  {}",
            name,
            or_dash(period.limit),
            period.current,
            or_dash(period.available),
            period
                .percentage
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%")),
            period.status
        );
    }
}

fn print_suppression(s: &Suppression) {
    let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    say!("email            {}", s.email);
    say!("reason           {}", s.reason);
    say!(
        "bounce           {} / {}",
        optional(&s.bounce_type),
        optional(&s.bounce_subtype)
    );
    say!("status           {}", optional(&s.status));
    say!("diagnostic       {}", optional(&s.diagnostic_code));
    say!("complaint type   {}", optional(&s.complaint_feedback_type));
    say!("count            {}", s.count);
    say!("first seen       {}", s.first_seen);
    say!("last seen        {}", s.last_seen);
}

fn print_status_table(statuses: &[status::AccountStatus]) {
    say!(
        "{:<16} {:<8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>10} {:>12}  SENDING",
        "ACCOUNT",
        "STATE",
        "SENDS",
        "DELIVERED",
        "HARD",
        "SOFT",
        "COMPL",
        "BOUNCE",
        "COMPLAINT",
        "QUOTA LEFT"
    );
    for s in statuses {
        let c = &s.counts;
        let quota = s
            .daily_quota
            .map_or_else(|| "-".to_owned(), |q| q.remaining.to_string());
        let mut sending = if s.can_send {
            "yes".to_owned()
        } else {
            format!("no: {}", s.blocked_by.join(", "))
        };
        if let Some(wait) = s.wait_seconds {
            sending.push_str(&format!(" ({wait}s)"));
        }
        if !s.quarantined.is_empty() {
            sending.push_str(&format!("; quarantined: {}", s.quarantined.join(", ")));
        }
        say!(
            "{:<16} {:<8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7.2}% {:>9.3}% {:>12}  {}",
            s.name,
            s.state,
            c.sends,
            c.deliveries,
            c.hard_bounces,
            c.soft_bounces,
            c.complaints,
            s.bounce_rate * 100.0,
            s.complaint_rate * 100.0,
            quota,
            sending
        );
    }
}
