//! SES's own reputation figures, deployed: the account-level CloudWatch metrics SES publishes,
//! `AWS/SES` `Reputation.BounceRate` and `Reputation.ComplaintRate` (no dimensions), read with
//! one `GetMetricData` per configured account, in the account's region and through its role
//! when it has one. Each account's answer is kept for `[ses_metrics] cache`, so the guard may
//! ask on every review. Not here: the per-configuration-set reputation metrics.
//!
//! **Virtual Deliverability Manager.** For an account with `[[accounts]] vdm = true`, the same
//! read also asks SESv2 `BatchGetMetricData` (namespace `VDM`) for the account's `SEND`,
//! `PERMANENT_BOUNCE` and `COMPLAINT` counts, with a client from the same per-account SDK
//! configuration. VDM counts per day, so the window is widened to whole UTC days ([`VDM_DAY`]):
//! from the start of the day `lookback` before `now` up to `now`. Each series is summed, and
//! the rates are bounces / sends and complaints / sends (none when there were no sends; at most
//! 1, since feedback may arrive for mail sent before the window). The figures returned are the
//! worse of CloudWatch's and VDM's per rate, `at` the newer of the two. One source failing is
//! logged and the other's figures stand; only both failing is an error. Both requests are
//! cached together, as one answer.
//!
//! **Period and statistic.** SES does not document how often it publishes these figures; each
//! is a gauge (the rate over SES's representative volume, 0..1), not a count per period. The
//! query asks for 5-minute periods ([`PERIOD`]: the guard's review interval and the cache's
//! default; CloudWatch keeps 5-minute data for 63 days) and takes the newest period that has a
//! datapoint, with the statistic `Maximum`: when SES published more than one value within that
//! period, the worse one counts, so the guard decides earlier, never later. `Average` would
//! blur a jump inside the period. The price is per metric asked for (two per call), not per
//! datapoint, so the finer period costs nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy};
use aws_sdk_sesv2::types::{BatchGetMetricDataQuery, Metric as Vdm, MetricNamespace};

use crate::adapters::account_sdk::account_sdk;
use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::ses_view::SesFigures;
use crate::ports::{SesError, SesReputation};
use crate::telemetry::error_chain;

/// The namespace SES publishes its metrics in.
pub const NAMESPACE: &str = "AWS/SES";
/// SES's account bounce rate (0..1).
pub const BOUNCE_RATE: &str = "Reputation.BounceRate";
/// SES's account complaint rate (0..1).
pub const COMPLAINT_RATE: &str = "Reputation.ComplaintRate";
/// The period the figures are asked for in.
pub const PERIOD: Duration = Duration::from_secs(300);
/// The statistic taken in each period: the worst value SES published in it.
pub const STATISTIC: &str = "Maximum";

/// VDM's granularity: it counts per UTC day.
pub const VDM_DAY: Duration = Duration::from_secs(24 * 3600);

const ACTION: &str = "GetMetricData";
const VDM_ACTION: &str = "BatchGetMetricData";
const BOTH_ACTIONS: &str = "GetMetricData and BatchGetMetricData";

/// One account's last answer: when it was asked, and what came back (a failure as the action
/// that failed and its text).
#[derive(Debug, Clone)]
struct Answer {
    asked: Timestamp,
    figures: Result<Option<SesFigures>, (&'static str, String)>,
}

/// SES's reputation figures from CloudWatch, and from VDM where it is enabled, for every
/// configured account.
#[derive(Debug)]
pub struct CloudWatchReputation {
    clients: HashMap<String, aws_sdk_cloudwatch::Client>,
    vdm: HashMap<String, aws_sdk_sesv2::Client>,
    lookback: Duration,
    cache: Duration,
    answers: Mutex<HashMap<String, Answer>>,
}

impl CloudWatchReputation {
    /// Clients for every configured account, from the shared SDK configuration: the account's
    /// region, and its role assumed when `role_arn` is set (as for SESv2); a SESv2 client too
    /// for each account with `vdm = true`. Nothing is called yet.
    pub async fn from_config(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let mut clients = HashMap::new();
        let mut vdm = HashMap::new();
        for account in &config.accounts {
            let account_sdk = account_sdk(sdk, account).await;
            clients.insert(
                account.name.to_string(),
                aws_sdk_cloudwatch::Client::new(&account_sdk),
            );
            if account.vdm {
                vdm.insert(
                    account.name.to_string(),
                    aws_sdk_sesv2::Client::new(&account_sdk),
                );
            }
        }
        Self::with_clients(
            clients,
            config.ses_metrics.lookback,
            config.ses_metrics.cache,
        )
        .with_vdm(vdm)
    }

    /// Over prepared clients, one per account name (tests).
    pub fn with_clients(
        clients: HashMap<String, aws_sdk_cloudwatch::Client>,
        lookback: Duration,
        cache: Duration,
    ) -> Self {
        Self {
            clients,
            vdm: HashMap::new(),
            lookback,
            cache,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Also asks VDM, through these SESv2 clients, for the accounts they are named by.
    #[must_use]
    pub fn with_vdm(mut self, vdm: HashMap<String, aws_sdk_sesv2::Client>) -> Self {
        self.vdm = vdm;
        self
    }

    fn cached(&self, account: &str, now: Timestamp) -> Option<Answer> {
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        answers
            .get(account)
            .filter(|a| a.asked <= now && now.since(a.asked) < self.cache)
            .cloned()
    }

    fn remember(&self, account: &str, answer: Answer) {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(account.to_owned(), answer);
    }

    /// CloudWatch's figures, and VDM's where the account has it: the worse of the two when
    /// both answer, the one that answers when the other fails (the failure logged).
    async fn ask(
        &self,
        client: &aws_sdk_cloudwatch::Client,
        account: &str,
        now: Timestamp,
    ) -> Result<Option<SesFigures>, SesError> {
        let cloudwatch = self.ask_cloudwatch(client, account, now);
        let Some(sesv2) = self.vdm.get(account) else {
            return cloudwatch.await;
        };
        let vdm = ask_vdm(
            sesv2,
            account,
            now.minus(self.lookback).floor_to(VDM_DAY),
            now,
        );
        let (cloudwatch, vdm) = tokio::join!(cloudwatch, vdm);
        either(account, cloudwatch, vdm)
    }

    async fn ask_cloudwatch(
        &self,
        client: &aws_sdk_cloudwatch::Client,
        account: &str,
        now: Timestamp,
    ) -> Result<Option<SesFigures>, SesError> {
        let start = now.minus(self.lookback).floor_to(PERIOD);
        // The end of the period `now` is in: its datapoint counts too.
        let end = now.floor_to(PERIOD).plus(PERIOD);
        let output = client
            .get_metric_data()
            .metric_data_queries(query("bounce", BOUNCE_RATE))
            .metric_data_queries(query("complaint", COMPLAINT_RATE))
            .start_time(DateTime::from_millis(start.as_millis()))
            .end_time(DateTime::from_millis(end.as_millis()))
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await
            .map_err(|error| SesError {
                account: account.to_owned(),
                action: ACTION,
                source: Box::new(error),
                permanent: false,
            })?;
        // At most 2 × lookback / period datapoints (576 for 24 h), far under one page's
        // 100,800: no further page holds a newer one.
        let newest = |id: &str| {
            output
                .metric_data_results()
                .iter()
                .filter(|r| r.id() == Some(id))
                .find_map(newest_datapoint)
        };
        let (bounce, complaint) = (newest("bounce"), newest("complaint"));
        let at = match (bounce, complaint) {
            (None, None) => return Ok(None),
            (Some((at, _)), None) | (None, Some((at, _))) => at,
            (Some((b, _)), Some((c, _))) => b.max(c),
        };
        let figures = SesFigures {
            bounce_rate: bounce.map(|(_, value)| value),
            complaint_rate: complaint.map(|(_, value)| value),
            at,
        };
        tracing::debug!(
            account,
            bounce_rate = figures.bounce_rate,
            complaint_rate = figures.complaint_rate,
            at = %figures.at,
            "SES reputation figures read from CloudWatch"
        );
        Ok(Some(figures))
    }
}

/// One account-level SES metric, its worst value per [`PERIOD`].
fn query(id: &str, metric: &str) -> MetricDataQuery {
    let period = i32::try_from(PERIOD.as_secs()).unwrap_or(300);
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(NAMESPACE)
                        .metric_name(metric)
                        .build(),
                )
                .period(period)
                .stat(STATISTIC)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The newest datapoint of a result (whatever order it came in), when it has one with a
/// finite value.
fn newest_datapoint(result: &MetricDataResult) -> Option<(Timestamp, f64)> {
    result
        .timestamps()
        .iter()
        .zip(result.values())
        .filter(|(_, value)| value.is_finite())
        .filter_map(|(at, value)| Some((Timestamp::from_millis(at.to_millis().ok()?), *value)))
        .max_by_key(|(at, _)| *at)
}

/// VDM's counts of the account's sends, hard bounces and complaints from `start` to `end`, as
/// rates; `None` when VDM counted no sends there. A query VDM answers with an error fails the
/// read: without all three counts the rates would be wrong.
async fn ask_vdm(
    client: &aws_sdk_sesv2::Client,
    account: &str,
    start: Timestamp,
    end: Timestamp,
) -> Result<Option<SesFigures>, SesError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| SesError {
        account: account.to_owned(),
        action: VDM_ACTION,
        source,
        permanent: false,
    };
    let query =
        |id: &str, metric: Vdm| vdm_query(id, metric, start, end).map_err(|e| failed(Box::new(e)));
    let output = client
        .batch_get_metric_data()
        .queries(query("sends", Vdm::Send)?)
        .queries(query("bounces", Vdm::PermanentBounce)?)
        .queries(query("complaints", Vdm::Complaint)?)
        .send()
        .await
        .map_err(|error| failed(Box::new(error)))?;
    if let Some(error) = output.errors().first() {
        let code = error.code().map_or("unknown", |c| c.as_str());
        let text = error.message().unwrap_or_default();
        let id = error.id().unwrap_or_default();
        return Err(failed(format!("query `{id}`: {code} {text}").into()));
    }
    let figures = vdm_figures(output.results());
    tracing::debug!(
        account,
        bounce_rate = figures.and_then(|f| f.bounce_rate),
        complaint_rate = figures.and_then(|f| f.complaint_rate),
        "SES reputation figures read from VDM"
    );
    Ok(figures)
}

/// One account-wide VDM count (no dimensions) from `start` to `end`.
fn vdm_query(
    id: &str,
    metric: Vdm,
    start: Timestamp,
    end: Timestamp,
) -> Result<BatchGetMetricDataQuery, aws_sdk_sesv2::error::BuildError> {
    BatchGetMetricDataQuery::builder()
        .id(id)
        .namespace(MetricNamespace::Vdm)
        .metric(metric)
        .start_date(DateTime::from_millis(start.as_millis()))
        .end_date(DateTime::from_millis(end.as_millis()))
        .build()
}

/// Below this many sends VDM's counts make no rate: SES judges a representative volume, and
/// the guard takes SES's figures as bare rates (the guard's default `min_volume`). One
/// complaint in 200 sends would otherwise read as 0.5 %, over the critical level.
const VDM_MIN_SENDS: i64 = 200;

/// The rates of VDM's answer: each series summed, bounces and complaints per send (at most
/// 1), `at` the newest day counted; `None` below [`VDM_MIN_SENDS`] sends.
fn vdm_figures(results: &[aws_sdk_sesv2::types::MetricDataResult]) -> Option<SesFigures> {
    let series = |id: &'static str| results.iter().filter(move |r| r.id() == Some(id));
    let total = |id: &'static str| -> i64 { series(id).flat_map(|r| r.values()).sum() };
    let sends = total("sends");
    if sends < VDM_MIN_SENDS {
        return None;
    }
    let at = series("sends")
        .flat_map(|r| r.timestamps())
        .filter_map(|t| t.to_millis().ok())
        .max()?;
    let rate = |id: &'static str| Some((total(id).max(0) as f64 / sends as f64).min(1.0));
    Some(SesFigures {
        bounce_rate: rate("bounces"),
        complaint_rate: rate("complaints"),
        at: Timestamp::from_millis(at),
    })
}

/// One answer from CloudWatch's and VDM's: the worse figures when both answered, the one
/// that answered when the other failed (the failure logged), an error naming both causes when
/// both failed.
fn either(
    account: &str,
    cloudwatch: Result<Option<SesFigures>, SesError>,
    vdm: Result<Option<SesFigures>, SesError>,
) -> Result<Option<SesFigures>, SesError> {
    match (cloudwatch, vdm) {
        (Ok(cloudwatch), Ok(vdm)) => Ok(worse(cloudwatch, vdm)),
        (Ok(figures), Err(error)) | (Err(error), Ok(figures)) => {
            tracing::warn!(
                account,
                reason = %error_chain(&error),
                "one source of SES reputation figures failed; the other's figures stand"
            );
            Ok(figures)
        }
        (Err(cloudwatch), Err(vdm)) => Err(SesError {
            account: account.to_owned(),
            action: BOTH_ACTIONS,
            source: format!(
                "CloudWatch: {}; VDM: {}",
                error_chain(&cloudwatch),
                error_chain(&vdm)
            )
            .into(),
            permanent: false,
        }),
    }
}

/// The worse of two sets of figures, rate by rate; `at` the newer.
fn worse(a: Option<SesFigures>, b: Option<SesFigures>) -> Option<SesFigures> {
    let (Some(a), Some(b)) = (a, b) else {
        return a.or(b);
    };
    let higher = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    Some(SesFigures {
        bounce_rate: higher(a.bounce_rate, b.bounce_rate),
        complaint_rate: higher(a.complaint_rate, b.complaint_rate),
        at: a.at.max(b.at),
    })
}

#[async_trait]
impl SesReputation for CloudWatchReputation {
    /// The newest `Reputation.BounceRate` and `Reputation.ComplaintRate` of the account within
    /// `[ses_metrics] lookback` before `now` (with `vdm`, the worse of those and VDM's rates
    /// over the lookback's days); `None` when there is no figure. An answer, a failure
    /// included, is reused until `[ses_metrics] cache` has passed, so an outage costs one
    /// request per source, account and cache period, not one per review. An account that is
    /// not configured is a permanent error; a failed read is not, and carries its cause (with
    /// `vdm`, only both sources failing is an error).
    async fn reputation(
        &self,
        account: &str,
        now: Timestamp,
    ) -> Result<Option<SesFigures>, SesError> {
        let Some(client) = self.clients.get(account) else {
            return Err(SesError {
                account: account.to_owned(),
                action: ACTION,
                source: "not a configured account".into(),
                permanent: true,
            });
        };
        if let Some(answer) = self.cached(account, now) {
            return answer.figures.map_err(|(action, cause)| SesError {
                account: account.to_owned(),
                action,
                source: format!("{cause} (the last read's failure, kept for the cache time)")
                    .into(),
                permanent: false,
            });
        }
        let figures = self.ask(client, account, now).await;
        let kept = match &figures {
            Ok(figures) => Ok(*figures),
            Err(error) => Err((error.action, error_chain(error.source.as_ref()))),
        };
        self.remember(
            account,
            Answer {
                asked: now,
                figures: kept,
            },
        );
        figures
    }
}
