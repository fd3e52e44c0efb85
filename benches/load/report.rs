//! The run's report: what was measured, what it comes to at 1,000 sends a second, and the
//! checks `--check` applies.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::Args;
use crate::worker::*;

pub(crate) fn summarize(
    args: &Args,
    sent: &[Report],
    stored: &[Report],
    events: u64,
    counted: sesguard::domain::reputation::counters::Counts,
) -> Value {
    let accepted: u64 = sent.iter().map(|r| r.done).sum();
    let send_seconds = sent.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let ingest_seconds = stored.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let all: Vec<&Report> = sent.iter().chain(stored).collect();
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut keys: HashMap<&str, BTreeMap<u64, u32>> = HashMap::new();
    let (mut write_units, mut read_units, mut conflicts, mut throttles) = (0, 0, 0, 0);
    for report in &all {
        for (op, n) in &report.wire.requests {
            *requests.entry(op.clone()).or_default() += n;
        }
        for (kind, n) in &report.wire.refusals {
            *refusals.entry(kind.clone()).or_default() += n;
        }
        for (key, seconds) in &report.wire.keys {
            let merged = keys.entry(key).or_default();
            for (second, n) in seconds {
                *merged.entry(*second).or_default() += n;
            }
        }
        write_units += report.wire.write_units;
        read_units += report.wire.read_units;
        conflicts += report.conflicts;
        throttles += report.throttles;
    }
    let total_requests: u64 = requests.values().sum();
    let per_message = |n: u64| n as f64 / accepted.max(1) as f64;
    // The hottest keys: their busiest second here, and their writes per message carried to
    // 1,000 sends a second. A counter shard's writes per message do not depend on the rate; a
    // rate part's do, through the number of parts: at 1,000 sends a second under a 1,500
    // limit the same takes spread over that many parts.
    let spread = f64::from(parts_for(args.rate)) / f64::from(parts_for(1000));
    let at_1000 = |key: &str, total: u64| {
        let scale = if key.contains("| rate#") { spread } else { 1.0 };
        per_message(total) * 1000.0 * scale
    };
    let mut hot: Vec<(&str, u32, u64, f64)> = keys
        .iter()
        .map(|(key, seconds)| {
            let busiest = seconds.values().copied().max().unwrap_or(0);
            let total = seconds.values().map(|&n| u64::from(n)).sum();
            (*key, busiest, total, at_1000(key, total))
        })
        .collect();
    hot.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(b.0)));
    hot.truncate(10);
    let hottest_at_1000 = hot.first().map_or(0.0, |h| h.3);
    let outcomes = |reports: &[Report]| {
        let mut merged: BTreeMap<String, u64> = BTreeMap::new();
        for report in reports {
            for (name, n) in &report.outcomes {
                *merged.entry(name.clone()).or_default() += n;
            }
        }
        merged
    };
    let dead_lettered: u64 = stored.iter().map(|r| r.dead_lettered).sum();
    let retried: u64 = stored.iter().map(|r| r.retried).sum();
    let bounces: u64 = sent.iter().map(|r| r.bounced).sum();
    let mut failures = Vec::new();
    if dead_lettered > 0 {
        failures.push(format!("{dead_lettered} feedback records dead-lettered"));
    }
    if counted.hard_bounces != bounces {
        failures.push(format!(
            "{bounces} bounces sent, {} counted",
            counted.hard_bounces
        ));
    }
    if counted.sends != accepted {
        failures.push(format!(
            "{accepted} sends accepted, {} counted",
            counted.sends
        ));
    }
    if hottest_at_1000 > 100.0 {
        failures.push(format!(
            "the hottest key would take {hottest_at_1000:.0} writes a second at 1,000 sends a second"
        ));
    }
    if conflicts * 100 >= total_requests.max(1) {
        failures.push(format!(
            "{conflicts} conflict retries in {total_requests} requests"
        ));
    }
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
        "ingest_retried": retried,
        "dead_lettered": dead_lettered,
        "counted": {"sends": counted.sends, "deliveries": counted.deliveries,
                    "hard_bounces": counted.hard_bounces, "bounces_sent": bounces},
        "requests": requests,
        "requests_per_message": per_message(total_requests),
        "requests_per_message_by_operation": requests.iter().map(|(k, v)| (k.clone(), per_message(*v))).collect::<BTreeMap<_, _>>(),
        "write_units_per_message": per_message(write_units),
        "read_units_per_message": per_message(read_units),
        "refusals": refusals,
        "conflict_retries": conflicts,
        "conflict_retries_per_second": conflicts as f64 / send_seconds.max(1e-9),
        "conflict_share_of_requests": conflicts as f64 / total_requests.max(1) as f64,
        "throttles": throttles,
        "account_limit": limit_for(args.rate),
        "rate_parts": {"here": parts_for(args.rate), "at_1000_sends": parts_for(1000)},
        "hottest_keys": hot.iter().map(|(key, busiest, total, derived)| json!({
            "key": key, "writes": total, "busiest_second": busiest,
            "writes_per_message": per_message(*total),
            "per_second_at_1000_sends": derived,
        })).collect::<Vec<_>>(),
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
        "limit    the account's {} sends/s, paced in {} parts ({} at 1,000 sends/s under 1,500)\n",
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
        text += "checks   passed: nothing dead-lettered, every send counted, no key over 100 writes/s at 1,000 sends/s, conflict retries under 1 %\n";
    } else {
        text += &format!("checks   FAILED: {failures:?}\n");
    }
    text
}
