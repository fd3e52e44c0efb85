//! The run's report: what was measured, what it comes to at 1,000 sends a second, and the
//! checks `--check` applies.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::Args;
use sesguard::domain::reputation::counters::Counts;

use crate::cost::{PerMessage, per_million};
use crate::rules::Injected;
use crate::wire::Wire;
use crate::worker::{Report, limit_for, line_for, parts_for, quantile};

/// The window lengths SES's rate is checked over, in seconds.
const WINDOWS: [f64; 4] = [0.25, 1.0, 5.0, 30.0];

/// For each window length, the most sends the transport saw in any window of it and what SES
/// would allow in it.
fn rate_windows(args: &Args, sent: &[Report]) -> Vec<(f64, usize, u64)> {
    let mut at: Vec<i64> = sent
        .iter()
        .flat_map(|r| r.sends_at.iter().copied())
        .collect();
    at.sort_unstable();
    let line = line_for(args.rate);
    WINDOWS
        .iter()
        .map(|&window| {
            let length = (window * 1000.0) as i64;
            let (mut first, mut most) = (0, 0);
            for (last, &t) in at.iter().enumerate() {
                while at[first] <= t - length {
                    first += 1;
                }
                most = most.max(last + 1 - first);
            }
            (window, most, line.allowed(window))
        })
        .collect()
}

/// The median and 99th percentile of `values`.
fn spread(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    json!({"count": values.len(), "median": quantile(&values, 0.5), "p99": quantile(&values, 0.99)})
}

/// Every worker's wire, conflicts and throttles, added up.
struct Totals {
    wire: Wire,
    conflicts: u64,
    throttles: u64,
}

impl Totals {
    fn of(reports: &[&Report]) -> Self {
        let mut totals = Totals {
            wire: Wire::default(),
            conflicts: 0,
            throttles: 0,
        };
        for report in reports {
            totals.wire.add(&report.wire);
            totals.conflicts += report.conflicts;
            totals.throttles += report.throttles;
        }
        totals
    }
}

/// A key's writes: the busiest second here, in all, and per second carried to 1,000 sends a
/// second.
struct Hot<'a> {
    key: &'a str,
    busiest: u32,
    total: u64,
    at_1000: f64,
}

/// The ten hottest keys. A counter shard's writes per message do not depend on the rate; a
/// rate part's do, through the number of parts: at 1,000 sends a second under a 2,000 limit
/// the same takes spread over that many parts.
fn hottest<'a>(args: &Args, wire: &'a Wire, per_message: impl Fn(u64) -> f64) -> Vec<Hot<'a>> {
    let spread = f64::from(parts_for(args.rate)) / f64::from(parts_for(1000));
    let mut hot: Vec<Hot<'a>> = wire
        .keys
        .iter()
        .map(|(key, seconds)| {
            let total = seconds.values().map(|&n| u64::from(n)).sum();
            let scale = if key.starts_with("rate#") {
                spread
            } else {
                1.0
            };
            Hot {
                key,
                busiest: seconds.values().copied().max().unwrap_or(0),
                total,
                at_1000: per_message(total) * 1000.0 * scale,
            }
        })
        .collect();
    hot.sort_by(|a, b| b.at_1000.total_cmp(&a.at_1000).then(a.key.cmp(b.key)));
    hot.truncate(10);
    hot
}

/// The outcomes of `reports`, added up by name.
fn outcomes(reports: &[Report]) -> BTreeMap<String, u64> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for report in reports {
        for (name, n) in &report.outcomes {
            *merged.entry(name.clone()).or_default() += n;
        }
    }
    merged
}

/// What the run measured against the scale criteria: each failed one, said.
struct Criteria {
    dead_lettered: u64,
    bounces: u64,
    accepted: u64,
    counted: Counts,
    hottest_at_1000: f64,
    conflicts: u64,
    requests: u64,
    windows: Vec<(f64, usize, u64)>,
    /// Each partition's write and read units a second at 1,000 sends a second.
    partitions: Vec<(String, f64, f64)>,
    /// The rules' requests and median latency against the one asked for, when they were on.
    rules: Option<(u64, f64, f64)>,
}

impl Criteria {
    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some((requests, median, asked)) = self.rules
            && (requests == 0 || !(0.8 * asked..=1.25 * asked).contains(&median))
        {
            failures.push(format!(
                "DynamoDB's rules did not hold: {requests} requests, median latency {median:.1} ms for {asked} ms asked"
            ));
        }
        for (partition, write, read) in &self.partitions {
            if *write > 1000.0 || *read > 3000.0 {
                failures.push(format!(
                    "partition {partition} would take {write:.0} write and {read:.0} read units a second at 1,000 sends a second"
                ));
            }
        }
        for &(window, most, allowed) in &self.windows {
            if most as u64 > allowed {
                failures.push(format!(
                    "{most} sends in a window of {window} s, SES allows {allowed}"
                ));
            }
        }
        if self.dead_lettered > 0 {
            failures.push(format!(
                "{} feedback records dead-lettered",
                self.dead_lettered
            ));
        }
        if self.counted.hard_bounces != self.bounces {
            failures.push(format!(
                "{} bounces sent, {} counted",
                self.bounces, self.counted.hard_bounces
            ));
        }
        if self.counted.sends != self.accepted {
            failures.push(format!(
                "{} sends accepted, {} counted",
                self.accepted, self.counted.sends
            ));
        }
        if self.hottest_at_1000 > 100.0 {
            failures.push(format!(
                "the hottest key would take {:.0} writes a second at 1,000 sends a second",
                self.hottest_at_1000
            ));
        }
        if self.conflicts * 100 >= self.requests.max(1) {
            failures.push(format!(
                "{} conflict retries in {} requests",
                self.conflicts, self.requests
            ));
        }
        failures
    }
}

/// What the driver saw of the run besides the workers' reports.
pub(crate) struct Seen<'a> {
    /// Events passed from the senders to the ingesters.
    pub(crate) events: u64,
    /// What the store counted for the account.
    pub(crate) counted: Counts,
    /// What DynamoDB's rules injected and charged (`None`: the rules were off).
    pub(crate) injected: Option<&'a Injected>,
    /// CPU seconds of the server and of the driver (the rules' proxy, the event pumps).
    pub(crate) server_cpu: f64,
    pub(crate) driver_cpu: f64,
}

/// Where the two cores went, in CPU milliseconds per message sent.
fn cpu_per_message(sent: &[Report], stored: &[Report], seen: &Seen, accepted: u64) -> Value {
    let ms = |seconds: f64| 1000.0 * seconds / accepted.max(1) as f64;
    let sum = |reports: &[Report]| reports.iter().map(|r| r.cpu_seconds).sum::<f64>();
    json!({
        "sender_processes": ms(sum(sent)),
        "ingest_processes": ms(sum(stored)),
        "server": ms(seen.server_cpu),
        "driver_and_rules_proxy": ms(seen.driver_cpu),
    })
}

/// The run's report: the workers' reports, the events passed on, and what the store counted.
pub(crate) fn summarize(args: &Args, sent: &[Report], stored: &[Report], seen: &Seen) -> Value {
    let (events, counted, injected) = (seen.events, seen.counted, seen.injected);
    let accepted: u64 = sent.iter().map(|r| r.done).sum();
    let send_seconds = sent.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let ingest_seconds = stored.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let all: Vec<&Report> = sent.iter().chain(stored).collect();
    let Totals {
        wire,
        conflicts,
        throttles,
    } = Totals::of(&all);
    let total_requests: u64 = wire.requests.values().sum();
    let per_message = |n: u64| n as f64 / accepted.max(1) as f64;
    let hot = hottest(args, &wire, per_message);
    let dead_lettered: u64 = stored.iter().map(|r| r.dead_lettered).sum();
    let bounces: u64 = sent.iter().map(|r| r.bounced).sum();
    let windows = rate_windows(args, sent);
    let measured = PerMessage::of(sent, stored, accepted);
    let failures = Criteria {
        dead_lettered,
        bounces,
        accepted,
        counted,
        hottest_at_1000: hot.first().map_or(0.0, |h| h.at_1000),
        conflicts,
        requests: total_requests,
        windows: windows.clone(),
        partitions: injected.map_or(Vec::new(), |i| {
            let at_1000 = |units: f64| units / accepted.max(1) as f64 * 1000.0;
            i.partitions
                .iter()
                .map(|(name, write, read)| (name.clone(), at_1000(*write), at_1000(*read)))
                .collect()
        }),
        rules: injected.map(|i| {
            let median = i.latency_ms.get("median").copied().unwrap_or(0.0);
            (i.requests, median, args.latency_median_ms)
        }),
    }
    .failures();
    let durations = |reports: &[Report]| {
        spread(
            reports
                .iter()
                .flat_map(|r| r.batch_ms.iter().copied())
                .collect(),
        )
    };
    json!({
        "target_rate": args.rate,
        "processes": {"senders": args.senders, "ingesters": args.ingesters, "instances_each": args.instances},
        "sends_accepted": accepted,
        "send_seconds": send_seconds,
        "sends_per_second": accepted as f64 / send_seconds.max(1e-9),
        "events": events,
        "events_per_second": events as f64 / ingest_seconds.max(1e-9),
        "sender_outcomes": outcomes(sent),
        "ingest_outcomes": outcomes(stored),
        "ingest_retried": stored.iter().map(|r| r.retried).sum::<u64>(),
        "dead_lettered": dead_lettered,
        "counted": {"sends": counted.sends, "deliveries": counted.deliveries,
                    "hard_bounces": counted.hard_bounces, "bounces_sent": bounces},
        "requests": wire.requests,
        "requests_per_message": per_message(total_requests),
        "requests_per_message_by_operation": wire.requests.iter().map(|(k, v)| (k.clone(), per_message(*v))).collect::<BTreeMap<_, _>>(),
        "write_units_per_message": per_message(wire.write_units),
        "read_units_per_message": per_message(wire.read_units),
        "refusals": wire.refusals,
        "conflict_retries": conflicts,
        "conflict_retries_per_second": conflicts as f64 / send_seconds.max(1e-9),
        "conflict_share_of_requests": conflicts as f64 / total_requests.max(1) as f64,
        "throttles": throttles,
        "account_limit": limit_for(args.rate),
        "rate_parts": {"here": parts_for(args.rate), "at_1000_sends": parts_for(1000)},
        "hottest_keys": hot.iter().map(|h| json!({
            "key": h.key, "writes": h.total, "busiest_second": h.busiest,
            "writes_per_message": per_message(h.total),
            "per_second_at_1000_sends": h.at_1000,
        })).collect::<Vec<_>>(),
        "rate_windows": windows.iter().map(|(window, most, allowed)| json!({
            "seconds": window, "most_sends": most, "ses_allows": allowed,
        })).collect::<Vec<_>>(),
        "batch_ms": {"sender": durations(sent), "ingest": durations(stored)},
        "injected": injected.map(|i| json!({
            "requests": i.requests, "latency_ms": i.latency_ms, "hold_ms": i.hold_ms,
            "conflicts": i.conflicts, "throttles": i.throttles,
            "busiest_partition_units_per_second": {"write": i.busiest_partition_write_units, "read": i.busiest_partition_read_units},
            "partitions_at_1000_sends": i.partitions.iter().map(|(name, write, read)| json!({
                "partition": name,
                "write_units_per_second": write / accepted.max(1) as f64 * 1000.0,
                "read_units_per_second": read / accepted.max(1) as f64 * 1000.0,
            })).collect::<Vec<_>>(),
        })),
        "charged_per_message": injected.map(|i| json!({
            "read_units_with_misses": i.read_units / accepted.max(1) as f64,
            "write_units": i.write_units / accepted.max(1) as f64,
            "index_write_units": i.index_write_units / accepted.max(1) as f64,
        })),
        "cpu_ms_per_message": cpu_per_message(sent, stored, seen, accepted),
        "log_bytes_per_message": {
            "log": measured.log_bytes,
            "emf": measured.emf_bytes,
        },
        "cost_per_million": per_million(&measured, injected, accepted),
        "failures": failures,
    })
}

pub(crate) fn render(summary: &Value) -> String {
    let mut text = String::new();
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    text += &format!(
        "\nsent     {} messages in {:.1} s: {:.0} sends/s (target {})\n",
        summary["sends_accepted"],
        f(&summary["send_seconds"]),
        f(&summary["sends_per_second"]),
        summary["target_rate"]
    );
    text += &format!(
        "events   {} ingested: {:.0}/s; outcomes {}; retried {}, dead-lettered {}\n",
        summary["events"],
        f(&summary["events_per_second"]),
        summary["ingest_outcomes"],
        summary["ingest_retried"],
        summary["dead_lettered"]
    );
    text += &format!("counted  {}\n", summary["counted"]);
    text += &format!(
        "limit    the account's {} sends/s, paced in {} parts ({} at 1,000 sends/s under 2,000)\n",
        summary["account_limit"],
        summary["rate_parts"]["here"],
        summary["rate_parts"]["at_1000_sends"]
    );
    text += &format!(
        "requests {:.2} per message, write units {:.2}, read units {:.2} (estimated)\n",
        f(&summary["requests_per_message"]),
        f(&summary["write_units_per_message"]),
        f(&summary["read_units_per_message"])
    );
    for (op, n) in summary["requests_per_message_by_operation"]
        .as_object()
        .into_iter()
        .flatten()
    {
        text += &format!("         {op:<20} {:.3} per message\n", f(n));
    }
    text += &format!(
        "refused  {}; conflict retries {} ({:.1}/s, {:.3} % of requests); throttles {}\n",
        summary["refusals"],
        summary["conflict_retries"],
        f(&summary["conflict_retries_per_second"]),
        100.0 * f(&summary["conflict_share_of_requests"]),
        summary["throttles"]
    );
    text += "rate     most sends in any window / SES allows:";
    for window in summary["rate_windows"].as_array().into_iter().flatten() {
        text += &format!(
            " {} s {}/{};",
            window["seconds"], window["most_sends"], window["ses_allows"]
        );
    }
    text += "\n";
    text += &format!(
        "batches  sender {}, ingest {} (ms)\n",
        summary["batch_ms"]["sender"], summary["batch_ms"]["ingest"]
    );
    if !summary["injected"].is_null() {
        text += &format!("injected {}\n", summary["injected"]);
        text += &format!("charged  {} per message\n", summary["charged_per_message"]);
    }
    text += &format!(
        "cpu      {} ms per message; logs {} bytes per message\n",
        summary["cpu_ms_per_message"], summary["log_bytes_per_message"]
    );
    for line in summary["cost_per_million"]["lines"]
        .as_array()
        .into_iter()
        .flatten()
    {
        text += &format!(
            "cost     ${:>6.2}  {}: {} ({})\n",
            f(&line["dollars"]),
            line["part"].as_str().unwrap_or_default(),
            line["per_million_messages"].as_str().unwrap_or_default(),
            line["source"].as_str().unwrap_or_default()
        );
    }
    text += &format!(
        "cost     ${:>6.2}  in all, per million messages\n",
        f(&summary["cost_per_million"]["total_dollars"])
    );
    text += "hottest keys: writes, busiest second here, per second at 1,000 sends/s\n";
    for key in summary["hottest_keys"].as_array().into_iter().flatten() {
        text += &format!(
            "         {:<48} {:>7} {:>5} {:>8.1}\n",
            key["key"].as_str().unwrap_or_default(),
            key["writes"],
            key["busiest_second"],
            f(&key["per_second_at_1000_sends"])
        );
    }
    let failures = summary["failures"].as_array().cloned().unwrap_or_default();
    if failures.is_empty() {
        text += "checks   passed: nothing dead-lettered, every send counted, no key over 100 writes/s and no partition over 1,000 write or 3,000 read units/s at 1,000 sends/s, conflict retries under 1 %, no window over SES's rate\n";
    } else {
        text += &format!("checks   FAILED: {failures:?}\n");
    }
    text
}
