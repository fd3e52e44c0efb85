//! SES's own reputation figures through the CloudWatch adapter: against the local
//! AWS-compatible server's CloudWatch (the figures put there with `PutMetricData`, as SES
//! publishes them), and on SDK-level mocks for what that server cannot do (failures, datapoints
//! out of order). Each test uses a region of its own: the server keeps one set of metrics per
//! region, and `AWS/SES` is the same namespace everywhere.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::config::Region;
use aws_sdk_cloudwatch::error::ErrorMetadata;
use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataError, GetMetricDataOutput};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MetricDataResult, MetricDatum};
use aws_smithy_mocks::{Rule, mock};
use sesguard::adapters::cloudwatch::{
    BOUNCE_RATE, COMPLAINT_RATE, CloudWatchReputation, NAMESPACE,
};
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::reputation::ses_view::SesFigures;
use sesguard::ports::SesReputation;
use sesguard::telemetry::error_chain;

use crate::helpers::local_sdk;
use crate::wire::RequestCounter;

const LOOKBACK: Duration = Duration::from_secs(24 * 3600);
const CACHE: Duration = Duration::from_secs(300);

/// Now, on a 5-minute boundary, so that the figures' periods are easy to name: the server
/// counts periods from the query's start, which the adapter aligns to 5 minutes.
fn now() -> Timestamp {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    Timestamp::from_millis(i64::try_from(wall.as_millis()).expect("millis")).floor_to(PERIOD_5M)
}

const PERIOD_5M: Duration = Duration::from_secs(300);

fn at(t: Timestamp) -> DateTime {
    DateTime::from_millis(t.as_millis())
}

/// A CloudWatch client on the local server in `region`, its requests logged.
fn local_cloudwatch(region: &'static str, log: &RequestCounter) -> Client {
    let config = aws_sdk_cloudwatch::config::Builder::from(&local_sdk())
        .region(Region::new(region))
        .interceptor(log.clone())
        .build();
    Client::from_conf(config)
}

/// SES publishing one figure of the account's at `when`.
async fn publish(client: &Client, metric: &str, value: f64, when: Timestamp) {
    client
        .put_metric_data()
        .namespace(NAMESPACE)
        .metric_data(
            MetricDatum::builder()
                .metric_name(metric)
                .value(value)
                .timestamp(at(when))
                .build(),
        )
        .send()
        .await
        .expect("PutMetricData on the local server");
}

fn reputation_over(client: Client) -> CloudWatchReputation {
    CloudWatchReputation::with_clients(
        HashMap::from([("backup".to_owned(), client)]),
        LOOKBACK,
        CACHE,
    )
}

#[tokio::test]
async fn the_newest_figure_of_each_metric_is_read_back_from_cloudwatch() {
    let log = RequestCounter::default();
    let cloudwatch = local_cloudwatch("us-west-1", &log);
    let now = now();
    let minutes = |m: u64| now.minus(Duration::from_secs(60 * m));
    // As SES publishes them, older figures first: the bounce rate rose, then fell back.
    publish(&cloudwatch, BOUNCE_RATE, 0.021, minutes(180)).await;
    publish(&cloudwatch, BOUNCE_RATE, 0.095, minutes(60)).await;
    publish(&cloudwatch, BOUNCE_RATE, 0.048, minutes(10)).await;
    publish(&cloudwatch, COMPLAINT_RATE, 0.0009, minutes(120)).await;
    publish(&cloudwatch, COMPLAINT_RATE, 0.0001, minutes(30)).await;
    log.take();

    let figures = reputation_over(cloudwatch)
        .reputation("backup", now)
        .await
        .expect("read")
        .expect("figures within the lookback");

    assert_eq!(
        figures.bounce_rate,
        Some(0.048),
        "the newest, not the highest"
    );
    assert_eq!(figures.complaint_rate, Some(0.0001));
    // The newest datapoint's 5-minute period.
    assert_eq!(figures.at, minutes(10).floor_to(PERIOD_5M));
    let requests = log.take();
    assert_eq!(
        requests
            .iter()
            .map(|(op, _)| op.as_str())
            .collect::<Vec<_>>(),
        ["GetMetricData"],
        "both metrics in one request"
    );
}

#[tokio::test]
async fn no_datapoint_within_the_lookback_gives_no_figures_and_one_alone_gives_one() {
    let log = RequestCounter::default();
    let cloudwatch = local_cloudwatch("us-west-2", &log);
    let now = now();
    let reputation = CloudWatchReputation::with_clients(
        HashMap::from([("backup".to_owned(), cloudwatch.clone())]),
        LOOKBACK,
        Duration::ZERO,
    );
    assert_eq!(
        reputation.reputation("backup", now).await.unwrap(),
        None,
        "SES has published nothing"
    );

    // Older than the lookback: not SES's view now.
    publish(
        &cloudwatch,
        BOUNCE_RATE,
        0.2,
        now.minus(LOOKBACK + PERIOD_5M * 2),
    )
    .await;
    assert_eq!(reputation.reputation("backup", now).await.unwrap(), None);

    // A complaint rate alone (SES publishes a metric once the account has such feedback).
    let recent = now.minus(Duration::from_secs(600));
    publish(&cloudwatch, COMPLAINT_RATE, 0.0012, recent).await;
    assert_eq!(
        reputation.reputation("backup", now).await.unwrap(),
        Some(SesFigures {
            bounce_rate: None,
            complaint_rate: Some(0.0012),
            at: recent.floor_to(PERIOD_5M),
        })
    );
}

#[tokio::test]
async fn an_answer_is_reused_for_the_cache_time_without_asking_again() {
    let log = RequestCounter::default();
    let cloudwatch = local_cloudwatch("eu-west-2", &log);
    let now = now();
    publish(
        &cloudwatch,
        BOUNCE_RATE,
        0.03,
        now.minus(Duration::from_secs(900)),
    )
    .await;
    let reputation = reputation_over(cloudwatch.clone());
    log.take();

    let first = reputation.reputation("backup", now).await.unwrap();
    assert_eq!(first.and_then(|f| f.bounce_rate), Some(0.03));
    assert_eq!(log.take().len(), 1);

    // SES publishes a worse figure; within the cache time the last answer stands, unasked.
    publish(&cloudwatch, BOUNCE_RATE, 0.07, now).await;
    log.take();
    let within = now.plus(CACHE - Duration::from_secs(1));
    assert_eq!(
        reputation.reputation("backup", within).await.unwrap(),
        first
    );
    assert!(log.take().is_empty(), "served from the cache");

    // Once it has passed, asked again: the new figure.
    let after = now.plus(CACHE);
    let fresh = reputation.reputation("backup", after).await.unwrap();
    assert_eq!(fresh.and_then(|f| f.bounce_rate), Some(0.07));
    assert_eq!(log.take().len(), 1);
}

/// A CloudWatch client answered by SDK-level mock rules, one attempt per call.
fn mocked(rules: &[&Rule]) -> Client {
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "sesguard-tests",
        ))
        .retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .build();
    Client::from_conf(config)
}

#[tokio::test]
async fn a_failed_read_names_the_call_and_its_cause_and_is_not_repeated_within_the_cache_time() {
    let throttled = mock!(Client::get_metric_data).then_error(|| {
        GetMetricDataError::generic(
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let reputation = reputation_over(mocked(&[&throttled]));
    let now = now();

    let error = reputation.reputation("backup", now).await.unwrap_err();
    let text = error_chain(&error);
    assert!(
        text.starts_with("SES GetMetricData failed for account `backup`"),
        "{text}"
    );
    assert!(text.contains("Rate exceeded"), "the cause: {text}");
    assert!(!error.permanent, "asking again later can help");

    let again = reputation
        .reputation("backup", now.plus(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert!(error_chain(&again).contains("Rate exceeded"));
    assert_eq!(
        throttled.num_calls(),
        1,
        "the failure is reused, not re-asked"
    );

    let unknown = reputation.reputation("nosuch", now).await.unwrap_err();
    assert!(unknown.permanent);
    assert!(error_chain(&unknown).contains("not a configured account"));
}

#[tokio::test]
async fn the_newest_datapoint_wins_whatever_order_they_come_in() {
    let now = now();
    let minutes = move |m: u64| at(now.minus(Duration::from_secs(60 * m)));
    let answer = mock!(Client::get_metric_data).then_output(move || {
        GetMetricDataOutput::builder()
            .metric_data_results(
                MetricDataResult::builder()
                    .id("bounce")
                    // Ascending, with a value that is not a number.
                    .timestamps(minutes(60))
                    .values(0.02)
                    .timestamps(minutes(15))
                    .values(0.06)
                    .timestamps(minutes(5))
                    .values(f64::NAN)
                    .build(),
            )
            .metric_data_results(MetricDataResult::builder().id("complaint").build())
            .build()
    });
    let figures = reputation_over(mocked(&[&answer]))
        .reputation("backup", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(figures.bounce_rate, Some(0.06));
    assert_eq!(figures.complaint_rate, None);
    assert_eq!(figures.at, now.minus(Duration::from_secs(900)));
}

// Virtual Deliverability Manager: SESv2 `BatchGetMetricData`. No local emulator serves it with
// data (moto has no such operation; fakecloud 0.51 answers every query with an empty series),
// so these tests run on SDK-level mocks, CloudWatch's side included.

const DAY: Duration = Duration::from_secs(24 * 3600);

/// An SESv2 client answered by SDK-level mock rules, one attempt per call.
fn mocked_vdm(rules: &[&Rule]) -> aws_sdk_sesv2::Client {
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "sesguard-tests",
        ))
        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

/// The account `backup` with both CloudWatch and VDM, each on its mock rules.
fn reputation_with_vdm(cloudwatch: &[&Rule], vdm: &[&Rule]) -> CloudWatchReputation {
    reputation_over(mocked(cloudwatch))
        .with_vdm(HashMap::from([("backup".to_owned(), mocked_vdm(vdm))]))
}

/// CloudWatch answering one bounce and one complaint rate datapoint at `when`.
fn cloudwatch_says(bounce: f64, complaint: f64, when: Timestamp) -> Rule {
    let series = move |id: &str, value: f64| {
        MetricDataResult::builder()
            .id(id)
            .timestamps(at(when))
            .values(value)
            .build()
    };
    mock!(Client::get_metric_data).then_output(move || {
        GetMetricDataOutput::builder()
            .metric_data_results(series("bounce", bounce))
            .metric_data_results(series("complaint", complaint))
            .build()
    })
}

/// VDM answering daily counts `(day, sends, hard bounces, complaints)`, checking that it was
/// asked for the three account-wide counts over the lookback's whole days up to `now`.
fn vdm_says(now: Timestamp, days: &[(Timestamp, i64, i64, i64)]) -> Rule {
    use aws_sdk_sesv2::operation::batch_get_metric_data::BatchGetMetricDataOutput;
    use aws_sdk_sesv2::types::{Metric, MetricDataResult as Counts, MetricNamespace};
    let days = days.to_vec();
    let series = move |id: &str, pick: fn(&(Timestamp, i64, i64, i64)) -> i64| {
        days.iter()
            .fold(Counts::builder().id(id), |b, day| {
                b.timestamps(at(day.0)).values(pick(day))
            })
            .build()
    };
    let start = at(now.minus(LOOKBACK).floor_to(DAY));
    mock!(aws_sdk_sesv2::Client::batch_get_metric_data)
        .match_requests(move |input| {
            let queries = input.queries();
            let metrics: Vec<_> = queries.iter().map(|q| q.metric().clone()).collect();
            metrics == [Metric::Send, Metric::PermanentBounce, Metric::Complaint]
                && queries.iter().all(|q| {
                    *q.namespace() == MetricNamespace::Vdm
                        && q.dimensions().is_none()
                        && *q.start_date() == start
                        && *q.end_date() == at(now)
                })
        })
        .then_output(move || {
            BatchGetMetricDataOutput::builder()
                .results(series("sends", |d| d.1))
                .results(series("bounces", |d| d.2))
                .results(series("complaints", |d| d.3))
                .build()
        })
}

fn vdm_throttled() -> Rule {
    use aws_sdk_sesv2::operation::batch_get_metric_data::BatchGetMetricDataError;
    use aws_sdk_sesv2::types::error::TooManyRequestsException;
    mock!(aws_sdk_sesv2::Client::batch_get_metric_data).then_error(|| {
        BatchGetMetricDataError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Too many requests")
                .build(),
        )
    })
}

#[tokio::test]
async fn a_worse_vdm_rate_wins_over_cloudwatch_s() {
    let now = now();
    let today = now.floor_to(DAY);
    let cloudwatch = cloudwatch_says(0.02, 0.0001, now.minus(PERIOD_5M));
    // 2,000 sends over two days, 120 hard bounces, 6 complaints: 6% and 0.3%.
    let vdm = vdm_says(
        now,
        &[(today.minus(DAY), 1500, 100, 4), (today, 500, 20, 2)],
    );

    let figures = reputation_with_vdm(&[&cloudwatch], &[&vdm])
        .reputation("backup", now)
        .await
        .unwrap();

    assert_eq!(
        figures,
        Some(SesFigures {
            bounce_rate: Some(0.06),
            complaint_rate: Some(0.003),
            at: now.minus(PERIOD_5M),
        }),
        "VDM's rates, CloudWatch's newer time"
    );
    assert_eq!((cloudwatch.num_calls(), vdm.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_worse_cloudwatch_rate_wins_over_vdm_s_and_the_newer_time_is_kept() {
    let now = now();
    let today = now.floor_to(DAY);
    let cloudwatch = cloudwatch_says(0.08, 0.0001, today.minus(Duration::from_secs(3600)));
    // 1,000 sends today, 10 hard bounces (1%), 2 complaints (0.2%).
    let vdm = vdm_says(now, &[(today, 1000, 10, 2)]);

    let figures = reputation_with_vdm(&[&cloudwatch], &[&vdm])
        .reputation("backup", now)
        .await
        .unwrap();

    assert_eq!(
        figures,
        Some(SesFigures {
            bounce_rate: Some(0.08),
            complaint_rate: Some(0.002),
            at: today,
        }),
        "the worse per rate: CloudWatch's bounces, VDM's complaints; VDM's newer day"
    );
}

#[tokio::test]
async fn a_failing_vdm_leaves_cloudwatch_s_figures_and_the_reverse_and_both_failing_is_an_error() {
    let now = now();
    let cloudwatch = cloudwatch_says(0.03, 0.0002, now.minus(PERIOD_5M));
    let from_cloudwatch = reputation_with_vdm(&[&cloudwatch], &[&vdm_throttled()])
        .reputation("backup", now)
        .await
        .expect("CloudWatch's figures stand");
    assert_eq!(
        from_cloudwatch.map(|f| (f.bounce_rate, f.complaint_rate)),
        Some((Some(0.03), Some(0.0002)))
    );

    let cloudwatch_throttled = mock!(Client::get_metric_data).then_error(|| {
        GetMetricDataError::generic(ErrorMetadata::builder().message("Rate exceeded").build())
    });
    let vdm = vdm_says(now, &[(now.floor_to(DAY), 1_000, 70, 0)]);
    let from_vdm = reputation_with_vdm(&[&cloudwatch_throttled], &[&vdm])
        .reputation("backup", now)
        .await
        .expect("VDM's figures stand");
    assert_eq!(
        from_vdm.map(|f| (f.bounce_rate, f.complaint_rate)),
        Some((Some(0.07), Some(0.0)))
    );

    let error = reputation_with_vdm(&[&cloudwatch_throttled], &[&vdm_throttled()])
        .reputation("backup", now)
        .await
        .unwrap_err();
    let text = error_chain(&error);
    assert!(
        text.contains("GetMetricData and BatchGetMetricData") && !error.permanent,
        "{text}"
    );
    assert!(
        text.contains("Rate exceeded") && text.contains("Too many requests"),
        "both causes: {text}"
    );
}

#[tokio::test]
async fn no_sends_in_vdm_gives_no_vdm_rate() {
    let now = now();
    let today = now.floor_to(DAY);
    // Feedback counted, but no sends in the window: no rate can be had from VDM.
    let vdm = vdm_says(now, &[(today, 0, 5, 1)]);
    let cloudwatch = cloudwatch_says(0.01, 0.0001, now.minus(PERIOD_5M));
    let figures = reputation_with_vdm(&[&cloudwatch], &[&vdm])
        .reputation("backup", now)
        .await
        .unwrap();
    assert_eq!(
        figures.map(|f| (f.bounce_rate, f.complaint_rate)),
        Some((Some(0.01), Some(0.0001))),
        "CloudWatch's figures alone"
    );

    let nothing =
        mock!(Client::get_metric_data).then_output(|| GetMetricDataOutput::builder().build());
    let vdm = vdm_says(now, &[(today, 0, 0, 0)]);
    let none = reputation_with_vdm(&[&nothing], &[&vdm])
        .reputation("backup", now)
        .await
        .unwrap();
    assert_eq!(none, None, "neither source has a figure");

    // 150 sends and one complaint (0.67 %): too few sends for a rate SES would judge.
    let vdm = vdm_says(now, &[(today, 150, 0, 1)]);
    let cloudwatch = cloudwatch_says(0.01, 0.0001, now.minus(PERIOD_5M));
    let figures = reputation_with_vdm(&[&cloudwatch], &[&vdm])
        .reputation("backup", now)
        .await
        .unwrap();
    assert_eq!(
        figures.map(|f| f.complaint_rate),
        Some(Some(0.0001)),
        "VDM's counts below 200 sends make no rate"
    );
}

#[tokio::test]
async fn the_cache_answers_for_both_sources_without_asking_either_again() {
    let now = now();
    let cloudwatch = cloudwatch_says(0.02, 0.0001, now.minus(PERIOD_5M));
    let vdm = vdm_says(now, &[(now.floor_to(DAY), 1000, 50, 1)]);
    let reputation = reputation_with_vdm(&[&cloudwatch], &[&vdm]);

    let first = reputation.reputation("backup", now).await.unwrap();
    assert_eq!(first.and_then(|f| f.bounce_rate), Some(0.05));
    let within = now.plus(CACHE - Duration::from_secs(1));
    assert_eq!(
        reputation.reputation("backup", within).await.unwrap(),
        first
    );
    assert_eq!(
        (cloudwatch.num_calls(), vdm.num_calls()),
        (1, 1),
        "both served from the cache"
    );
}
