//! `sesguard suppressions ...`: look up, add, remove, list, import and export suppressions,
//! and move them to and from SES's account-level list.

use super::*;

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
    let admin = Admin::of(deps, "cli");
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

pub(super) async fn suppressions(
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
            let admin = Admin::of(deps, actor);
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
            let admin = Admin::of(deps, actor);
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
            let admin = Admin::of(deps, actor);
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
            // Step after step of the job, each saved: an interrupted import goes on from
            // where it stopped when run again.
            let admin = Admin::of(deps, actor);
            let mut total = ImportReport::default();
            loop {
                let step = admin
                    .import_from_ses(&account, &reason, deps.clock.now())
                    .await?;
                total.read += step.report.read;
                total.added += step.report.added;
                total.already += step.report.already;
                total.invalid_count += step.report.invalid_count;
                total.invalid.extend(
                    step.report
                        .invalid
                        .into_iter()
                        .take(100 - total.invalid.len().min(100)),
                );
                tracing::info!(job = %step.status.job, total = step.status.total, "import step done");
                if step.status.finished {
                    break;
                }
            }
            if json {
                say!("{}", serde_json::to_string_pretty(&total)?);
            } else {
                say!(
                    "{} addresses on SES's list for {account}: {} suppressed, {} already suppressed",
                    total.read,
                    total.added,
                    total.already
                );
            }
        }
        SuppressionsCommand::SesPush {
            account,
            only,
            reason,
            actor,
        } => {
            let admin = Admin::of(deps, actor);
            let only = only.map(|r| r.as_str());
            let mut pushed = 0;
            loop {
                let step = admin
                    .push_to_ses(&account, only, &reason, deps.clock.now())
                    .await?;
                pushed += step.pushed;
                tracing::info!(job = %step.status.job, total = step.status.total, "push step done");
                if step.status.finished {
                    break;
                }
            }
            if json {
                say!("{}", serde_json::json!({ "pushed": pushed }));
            } else {
                say!("{pushed} addresses pushed to SES's list for {account}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
