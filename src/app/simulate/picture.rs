//! An outcome told: the timeline and figures as text, and the picture of both runs.

use super::*;

/// The outcome as text: its timeline, then its figures.
pub fn report(title: &str, out: &Outcome, min_volume: u64) -> String {
    let mut text = format!("== {title}\n");
    let mut line = |l: String| {
        text.push_str("  ");
        text.push_str(&l);
        text.push('\n');
    };
    for entry in &out.timeline {
        line(entry.clone());
    }
    for (account, (rate, minute)) in &out.peak {
        line(format!(
            "peak {account}: {:.2} % (counting bounces in flight) at {}",
            rate * 100.0,
            clock_text(START + minute * MINUTE)
        ));
    }
    for ((account, stream), rate) in &out.peak_stream {
        line(format!("peak {account} / {stream}: {:.2} %", rate * 100.0));
    }
    for ((account, stream), n) in &out.sent {
        line(format!("sent {account} / {stream}: {n}"));
    }
    for ((stream, priority), n) in &out.deferred {
        line(format!(
            "deferred {stream} ({}): {n} messages",
            priority.as_str()
        ));
    }
    line(format!(
        "deferral decisions (retries included): {}",
        out.deferrals
    ));
    let (rate, sends, bad) = out.backup_any_volume;
    if sends > 0 {
        line(format!(
            "backup at any volume (below the {min_volume} sends at which rates are judged too): at most {:.1} %, {bad} bounces (in flight included) over {sends} sends",
            rate * 100.0
        ));
    }
    for (stream, wait) in &out.longest_wait {
        line(format!("longest wait {stream}: {} min", wait / MINUTE));
    }
    for account in ["primary", "backup"] {
        line(format!(
            "sent by {account} while over the critical level as the guard could see it: {}",
            out.sent_over_the_line.get(account).copied().unwrap_or(0)
        ));
    }
    if !out.prevented.is_empty() {
        let kinds: Vec<String> = out
            .prevented
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind.name()))
            .collect();
        line(format!(
            "prevented before sending: {} ({})",
            out.prevented.values().sum::<u64>(),
            kinds.join(", ")
        ));
    }
    line(format!(
        "generated {}, sent {}, still deferred {}, backup peak 24 h sends {}",
        out.generated,
        out.sent.values().sum::<u64>(),
        out.pending_at_end,
        out.backup_peak_24h
    ));
    text
}

/// The cost of a guarded run beside others: one line per run, named, with the peaks, the mail
/// deferred and failed over, and what was still waiting at the end.
pub fn compare(runs: &[(&str, &Outcome)]) -> String {
    let mut text = String::from(
        "== runs compared\n  run                 peak primary  peak backup  deferred (messages)  failed over  still deferred\n",
    );
    for (name, out) in runs {
        let peak = |account: &str| {
            out.peak.get(account).map_or_else(
                || "-".to_owned(),
                |(rate, _)| format!("{:.2} %", rate * 100.0),
            )
        };
        let failed_over: u64 = out
            .sent
            .iter()
            .filter(|((account, _), _)| *account == "backup")
            .map(|(_, n)| n)
            .sum();
        text.push_str(&format!(
            "  {name:<19} {:>12}  {:>11}  {:>19}  {failed_over:>11}  {:>14}\n",
            peak("primary"),
            peak("backup"),
            out.deferred.values().sum::<u64>(),
            out.pending_at_end
        ));
    }
    text
}

/// Each account's bounce rate over time (as SES would see it) with and without sesguard, the
/// SES lines and sesguard's levels marked, and the guarded run's transitions annotated.
pub fn picture(guarded: &Outcome, unguarded: &Outcome, thresholds: &Thresholds) -> Chart {
    let hours = |minute: i64| minute as f64 / 60.0;
    let series = |out: &Outcome, pick: Pick| -> Vec<(f64, f64)> {
        out.rates
            .iter()
            .filter_map(|r| Some((hours(r.0), pick(r)?)))
            .collect()
    };
    let last = guarded
        .rates
        .last()
        .or(unguarded.rates.last())
        .map_or(24.0, |r| hours(r.0).max(1.0));
    let highest = guarded
        .rates
        .iter()
        .chain(&unguarded.rates)
        .flat_map(|r| [r.1, r.2])
        .flatten()
        .fold(SES_PAUSE, f64::max);
    Chart {
        lines: vec![
            Line {
                label: "primary, no sesguard".into(),
                color: "#999",
                dashed: true,
                points: series(unguarded, |r| r.1),
            },
            Line {
                label: "primary, sesguard".into(),
                color: "#d62728",
                dashed: false,
                points: series(guarded, |r| r.1),
            },
            Line {
                label: "backup, sesguard".into(),
                color: "#1f77b4",
                dashed: false,
                points: series(guarded, |r| r.2),
            },
        ],
        levels: vec![
            Level::rate("SES pause", SES_PAUSE, "#000"),
            Level::rate("SES review", SES_REVIEW, "#555"),
            Level::rate("pause", thresholds.bounce_pause, "#c33"),
            Level::rate("warn", thresholds.bounce_warn, "#e90"),
        ],
        marks: spaced(&guarded.transitions)
            .map(|(minute, what)| Mark {
                x: hours(*minute),
                label: what.clone(),
            })
            .collect(),
        ..over_the_incident(
            "Bounce rate as SES sees it, with and without sesguard",
            last,
            highest,
        )
    }
}

/// A chart over the incident's days: its title, the hours on the x axis up to `last`, rates up
/// to `highest`; no lines, levels or marks yet.
fn over_the_incident(title: &str, last: f64, highest: f64) -> Chart {
    let days = (last / 24.0).ceil() as u32;
    Chart {
        title: title.into(),
        x_caption:
            "hours of the simulated incident (the window is 24 h; feedback in flight counted)"
                .into(),
        x_ticks: (0..=days)
            .map(|d| (f64::from(d) * 24.0, format!("{} h", d * 24)))
            .collect(),
        y_max: highest * 1.1,
        y_format: None,
        x_range: (0.0, f64::from(days) * 24.0),
        lines: Vec::new(),
        levels: Vec::new(),
        marks: Vec::new(),
    }
}

/// The primary's bounce rate over time (as SES would see it) in each of `runs` (a label, a
/// colour, dashed or not, the outcome), with SES's lines and sesguard's levels.
pub fn primary_rates(
    runs: &[(&str, &'static str, bool, &Outcome)],
    thresholds: &Thresholds,
) -> Chart {
    let hours = |minute: i64| minute as f64 / 60.0;
    let last = runs
        .iter()
        .filter_map(|r| r.3.rates.last())
        .map(|r| hours(r.0))
        .fold(24.0, f64::max);
    let highest = runs
        .iter()
        .flat_map(|r| &r.3.rates)
        .filter_map(|r| r.1)
        .fold(SES_PAUSE, f64::max);
    Chart {
        lines: runs
            .iter()
            .map(|(label, color, dashed, out)| Line {
                label: (*label).to_owned(),
                color,
                dashed: *dashed,
                points: out
                    .rates
                    .iter()
                    .filter_map(|r| Some((hours(r.0), r.1?)))
                    .collect(),
            })
            .collect(),
        levels: vec![
            Level::rate("SES pause", SES_PAUSE, "#000"),
            Level::rate("SES review", SES_REVIEW, "#555"),
            Level::rate("pause", thresholds.bounce_pause, "#c33"),
        ],
        ..over_the_incident(
            "The primary's bounce rate as SES sees it, with and without prevention",
            last,
            highest,
        )
    }
}

/// Reads one account's rate from a point of [`Outcome::rates`].
type Pick = fn(&(i64, Option<f64>, Option<f64>)) -> Option<f64>;

/// The transitions far enough apart (90 minutes) to be read on the picture: quarantines,
/// pauses and resumes first, then warnings and recoveries where there is room.
fn spaced(transitions: &[(i64, String)]) -> impl Iterator<Item = &(i64, String)> {
    let minor = |label: &str| label.ends_with(" warning") || label.ends_with(" active");
    let mut kept: Vec<&(i64, String)> = Vec::new();
    for pass_minor in [false, true] {
        for transition in transitions.iter().filter(|t| minor(&t.1) == pass_minor) {
            if kept.iter().all(|k| (k.0 - transition.0).abs() >= 90) {
                kept.push(transition);
            }
        }
    }
    kept.sort_by_key(|k| k.0);
    kept.into_iter()
}

/// Thresholds out of reach: the guard never acts.
pub fn unguarded(guard: &crate::config::GuardConfig) -> crate::config::GuardConfig {
    let mut guard = guard.clone();
    guard.thresholds.bounce_warn = Some(0.97);
    guard.thresholds.bounce_pause = Some(0.98);
    guard.thresholds.bounce_critical = Some(0.99);
    guard.thresholds.complaint_warn = Some(0.97);
    guard.thresholds.complaint_pause = Some(0.98);
    guard.thresholds.complaint_critical = Some(0.99);
    guard
}
