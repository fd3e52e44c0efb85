//! The admin function's status page (`GET /`): one self-contained HTML document, no script,
//! with every account and stream, their state and probation step, the rates against their
//! levels, quota use, the rates through the window drawn from the counter buckets (SVG),
//! recent transitions (each one was an alert), prevention's counts today, and a suppression
//! lookup; and the login form a browser signs in with (local `token` auth), whose answer is
//! [`crate::lambda::session`]'s.

use std::fmt::Write as _;

use lambda_http::Request;

use crate::app::admin::{Admin, AdminError};
use crate::app::plot::{Chart, Level, Line, Mark, escape, percent};
use crate::app::prevent::{PreventionStatus, by_reason};
use crate::app::status::{AccountStatus, RateSeries};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::suppression::Suppression;
use crate::domain::reputation::history::HistoryEntry;
use crate::domain::reputation::providers::{ProviderLines, summaries_for};
use crate::lambda::http::{Answer, html, query};
use crate::telemetry::error_chain;
use crate::wiring::AdminFunction;

/// SES reviews an account at a 5 % bounce rate and may pause it at 10 %; at 0.1 % and 0.5 %
/// complaints.
const SES_BOUNCE: (f64, f64) = (0.05, 0.10);
const SES_COMPLAINT: (f64, f64) = (0.001, 0.005);
const STREAM_COLORS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// What the page shows of one account.
pub struct AccountView<'a> {
    /// Its status now.
    pub status: &'a AccountStatus,
    /// Its rates through the window.
    pub series: &'a RateSeries,
    /// Its latest transitions, newest first.
    pub history: &'a [HistoryEntry],
    /// The lines its providers are judged by.
    pub provider_lines: &'a ProviderLines,
}

/// The answer to the page's suppression lookup.
pub enum Lookup {
    /// Nothing asked.
    None,
    /// The address is suppressed.
    Found(Suppression),
    /// It is not (or the text was not an address: the message says).
    NotFound(String, String),
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\
h1{margin:0 0 4px}section.account{border:1px solid #ddd;border-radius:8px;padding:12px 16px;margin:16px 0}\
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:white;font-size:13px;margin-left:8px}\
.active{background:#2a7}.warning{background:#e90}.paused{background:#c33}.probation{background:#37c}\
.quarantined{background:#a3a}table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #eee;\
padding:3px 10px;text-align:left;font-size:14px}.over{color:#c33;font-weight:bold}.muted{color:#777}\
.charts{display:flex;flex-wrap:wrap;gap:8px}svg.chart{max-width:100%;height:auto;border:1px solid #eee}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// The login form; `problem` says why the last try was refused.
pub fn login_form(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!("<p class=\"over\">{}</p>", escape(p)))
        .unwrap_or_default();
    page(
        "sesguard — sign in",
        &format!(
            "<h1>sesguard</h1><p>The status page needs the admin token (<code>SESGUARD_ADMIN_TOKEN</code>). \
             It is kept as a derived, HTTP-only cookie for this page's reads; changes go through the API or the CLI.</p>{problem}\
             <form method=\"post\" action=\"login\"><label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label> \
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>"
        ),
    )
}

fn clock(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(..16).unwrap_or(&text).replace('T', " ")
}

/// A small fraction as a percentage with two decimals.
fn fine_percent(value: f64) -> String {
    format!("{:.2} %", value * 100.0)
}

fn rate_cell(value: f64, warn: f64) -> String {
    let class = if value >= warn { " class=\"over\"" } else { "" };
    format!("<td{class}>{}</td>", percent(value))
}

/// A rate the page draws: its name, how to read it from a point, its levels and SES's.
type Metric = (&'static str, Pick, [f64; 3], (f64, f64));
type Pick = fn(&(Timestamp, f64, f64)) -> f64;

fn chart(
    view: &AccountView<'_>,
    what: &str,
    pick: Pick,
    levels: [f64; 3],
    ses: (f64, f64),
) -> String {
    let series = view.series;
    let start = series.start.as_millis() as f64;
    let hours = |at: Timestamp| (at.as_millis() as f64 - start) / 3_600_000.0;
    let window_hours = view.status.window_seconds as f64 / 3600.0;
    let mut lines = vec![Line {
        label: format!("{} (all)", view.status.name),
        color: "#d62728",
        dashed: false,
        points: series.total.iter().map(|p| (hours(p.0), pick(p))).collect(),
    }];
    for (i, (stream, points)) in series.streams.iter().enumerate() {
        lines.push(Line {
            label: stream.clone(),
            color: STREAM_COLORS[i % STREAM_COLORS.len()],
            dashed: true,
            points: points.iter().map(|p| (hours(p.0), pick(p))).collect(),
        });
    }
    let highest = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let [warn, pause, critical] = levels;
    let y_max = (highest.max(critical).max(ses.1) * 1.15).max(f64::EPSILON);
    let marks = view
        .history
        .iter()
        .filter(|e| e.at >= series.start)
        .map(|e| Mark {
            x: hours(e.at),
            label: format!("{} → {}", e.from, e.to),
        })
        .collect();
    Chart {
        title: format!("{} — {what} rate through the window", view.status.name),
        x_caption: format!(
            "hours since {} (UTC); each point: the mail sent since then",
            clock(series.start)
        ),
        x_ticks: quarter_ticks(window_hours),
        y_max,
        y_format: (y_max < 0.02).then_some(fine_percent as fn(f64) -> String),
        x_range: (0.0, window_hours),
        lines,
        levels: vec![
            Level::rate("warn", warn, "#e90"),
            Level::rate("pause", pause, "#c33"),
            Level::rate("critical", critical, "#800"),
            Level::rate("SES", ses.1, "#000"),
        ],
        marks,
    }
    .svg()
}

/// One account's section: its state, facts, rates against their levels, streams, charts and
/// latest transitions.
fn account(html: &mut String, view: &AccountView<'_>) {
    let s = view.status;
    let _ = write!(
        html,
        "<section class=\"account\" data-account=\"{}\" data-state=\"{}\"><h2>{}<span class=\"badge {}\">{}</span></h2>",
        escape(&s.name),
        s.state,
        escape(&s.name),
        s.state,
        s.state
    );
    let mut facts = state_facts(s);
    facts.extend(rate_facts(s));
    let _ = write!(html, "<p>{}</p>", facts.join(" · "));
    rates_table(html, s);
    streams_table(html, s);
    providers_table(html, s, view.provider_lines);
    charts(html, view);
    history_table(html, view.history);
    html.push_str("</section>");
}

/// What the account's state says: its cause, probation step, since when it is judged, quota
/// use and the streams blocking it.
fn state_facts(s: &AccountStatus) -> Vec<String> {
    let mut facts = Vec::new();
    if let Some(cause) = &s.cause {
        let cause = serde_json::to_value(cause).unwrap_or_default();
        facts.push(format!("cause {}", escape(cause.as_str().unwrap_or("?"))));
    }
    if let Some(probation) = &s.probation {
        facts.push(format!(
            "probation: {} of the traffic (step {})",
            percent(probation.share),
            probation.step + 1
        ));
    }
    if let Some(since) = s.judged_since {
        facts.push(format!("judged since {}", clock(since)));
    }
    if let Some(quota) = &s.daily_quota {
        facts.push(format!(
            "daily quota {} of {} used",
            quota.used, quota.limit
        ));
    }
    if !s.blocked_by.is_empty() {
        facts.push(format!("blocked by {}", s.blocked_by.join(", ")));
    }
    facts
}

/// What the account's rates say: the judged bounce rate and its bounds, the rates as SES sees
/// them and as it reports them, missing feedback, an operator's override of SES's line.
fn rate_facts(s: &AccountStatus) -> Vec<String> {
    let mut facts = Vec::new();
    let judged = &s.judged_bounds;
    facts.push(format!(
        "judged bounce {} ({}–{}) over {} sends",
        percent(s.judged.bounce_rate),
        percent(judged.bounce[0]),
        percent(judged.bounce[1]),
        s.judged.counts.sends
    ));
    facts.push(format!(
        "as SES sees it bounce {} complaint {}",
        percent(s.ses.bounce_rate),
        percent(s.ses.complaint_rate)
    ));
    if let Some(reported) = s.ses.reported {
        facts.push(format!(
            "SES reports bounce {} complaint {}",
            reported.bounce_rate.map_or_else(|| "-".to_owned(), percent),
            reported
                .complaint_rate
                .map_or_else(|| "-".to_owned(), percent)
        ));
    }
    if let Some(signal) = s.feedback_missing {
        facts.push(format!(
            "feedback missing: SES reports a higher {}",
            signal.noun()
        ));
    }
    if s.line_override.is_some() {
        facts.push("resumed by an operator over SES's line".to_owned());
    }
    facts
}

/// The account's rates now against its levels and SES's, with its sends in the window.
fn rates_table(html: &mut String, s: &AccountStatus) {
    let t = &s.thresholds;
    let _ = write!(
        html,
        "<table class=\"rates\"><tr><th></th><th>now</th><th>warn</th><th>pause</th><th>critical</th><th>SES</th><th>sends in the window</th></tr>\
         <tr><th>bounces</th>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\
         <tr><th>complaints</th>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr></table>",
        rate_cell(s.bounce_rate, t.bounce_warn),
        percent(t.bounce_warn),
        percent(t.bounce_pause),
        percent(t.bounce_critical),
        percent(SES_BOUNCE.1),
        s.counts.sends,
        rate_cell(s.complaint_rate, t.complaint_warn),
        percent(t.complaint_warn),
        percent(t.complaint_pause),
        percent(t.complaint_critical),
        percent(SES_COMPLAINT.1),
    );
}

/// Each stream on the account: its state, share, sends and rates (none without streams).
fn streams_table(html: &mut String, s: &AccountStatus) {
    if s.streams.is_empty() {
        return;
    }
    let t = &s.thresholds;
    html.push_str("<table class=\"streams\"><tr><th>stream</th><th>state</th><th>share</th><th>sends</th><th>bounces</th><th>complaints</th></tr>");
    for (name, stream) in &s.streams {
        let _ = write!(
            html,
            "<tr data-stream=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>",
            escape(name),
            escape(name),
            stream.state,
            percent(stream.share),
            stream.counts.sends,
            rate_cell(stream.bounce_rate, t.bounce_warn),
            rate_cell(stream.complaint_rate, t.complaint_warn),
        );
    }
    html.push_str("</table>");
}

/// Each mailbox provider that answered in the window: deliveries, bounces by class, its
/// refusal and complaint rates against their lines, and what the guard finds there.
fn providers_table(html: &mut String, s: &AccountStatus, lines: &ProviderLines) {
    if s.providers.is_empty() {
        return;
    }
    html.push_str("<table class=\"providers\"><tr><th>provider</th><th>delivered</th><th>address bounces</th><th>temporary</th><th>refused (blocked / auth / policy)</th><th>refusals</th><th>complaints</th><th>finding</th></tr>");
    for p in &s.providers {
        let c = &p.counts;
        let finding = summaries_for(&s.provider_findings, &p.provider);
        let _ = write!(
            html,
            "<tr data-provider=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {}</td>{}{}<td>{}</td></tr>",
            escape(&p.provider),
            escape(&p.provider),
            c.deliveries,
            c.address_bounces,
            c.temporary_bounces,
            c.blocked,
            c.authentication,
            c.policy,
            rate_cell(p.sender_bounce_rate, lines.block_rate),
            rate_cell(p.complaint_rate, lines.complaint_warn),
            escape(&finding),
        );
    }
    html.push_str("</table>");
}

/// The bounce and complaint rates through the window, drawn against their levels.
fn charts(html: &mut String, view: &AccountView<'_>) {
    let t = &view.status.thresholds;
    let metrics: [Metric; 2] = [
        (
            "bounce",
            |p| p.1,
            [t.bounce_warn, t.bounce_pause, t.bounce_critical],
            SES_BOUNCE,
        ),
        (
            "complaint",
            |p| p.2,
            [t.complaint_warn, t.complaint_pause, t.complaint_critical],
            SES_COMPLAINT,
        ),
    ];
    html.push_str("<div class=\"charts\">");
    for (what, pick, levels, ses) in metrics {
        html.push_str(&chart(view, what, pick, levels, ses));
    }
    if !view.series.providers.is_empty() {
        html.push_str(&providers_chart(view));
    }
    html.push_str("</div>");
}

/// Five ticks across a window of `hours`: its start, each quarter, its end.
fn quarter_ticks(hours: f64) -> Vec<(f64, String)> {
    (0..=4)
        .map(|i| {
            let h = hours * f64::from(i) / 4.0;
            (h, format!("{h:.0} h"))
        })
        .collect()
}

/// Each mailbox provider's refusal rate through the window, against the block line.
fn providers_chart(view: &AccountView<'_>) -> String {
    let series = view.series;
    let start = series.start.as_millis() as f64;
    let hours = |at: Timestamp| (at.as_millis() as f64 - start) / 3_600_000.0;
    let window_hours = view.status.window_seconds as f64 / 3600.0;
    let lines: Vec<Line> = series
        .providers
        .iter()
        .enumerate()
        .map(|(i, (provider, points))| Line {
            label: provider.clone(),
            color: STREAM_COLORS[i % STREAM_COLORS.len()],
            dashed: false,
            points: points.iter().map(|p| (hours(p.0), p.1)).collect(),
        })
        .collect();
    let block = view.provider_lines.block_rate;
    let highest = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(block, f64::max);
    Chart {
        title: format!(
            "{} — refusals by mailbox provider through the window",
            view.status.name
        ),
        x_caption: format!(
            "hours since {} (UTC); each point: sender-class bounces per answered message since then",
            clock(series.start)
        ),
        x_ticks: quarter_ticks(window_hours),
        y_max: (highest * 1.15).max(f64::EPSILON),
        y_format: None,
        x_range: (0.0, window_hours),
        lines,
        levels: vec![Level::rate("block", block, "#c33")],
        marks: Vec::new(),
    }
    .svg()
}

/// The account's latest transitions, newest first.
fn history_table(html: &mut String, history: &[HistoryEntry]) {
    if history.is_empty() {
        html.push_str("<p class=\"muted\">No transitions yet.</p>");
        return;
    }
    html.push_str("<table class=\"history\"><tr><th>when (UTC)</th><th>change</th><th>cause</th><th>bounces</th><th>by</th><th>note</th></tr>");
    for entry in history {
        let cause = serde_json::to_value(entry.cause).unwrap_or_default();
        let what = match &entry.stream {
            Some(stream) => format!("{}: {} → {}", stream, entry.from, entry.to),
            None => format!("{} → {}", entry.from, entry.to),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(entry.at),
            escape(&what),
            escape(cause.as_str().unwrap_or("?")),
            percent(entry.bounce_rate),
            escape(&entry.actor),
            escape(entry.note.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</table>");
}

/// Prevention today, per stream: its mode, and what it refused and flagged by reason.
fn prevention_table(html: &mut String, prevention: &PreventionStatus) {
    let _ = write!(
        html,
        "<section id=\"prevention\"><h2>Prevention on {}</h2><p class=\"muted\">Unverified recipients that cannot receive mail \
         (DNS {}, {} throw-away domains listed): left out under <code>refuse</code>, sent and counted under <code>flag</code>.</p>\
         <table><tr><th>stream</th><th>mode</th><th>refused</th><th>flagged</th></tr>",
        escape(&prevention.day),
        escape(&prevention.dns),
        prevention.disposable_domains
    );
    for s in &prevention.streams {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.stream),
            s.mode,
            escape(&by_reason(&s.refused)),
            escape(&by_reason(&s.flagged))
        );
    }
    html.push_str("</table></section>");
}

/// The status page at `now`, with prevention's counts when they could be read.
pub fn status(
    accounts: &[AccountView<'_>],
    lookup: &Lookup,
    prevention: Option<&PreventionStatus>,
    now: Timestamp,
) -> String {
    let mut html = format!(
        "<h1>sesguard</h1><p class=\"muted\">Accounts and streams at {} UTC. Every transition below was also sent as an alert. \
         <a href=\"./\">Refresh</a></p>",
        clock(now)
    );
    html.push_str(
        "<form method=\"get\" action=\"./\" id=\"lookup\"><label>Is an address suppressed? \
         <input type=\"email\" name=\"email\" id=\"email\" required></label> <button type=\"submit\">Look up</button></form>",
    );
    match lookup {
        Lookup::None => {}
        Lookup::Found(found) => {
            let reason = serde_json::to_value(found.reason).unwrap_or_default();
            let _ = write!(
                html,
                "<p id=\"lookup-result\"><b>{}</b> is suppressed: {} since {} ({} events)</p>",
                escape(found.email.as_str()),
                escape(reason.as_str().unwrap_or("?")),
                clock(found.first_seen),
                found.count
            );
        }
        Lookup::NotFound(email, why) => {
            let _ = write!(
                html,
                "<p id=\"lookup-result\"><b>{}</b>: {}</p>",
                escape(email),
                escape(why)
            );
        }
    }
    for view in accounts {
        account(&mut html, view);
    }
    if let Some(prevention) = prevention {
        prevention_table(&mut html, prevention);
    }
    page("sesguard — status", &html)
}

/// The status page, with the answer to its suppression lookup.
pub(crate) async fn status_page(state: &AdminFunction, request: &Request) -> Answer {
    let deps = &state.context;
    let admin = Admin::of(deps, "status-page");
    let now = deps.clock.now();
    let rendered: Result<String, AdminError> = async {
        let statuses = admin.accounts(now).await?;
        let mut parts = Vec::with_capacity(statuses.len());
        for status in &statuses {
            let series = crate::app::status::rate_series(
                deps.store.as_ref(),
                &deps.config,
                &status.name,
                now,
            )
            .await?;
            let history = deps.store.history(&status.name, 10).await?;
            parts.push((series, history));
        }
        let lookup = match query(request).get("email").filter(|e| !e.trim().is_empty()) {
            None => Lookup::None,
            Some(email) => match admin.suppression(email).await {
                Ok(found) => Lookup::Found(found),
                Err(error @ (AdminError::NotFound(_) | AdminError::Invalid(_))) => {
                    Lookup::NotFound(email.clone(), error.to_string())
                }
                Err(other) => return Err(other),
            },
        };
        let views: Vec<AccountView<'_>> = statuses
            .iter()
            .zip(&parts)
            .map(|(status, (series, history))| AccountView {
                status,
                series,
                history,
                provider_lines: &state.context.config.guard.providers,
            })
            .collect();
        let prevention = admin.prevention(now).await?;
        Ok(status(&views, &lookup, Some(&prevention), now))
    }
    .await;
    match rendered {
        Ok(page) => html(200, page),
        Err(failure) => {
            tracing::error!(error = %error_chain(&failure), "status page not rendered");
            html(
                failure.http_status(),
                format!(
                    "<!doctype html><title>sesguard</title><p>The status page could not be read: {}</p>",
                    crate::app::plot::escape(&error_chain(&failure))
                ),
            )
        }
    }
}
