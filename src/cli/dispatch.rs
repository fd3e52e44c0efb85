//! Runs a parsed command line: builds the context through [`crate::wiring`], calls the use
//! case, prints the answer. The configuration commands read the file alone.

use super::*;
use crate::app::review::Guard;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The configuration commands read the file alone, before any store is opened.
    if let Command::Config { command } = &cli.command {
        return config(cli.config.as_deref(), command, cli.json);
    }
    // The simulation runs on a store of its own.
    if let Command::Simulate { .. } = &cli.command {
        return simulation::simulate(&cli).await;
    }
    let wiring = Wiring::for_cli(cli.config.as_deref(), &cli.store).await?;
    let deps = wiring.context().await?;
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
            bulk_ingest::ingest(&wiring, &deps, &files, options, cli.json).await
        }
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
            let entry = Admin::of(&deps, actor)
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
                    no_probation,
                    actor,
                },
        } => {
            let entry = Admin::of(&deps, actor)
                .resume(&name, stream, !no_probation, &reason, deps.clock.now())
                .await?;
            print_transition(&entry, cli.json)
        }
        Command::Accounts {
            command: AccountsCommand::Review,
        } => {
            let review = Guard::of(&deps).review_all(deps.clock.now()).await?;
            if cli.json {
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
        Command::Accounts {
            command: AccountsCommand::History { name, limit },
        } => {
            let history = Admin::of(&deps, "cli").history(&name, limit).await?;
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
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts {
            command: AccountsCommand::Status { name },
        } => {
            let statuses = status::status(&deps, deps.clock.now(), name.as_deref()).await?;
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
            let admin = Admin::of(&deps, actor);
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
            let entries = Admin::of(&deps, "cli").audit_log(limit).await?;
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
            let admin = Admin::of(&deps, actor);
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
            let judged = Sender::of(&deps, &memory)
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
            let (source, confirmer) = wiring.certificate_source(cert.as_deref())?;
            let certificates = Certificates::new(source);
            let verdict = Webhook::of(&deps, &certificates, confirmer.as_ref())
                .with_topics(&topics)
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
        Command::Simulate { .. } => unreachable!("run before the store is opened"),
        Command::Store {
            command: StoreCommand::CreateTables,
        } => {
            wiring.create_tables().await?;
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
        // `--json`: CloudFormation's own parameter shape, for deploying without SAM's CLI.
        ConfigCommand::DeployParameter if json => say!(
            "{}",
            serde_json::json!({"ParameterKey": "SesguardConfig", "ParameterValue": deployed})
        ),
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
