//! `sesguard suppressions ...`: look up, add, remove, list, import and export suppressions,
//! and move them to and from SES's account-level list.

use super::*;
use crate::domain::common::timestamp::Timestamp;

/// Streams `file` into the store in chunks, with a progress bar by bytes read on stderr.
async fn import(
    admin: &Admin<'_>,
    file: &str,
    format: LineFormat,
    reason: &str,
    now: Timestamp,
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

/// `sesguard suppressions ...`: one function a command.
pub(super) async fn suppressions(
    deps: &Context,
    command: SuppressionsCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        SuppressionsCommand::Get { email } => get(deps, &email, json).await,
        SuppressionsCommand::List { reason, limit } => list(deps, reason, limit, json).await,
        SuppressionsCommand::Add {
            email,
            reason,
            actor,
        } => {
            add(
                &Admin::of(deps, actor),
                &email,
                &reason,
                deps.clock.now(),
                json,
            )
            .await
        }
        SuppressionsCommand::Remove {
            email,
            reason,
            actor,
        } => {
            remove(
                &Admin::of(deps, actor),
                &email,
                &reason,
                deps.clock.now(),
                json,
            )
            .await
        }
        SuppressionsCommand::Import {
            file,
            format,
            reason,
            actor,
        } => import_file(deps, &file, format, &reason, actor, json).await,
        SuppressionsCommand::Export {
            output,
            format,
            only,
        } => {
            let written = export(deps, output.as_deref(), format, only).await?;
            if output.is_some() {
                eprintln!("{written} addresses exported");
            }
            Ok(ExitCode::SUCCESS)
        }
        SuppressionsCommand::SesImport {
            account,
            reason,
            actor,
        } => import_from_ses(deps, &account, &reason, actor, json).await,
        SuppressionsCommand::SesPush {
            account,
            only,
            reason,
            actor,
        } => push_to_ses(deps, &account, only, &reason, actor, json).await,
    }
}

/// `sesguard suppressions get EMAIL`: the address's suppression, if any.
async fn get(deps: &Context, email: &str, json: bool) -> anyhow::Result<ExitCode> {
    let email = EmailAddress::parse(email)?;
    let found = deps.store.get(&email).await?;
    answer(json, &found, |found| match found {
        Some(s) => print_suppression(s),
        None => say!("{email} is not suppressed"),
    })
}

/// `sesguard suppressions list`: up to `limit` suppressions, page by page, as a table.
async fn list(
    deps: &Context,
    reason: Option<Reason>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
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
    answer(json, &all, |all| {
        say!("{:<40} {:<12} {:>6}  LAST SEEN", "EMAIL", "REASON", "COUNT");
        for s in all {
            say!(
                "{:<40} {:<12} {:>6}  {}",
                s.email,
                s.reason,
                s.count,
                s.last_seen
            );
        }
    })
}

/// `sesguard suppressions add EMAIL`: suppresses the address by hand, or says it was already.
async fn add(
    admin: &Admin<'_>,
    email: &str,
    reason: &str,
    now: Timestamp,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let added = admin.suppress(email, reason, now).await?;
    let suppression = admin.suppression(email).await?;
    answer(json, &suppression, |suppression| {
        if added {
            say!("{} suppressed ({})", suppression.email, suppression.reason);
        } else {
            say!(
                "{} was suppressed already ({})",
                suppression.email,
                suppression.reason
            );
        }
    })
}

/// `sesguard suppressions remove EMAIL`: lifts the address's suppression.
async fn remove(
    admin: &Admin<'_>,
    email: &str,
    reason: &str,
    now: Timestamp,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let removed = admin.unsuppress(email, reason, now).await?;
    answer(json, &removed, |removed| {
        say!(
            "{} is no longer suppressed (was: {})",
            removed.email,
            removed.reason
        );
    })
}

/// `sesguard suppressions import FILE`: imports the file and reports its lines; fails when any
/// line was invalid.
async fn import_file(
    deps: &Context,
    file: &str,
    format: LineFormat,
    reason: &str,
    actor: String,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let admin = Admin::of(deps, actor);
    let report = import(&admin, file, format, reason, deps.clock.now()).await?;
    answer(json, &report, |report| {
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
    })?;
    if report.invalid_count > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `sesguard suppressions ses-import`: imports an account's SES list step by step, each step
/// saved, so an interrupted import goes on from where it stopped when run again.
async fn import_from_ses(
    deps: &Context,
    account: &str,
    reason: &str,
    actor: String,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let admin = Admin::of(deps, actor);
    let mut total = ImportReport::default();
    loop {
        let step = admin
            .import_from_ses(account, reason, deps.clock.now())
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
    answer(json, &total, |total| {
        say!(
            "{} addresses on SES's list for {account}: {} suppressed, {} already suppressed",
            total.read,
            total.added,
            total.already
        );
    })
}

/// `sesguard suppressions ses-push`: pushes the list (or one reason of it) to an account's SES
/// list step by step.
async fn push_to_ses(
    deps: &Context,
    account: &str,
    only: Option<Reason>,
    reason: &str,
    actor: String,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let admin = Admin::of(deps, actor);
    let only = only.map(|r| r.as_str());
    let mut pushed = 0;
    loop {
        let step = admin
            .push_to_ses(account, only, reason, deps.clock.now())
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
    Ok(ExitCode::SUCCESS)
}
