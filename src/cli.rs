//! The `sesguard` command line: the same use cases as the functions, on the store named by
//! `--store` (default an SQLite file under `.sesguard/`). Every command takes `--json`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::accounts;
use crate::check;
use crate::control::{Action, Control};
use crate::deps::Deps;
use crate::domain::address::EmailAddress;
use crate::domain::envelope::EnvelopeError;
use crate::domain::routing::Priority;
use crate::domain::send::SendRequest;
use crate::domain::suppression::{Reason, Suppression};
use crate::handlers::ingest::{decode, log_report};
use crate::ingest::{Inbound, InboundError, Report};
use crate::ports::CertificateSource;
use crate::sender::{Decision, Queued, Sender, SenderMemory};
use crate::sns_http::{GivenCertificate, SnsHttp};
use crate::store::dynamodb::DynamoStore;
use crate::store::{DEFAULT_STORE, StoreUrl};
use crate::webhook::{Certificates, Webhook};
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

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let deps = Deps::build(cli.config.as_deref(), &cli.store).await?;
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
            let action = Action::Pause { stream, duration };
            control(&deps, &name, &action, &reason, &actor, cli.json).await
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
            control(
                &deps,
                &name,
                &Action::Resume { stream },
                &reason,
                &actor,
                cli.json,
            )
            .await
        }
        Command::Accounts {
            command: AccountsCommand::History { name, limit },
        } => {
            if deps.config.account(&name).is_none() {
                anyhow::bail!("unknown account `{name}`: not in the configuration");
            }
            let history = deps.store.history(&name, limit).await?;
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
            let statuses = accounts::status(
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
                },
        } => {
            let mut policy = deps.store.template_policy().await?;
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
                deps.store.put_template_policy(&policy).await?;
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

async fn control(
    deps: &Deps,
    account: &str,
    action: &Action,
    reason: &str,
    actor: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = deps.store.as_ref();
    let entry = Control::new(
        store,
        store,
        deps.alerts.as_ref(),
        deps.ses.as_ref(),
        &deps.config,
    )
    .apply(account, action, reason, actor, deps.clock.now())
    .await?;
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

async fn ingest(deps: &Deps, files: &[String], json: bool) -> anyhow::Result<ExitCode> {
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
    deps: &Deps,
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
    }
    Ok(ExitCode::SUCCESS)
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

fn print_status_table(statuses: &[accounts::AccountStatus]) {
    say!(
        "{:<24} {:<8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>10}",
        "ACCOUNT",
        "STATE",
        "SENDS",
        "DELIVERED",
        "HARD",
        "SOFT",
        "COMPL",
        "BOUNCE",
        "COMPLAINT"
    );
    for s in statuses {
        let c = &s.counts;
        say!(
            "{:<24} {:<8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7.2}% {:>9.3}%",
            s.name,
            s.state,
            c.sends,
            c.deliveries,
            c.hard_bounces,
            c.soft_bounces,
            c.complaints,
            s.bounce_rate * 100.0,
            s.complaint_rate * 100.0
        );
    }
}
