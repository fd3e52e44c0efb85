//! Human-readable output: tables and lines for the commands' answers (`--json` prints the
//! answers themselves).

use super::*;
use crate::app::prevent::{PreventionStatus, by_reason};
use crate::domain::feedback::notification::BounceType;
use crate::domain::reputation::providers::summaries_for;

/// Prints `value` as JSON with `--json`, else as `human` prints it: the command succeeded.
pub(super) fn answer<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<ExitCode> {
    if json {
        say!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_transition(entry: &HistoryEntry, json: bool) -> anyhow::Result<ExitCode> {
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

pub(super) fn print_limits(view: &LimitsView) {
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

pub(super) fn print_suppression(s: &Suppression) {
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
    if let (Some(reason), Some(kind)) = (s.bounce_reason, s.bounce_type.as_deref()) {
        let class = reason.class(BounceType::from_name(kind));
        say!("bounce reason    {reason} ({class} class)");
    }
    say!("complaint type   {}", optional(&s.complaint_feedback_type));
    say!("count            {}", s.count);
    say!("first seen       {}", s.first_seen);
    say!("last seen        {}", s.last_seen);
}

pub(super) fn print_status_table(statuses: &[status::AccountStatus]) {
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

/// Each account's mailbox providers, when any answered in the window.
/// Prevention today, per stream: its mode, and the recipients it refused and flagged by reason.
pub(super) fn print_prevention(prevention: &PreventionStatus) {
    say!("");
    say!(
        "prevention on {} (DNS {}, {} throw-away domains listed)",
        prevention.day,
        prevention.dns,
        prevention.disposable_domains
    );
    say!("{:<16} {:<7} {:<40} FLAGGED", "STREAM", "MODE", "REFUSED");
    for s in &prevention.streams {
        say!(
            "{:<16} {:<7} {:<40} {}",
            s.stream,
            s.mode,
            by_reason(&s.refused),
            by_reason(&s.flagged)
        );
    }
}

pub(super) fn print_provider_tables(statuses: &[status::AccountStatus]) {
    for s in statuses.iter().filter(|s| !s.providers.is_empty()) {
        say!("");
        say!(
            "{:<16} {:<16} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}  FINDING",
            "ACCOUNT",
            "PROVIDER",
            "DELIVERED",
            "ADDRESS",
            "TEMP",
            "BLOCKED",
            "AUTH",
            "POLICY",
            "COMPL",
            "REFUSED"
        );
        for p in &s.providers {
            let c = &p.counts;
            let finding = summaries_for(&s.provider_findings, &p.provider);
            say!(
                "{:<16} {:<16} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>7.2}%  {}",
                s.name,
                p.provider,
                c.deliveries,
                c.address_bounces,
                c.temporary_bounces,
                c.blocked,
                c.authentication,
                c.policy,
                c.complaints,
                p.sender_bounce_rate * 100.0,
                if finding.is_empty() { "-" } else { &finding }
            );
        }
    }
}
