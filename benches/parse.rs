//! Parse + classify cost of one SES notification in each wrapper it can arrive in: JSON
//! decoding of the whole event, peeling the wrappers, parsing the SES JSON, and the domain's
//! assessment (dedup key, attribution, address normalisation, counters). No store.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use sesguard::config::Config;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::feedback::bounce_reason::{BounceFacts, classify};
use sesguard::domain::feedback::notification::BounceType;
use sesguard::domain::feedback::plan::{Assessment, SimulatorFeedback, assess};
use sesguard::domain::sns::unwrap::Content;
use sesguard::lambda::ingest::decode;
use std::hint::black_box;

const SAMPLES: [(&str, &str); 5] = [
    (
        "raw_ses_bounce",
        include_str!("../events/ses/bounce-permanent.json"),
    ),
    (
        "sns_http_envelope_bounce",
        include_str!("../events/sns-http-bounce.json"),
    ),
    (
        "sns_lambda_event_complaint",
        include_str!("../events/sns-lambda-complaint.json"),
    ),
    (
        "sqs_event_sns_envelope_bounce",
        include_str!("../events/sqs-sns-bounce.json"),
    ),
    (
        "sqs_event_raw_complaint",
        include_str!("../events/sqs-raw-complaint.json"),
    ),
];

fn parse_and_assess(criterion: &mut Criterion) {
    let config = Config::parse(include_str!("../infra/sesguard.example.toml"), "example")
        .expect("example config");
    let directory = config.directory();
    let now = Timestamp::from_millis(1_763_650_000_000);
    let mut group = criterion.benchmark_group("parse_and_assess");
    group.throughput(Throughput::Elements(1));
    for (name, text) in SAMPLES {
        group.bench_function(name, |bench| {
            bench.iter(|| {
                let event: Value = serde_json::from_str(black_box(text)).expect("sample is JSON");
                let (_, records) = decode(event, "bench");
                let mut applied = 0;
                for record in records {
                    if let Ok(Content::Notification(notification)) = record.content
                        && let Assessment::Apply(effects) =
                            assess(&notification, &directory, SimulatorFeedback::Ignore, now)
                    {
                        applied += effects.addresses.len();
                    }
                }
                assert!(applied > 0, "{name} produced no effects");
                applied
            });
        });
    }
    group.finish();
}

/// The bounce classifier alone, over every diagnostic of the test collection: the cost it adds
/// per bounced recipient.
fn classify_bounces(criterion: &mut Criterion) {
    let rows: Vec<(BounceType, &str, Option<&str>, Option<&str>)> =
        include_str!("../tests/data/bounce-diagnostics.tsv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| {
                let f: Vec<&str> = line.splitn(6, '\t').collect();
                let present = |v: &'static str| (v != "-").then_some(v);
                (
                    BounceType::from_name(f[0]),
                    f[1],
                    present(f[2]),
                    present(f[5]),
                )
            })
            .collect();
    let mut group = criterion.benchmark_group("bounce_reason");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("classify_collection", |bench| {
        bench.iter(|| {
            rows.iter()
                .map(|&(bounce_type, sub_type, status, diagnostic)| {
                    classify(black_box(BounceFacts {
                        bounce_type,
                        sub_type,
                        status,
                        diagnostic,
                    }))
                    .reason as usize
                })
                .sum::<usize>()
        });
    });
    group.finish();
}

criterion_group!(benches, parse_and_assess, classify_bounces);
criterion_main!(benches);
