//! Runs a parsed command line: builds the context through [`crate::wiring`], calls the use
//! case, prints the answer. The configuration commands read the file alone.

use super::*;
use crate::app::feedback_watch;
use crate::app::review::Guard;
use crate::domain::common::names::AccountName;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(done) = without_store(&cli).await {
        return done;
    }
    let wiring = Wiring::for_cli(cli.config.as_deref(), &cli.store).await?;
    let deps = wiring.context().await?;
    let json = cli.json;
    match cli.command {
        Command::Ingest {
            files,
            verify,
            cert,
            topics,
            chunk,
            log_records,
        } => {
            let options = bulk_ingest::Options {
                verify,
                cert,
                topics,
                chunk: usize::try_from(chunk).unwrap_or(usize::MAX),
                log_records,
            };
            bulk_ingest::ingest(&wiring, &deps, &files, options, json).await
        }
        Command::Suppressions { command } => suppressions(&deps, command, json).await,
        Command::Accounts { command } => accounts(&deps, command, json).await,
        Command::Check {
            stream,
            to,
            priority,
            template,
            verified,
            unverified: _,
        } => {
            check_message(
                &deps,
                &stream,
                &to,
                priority,
                template.as_deref(),
                verified,
                json,
            )
            .await
        }
        Command::Policy { command } => templates(&deps, command, json).await,
        Command::Audit { limit } => audit(&deps, limit, json).await,
        Command::Send { file } => send(&deps, file, json).await,
        Command::Sns {
            command: SnsCommand::Verify { file, cert, topics },
        } => verify_envelope(&wiring, &deps, &file, cert.as_deref(), &topics, json).await,
        Command::Config { command } => config(cli.config.as_deref(), &command, json),
        Command::Addresses {
            command: AddressesCommand::Check { addresses, file },
        } => addresses::check(&deps, addresses, file.as_deref(), json).await,
        Command::Simulate { .. } | Command::Bounces { .. } | Command::Dns { .. } => {
            unreachable!("run before the store is opened")
        }
        Command::Store {
            command: StoreCommand::CreateTables,
        } => create_tables(&wiring, &cli.store, json).await,
    }
}

/// The commands that open no store: the configuration commands read the file alone, `bounces
/// explain` the configuration and its files, the simulation runs on a store of its own, and
/// `dns serve` serves a zone file. `None` for every other command.
async fn without_store(cli: &Cli) -> Option<anyhow::Result<ExitCode>> {
    Some(match &cli.command {
        Command::Config { command } => config(cli.config.as_deref(), command, cli.json),
        Command::Bounces {
            command: BouncesCommand::Explain { files },
        } => bounces::explain_files(cli.config.as_deref(), files, cli.json),
        Command::Simulate { .. } => simulation::simulate(cli).await,
        Command::Dns {
            command: DnsCommand::Serve { zone, listen },
        } => addresses::serve(zone, *listen).await,
        _ => return None,
    })
}

/// `sesguard accounts ...`: a transition by hand, the review, history, status or limits.
async fn accounts(
    deps: &Context,
    command: AccountsCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        AccountsCommand::Pause {
            name,
            reason,
            stream,
            duration,
            actor,
        } => {
            let entry = Admin::of(deps, actor)
                .pause(&name, stream, duration, &reason, deps.clock.now())
                .await?;
            print_transition(&entry, json)
        }
        AccountsCommand::Resume {
            name,
            reason,
            stream,
            no_probation,
            actor,
        } => {
            let entry = Admin::of(deps, actor)
                .resume(&name, stream, !no_probation, &reason, deps.clock.now())
                .await?;
            print_transition(&entry, json)
        }
        AccountsCommand::Review => review(deps, json).await,
        AccountsCommand::CheckFeedback { within } => check_feedback(deps, within, json).await,
        AccountsCommand::History { name, limit } => history(deps, &name, limit, json).await,
        AccountsCommand::Status { name } => {
            let statuses = status::status(deps, deps.clock.now(), name.as_deref()).await?;
            let prevention = match name {
                None => Some(Admin::of(deps, "cli").prevention(deps.clock.now()).await?),
                Some(_) => None,
            };
            answer(json, &statuses, |statuses| {
                print_status_table(statuses);
                print_provider_tables(statuses);
                prevention.iter().for_each(print_prevention);
            })
        }
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
        } => {
            let admin = Admin::of(deps, actor);
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
            let view = limits(&admin, &name, &patch, refill, &reason, now).await?;
            answer(json, &view, print_limits)
        }
    }
}

/// `sesguard accounts check-feedback`: each account's last feedback; exits 1 when one is silent.
async fn check_feedback(
    deps: &Context,
    within: std::time::Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let checks = feedback_watch::check_all(deps, deps.clock.now(), within).await?;
    answer(json, &checks, |checks| {
        for check in checks {
            let last = check
                .last_feedback
                .map_or("none in the window".into(), |at| {
                    format!("{at} ({} s ago)", check.age_seconds.unwrap_or(0))
                });
            let ses = check
                .ses_sent_24h
                .map_or("unknown".into(), |n| n.to_string());
            say!(
                "{:<16} {:<9} last feedback {last}; sent in 24 h by SES {ses}, counted {}",
                check.account,
                format!("{:?}", check.verdict).to_lowercase(),
                check.counted_sends
            );
        }
    })?;
    let silent = checks
        .iter()
        .any(|c| c.verdict == feedback_watch::Verdict::Silent);
    Ok(if silent {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sesguard accounts review`: reviews every account now and prints what changed.
async fn review(deps: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let review = Guard::of(deps).review_all(deps.clock.now()).await?;
    if json {
        let alerts: Vec<_> = review.applied.iter().map(|a| &a.alert).collect();
        say!("{}", serde_json::to_string_pretty(&alerts)?);
    } else {
        say!("reviewed {} account(s)", review.gauges.len());
        for applied in &review.applied {
            print_transition(&applied.alert.change, false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sesguard accounts history NAME`: the account's state changes, newest first.
async fn history(deps: &Context, name: &str, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let history = Admin::of(deps, "cli").history(name, limit).await?;
    answer(json, &history, |history| {
        for e in history {
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
                "{}  {}{stream}: {} -> {}  {:?} by {}  {}{note}",
                e.at,
                e.account,
                e.from,
                e.to,
                e.cause,
                e.actor,
                e.rates_text()
            );
        }
    })
}

/// `sesguard accounts limits NAME ...`: the account's limits after the patch, if any, and the
/// refill, if asked for.
async fn limits(
    admin: &Admin<'_>,
    name: &str,
    patch: &LimitsPatch,
    refill: bool,
    reason: &str,
    now: crate::domain::common::timestamp::Timestamp,
) -> anyhow::Result<LimitsView> {
    let mut view = admin.limits(name, now).await?;
    if !patch.is_empty() {
        view = admin.set_limits(name, patch, reason, now).await?;
    }
    if refill {
        view = admin.refill(name, reason, now).await?;
    }
    Ok(view)
}

/// `sesguard check ...`: what would happen to a message now, without sending it.
async fn check_message(
    deps: &Context,
    stream: &str,
    to: &[String],
    priority: Option<Priority>,
    template: Option<&str>,
    recipient_verified: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let to = to
        .iter()
        .map(|t| EmailAddress::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let request = check::Request {
        stream,
        to: &to,
        template,
        recipient_verified,
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
    answer(json, &decision, |decision| {
        let detail = decision
            .account
            .clone()
            .or(decision.reason.clone())
            .unwrap_or_default();
        match decision.retry_after_seconds {
            Some(wait) => say!("{}: {detail} (retry in {wait}s)", decision.decision),
            None => say!("{}: {detail}", decision.decision),
        }
    })
}

/// `sesguard policy templates ...`: the template policy, after the changes given.
async fn templates(deps: &Context, command: PolicyCommand, json: bool) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Templates {
        block,
        unblock,
        verified_only,
        any_recipient,
        reason,
        actor,
    } = command;
    let admin = Admin::of(deps, actor);
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
    answer(json, &policy, |policy| {
        let list = |set: &std::collections::BTreeSet<String>| {
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        say!("blocked         {}", list(&policy.blocked));
        say!("verified only   {}", list(&policy.verified_only));
    })
}

/// `sesguard audit`: operator changes other than account transitions, newest first.
async fn audit(deps: &Context, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let entries = Admin::of(deps, "cli").audit_log(limit).await?;
    answer(json, &entries, |entries| {
        say!(
            "{:<25} {:<20} {:<20} {:<30} REASON",
            "AT",
            "ACTOR",
            "ACTION",
            "TARGET"
        );
        for e in entries {
            say!(
                "{:<25} {:<20} {:<20} {:<30} {}",
                e.at.to_string(),
                e.actor,
                e.action,
                e.target,
                e.reason
            );
        }
    })
}

/// `sesguard send --file FILE`: one request through the sender's gate and transport.
async fn send(deps: &Context, file: String, json: bool) -> anyhow::Result<ExitCode> {
    let text = read_input(&file)?;
    // Each run is a request of its own: its identity, unless it has an idempotency key.
    let origin = format!(
        "cli-{}-{}",
        deps.clock.now().as_millis(),
        std::process::id()
    );
    let queued = Queued {
        id: file.clone(),
        ..Queued::new(origin, SendRequest::parse(&text).map_err(|e| e.to_string()))
    };
    let memory = SenderMemory::default();
    let judged = Sender::of(deps, &memory)
        .send(vec![queued], deps.clock.now())
        .await?;
    let decision = &judged[0].decision;
    if json {
        say!("{}", serde_json::to_string_pretty(decision)?);
    } else {
        say!("{}: {}", decision.name(), serde_json::to_string(decision)?);
    }
    Ok(match decision {
        Decision::Invalid { .. } => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// `sesguard sns verify FILE`: checks one SNS envelope as the webhook would, acting on nothing.
async fn verify_envelope(
    wiring: &Wiring,
    deps: &Context,
    file: &str,
    cert: Option<&std::path::Path>,
    topics: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let body = read_input(file)?;
    let (source, confirmer) = wiring.certificate_source(cert)?;
    let certificates = Certificates::new(source);
    let verdict = Webhook::of(deps, &certificates, confirmer.as_ref())
        .with_topics(topics)
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
    if json {
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

/// `sesguard store create-tables`: the DynamoDB tables, for a local server.
async fn create_tables(wiring: &Wiring, store: &str, json: bool) -> anyhow::Result<ExitCode> {
    wiring.create_tables().await?;
    if json {
        say!("{}", serde_json::json!({"created": true}));
    } else {
        say!("store ready: {store}");
    }
    Ok(ExitCode::SUCCESS)
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
        // `--json`: CloudFormation's own parameter shape, for deploying without SAM's CLI.
        ConfigCommand::DeployParameter if json => say!(
            "{}",
            serde_json::json!({"ParameterKey": "SesguardConfig", "ParameterValue": deployed})
        ),
        ConfigCommand::DeployParameter => say!("{}", sam_parameter("SesguardConfig", &deployed)?),
        ConfigCommand::Check => {
            let streams: Vec<(&str, &[AccountName])> = config
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

pub(super) fn read_input(file: &str) -> anyhow::Result<String> {
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
