//! The SESv2 account adapter on SDK-level mocks (the local AWS-compatible server has no
//! GetAccount or PutAccountSendingAttributes): quotas, enforcement, errors, and enforcement
//! through the guard and operator paths.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sesv2::operation::get_account::{GetAccountError, GetAccountOutput};
use aws_sdk_sesv2::operation::put_account_sending_attributes::PutAccountSendingAttributesOutput;
use aws_sdk_sesv2::operation::put_configuration_set_sending_options::PutConfigurationSetSendingOptionsOutput;
use aws_sdk_sesv2::types::SendQuota as SdkQuota;
use aws_sdk_sesv2::types::error::TooManyRequestsException;
use aws_smithy_mocks::{Rule, mock};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use sesguard::adapters::sesv2::{AccountClient, Sesv2Accounts};
use sesguard::app::control::{Action, Control};
use sesguard::config::Enforcement;
use sesguard::lambda::ingest::handle;
use sesguard::ports::SesAccount;
use sesguard::telemetry::error_chain;

use crate::helpers::{deps_with, example_config, ingest_function, sqlite, sqs_batch};
use crate::ses_event::SesEvent;

fn accounts(enforcement: Enforcement, rules: &[&Rule]) -> Sesv2Accounts {
    Sesv2Accounts::with_clients(HashMap::from([(
        "primary".to_owned(),
        AccountClient {
            client: crate::helpers::mocked_sesv2(rules),
            enforcement,
            configuration_set: Some("sesguard".into()),
        },
    )]))
}

#[tokio::test]
async fn get_account_quotas_are_read_once_and_cached() {
    let quota = mock!(aws_sdk_sesv2::Client::get_account).then_output(|| {
        GetAccountOutput::builder()
            .send_quota(
                SdkQuota::builder()
                    .max24_hour_send(50_000.0)
                    .max_send_rate(14.0)
                    .sent_last24_hours(1_234.0)
                    .build(),
            )
            .build()
    });
    let ses = accounts(Enforcement::Off, &[&quota]);
    let first = ses.send_quota("primary").await.unwrap();
    assert_eq!(
        (
            first.max_24_hour_send,
            first.max_send_rate,
            first.sent_last_24_hours
        ),
        (50_000, 14.0, 1_234)
    );
    assert_eq!(ses.send_quota("primary").await.unwrap(), first);
    assert_eq!(
        quota.num_calls(),
        1,
        "the second read is served from the cache"
    );
}

#[tokio::test]
async fn ses_errors_name_the_call_and_the_account() {
    let throttled = mock!(aws_sdk_sesv2::Client::get_account).then_error(|| {
        GetAccountError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("slow down")
                .build(),
        )
    });
    let error = accounts(Enforcement::Off, &[&throttled])
        .send_quota("primary")
        .await
        .unwrap_err();
    let text = error_chain(&error);
    assert!(
        text.starts_with("SES GetAccount failed for account `primary`"),
        "{text}"
    );
    let unknown = accounts(Enforcement::Off, &[])
        .set_sending("nosuch", false)
        .await
        .unwrap_err();
    assert!(error_chain(&unknown).contains("not a configured account"));
}

#[tokio::test]
async fn enforcement_calls_exactly_the_configured_switch() {
    let account_off = mock!(aws_sdk_sesv2::Client::put_account_sending_attributes)
        .match_requests(|r| r.sending_enabled() == Some(false))
        .then_output(|| PutAccountSendingAttributesOutput::builder().build());
    assert!(
        accounts(Enforcement::Account, &[&account_off])
            .set_sending("primary", false)
            .await
            .unwrap()
    );
    assert_eq!(account_off.num_calls(), 1);

    let set_on = mock!(aws_sdk_sesv2::Client::put_configuration_set_sending_options)
        .match_requests(|r| {
            r.configuration_set_name() == Some("sesguard") && r.sending_enabled() == Some(true)
        })
        .then_output(|| PutConfigurationSetSendingOptionsOutput::builder().build());
    assert!(
        accounts(Enforcement::ConfigurationSet, &[&set_on])
            .set_sending("primary", true)
            .await
            .unwrap()
    );
    assert_eq!(set_on.num_calls(), 1);

    // Off: nothing is called (an unmatched call would fail: no rule answers it).
    assert!(
        !accounts(Enforcement::Off, &[])
            .set_sending("primary", false)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_guard_pause_and_an_operator_resume_switch_sending_at_ses() {
    let off = mock!(aws_sdk_sesv2::Client::put_account_sending_attributes)
        .match_requests(|r| r.sending_enabled() == Some(false))
        .then_output(|| PutAccountSendingAttributesOutput::builder().build());
    let on = mock!(aws_sdk_sesv2::Client::put_account_sending_attributes)
        .match_requests(|r| r.sending_enabled() == Some(true))
        .then_output(|| PutAccountSendingAttributesOutput::builder().build());
    let (_dir, store) = sqlite();
    let (deps, alerts) = deps_with(example_config(), Arc::new(store));
    let deps = deps.with_ses(Arc::new(accounts(Enforcement::Account, &[&off, &on])));

    // 300 sends over two streams, then 13 bounces from each: 8.7 %, no stream dominates.
    let mut bodies = Vec::new();
    for stream in ["verification", "transactional"] {
        let send = SesEvent::send(&format!("send-{stream}"))
            .to((0..150).map(|i| format!("{stream}{i}@example.com")))
            .tagged("primary", stream);
        bodies.push(send.published());
    }
    handle(
        &ingest_function(&deps),
        LambdaEvent::new(sqs_batch(bodies), Context::default()),
    )
    .await
    .unwrap();
    let bounces: Vec<Value> = (0..26)
        .map(|i| {
            let stream = if i % 2 == 0 {
                "verification"
            } else {
                "transactional"
            };
            SesEvent::bounce(&format!("m{i}"))
                .to([format!("{stream}{i}@example.com")])
                .feedback_id(&format!("f{i}"))
                .at("2026-11-20T10:05:00.000Z")
                .tagged("primary", stream)
                .published()
        })
        .collect();
    handle(
        &ingest_function(&deps),
        LambdaEvent::new(sqs_batch(bounces), Context::default()),
    )
    .await
    .unwrap();

    let alerts_seen = alerts.all();
    assert_eq!(alerts_seen.len(), 1);
    assert_eq!(
        (
            alerts_seen[0].change.to.as_str(),
            alerts_seen[0].change.stream.as_deref()
        ),
        ("paused", None)
    );
    assert!(
        alerts_seen[0]
            .traffic
            .ends_with("; SES sending switched off"),
        "{}",
        alerts_seen[0].traffic
    );
    assert_eq!((off.num_calls(), on.num_calls()), (1, 0));

    Control::of(&deps)
        .apply(
            "primary",
            &Action::Resume {
                stream: None,
                probation: true,
            },
            "list cleaned",
            "ana",
            deps.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!((off.num_calls(), on.num_calls()), (1, 1));
    assert!(
        alerts.all()[1]
            .traffic
            .ends_with("; SES sending switched on")
    );
}

#[tokio::test]
async fn routing_reads_a_quota_left_out_of_the_configuration_from_ses() {
    use sesguard::adapters::sesv2::NoSes;
    use sesguard::app::send::snapshot::Snapshot;
    use sesguard::domain::sending::routing::{Priority, Route};

    let mut config = example_config();
    config.accounts[0].daily_quota = None;
    let (_dir, store) = sqlite();
    let now = sesguard::domain::common::timestamp::Timestamp::from_millis(1_795_179_600_000);

    let local = Snapshot::load(&store, &NoSes, &config, now)
        .await
        .unwrap_err();
    assert!(
        error_chain(&local).contains("configure daily_quota and max_send_rate"),
        "{}",
        error_chain(&local)
    );

    // SES says the primary has one send left of 1,000 today: bulk waits, critical mail goes.
    let nearly_spent = mock!(aws_sdk_sesv2::Client::get_account).then_output(|| {
        GetAccountOutput::builder()
            .send_quota(
                SdkQuota::builder()
                    .max24_hour_send(1_000.0)
                    .max_send_rate(1.0)
                    .sent_last24_hours(999.0)
                    .build(),
            )
            .build()
    });
    let ses = accounts(Enforcement::Off, &[&nearly_spent]);
    let snapshot = Snapshot::load(&store, &ses, &config, now).await.unwrap();
    assert!(matches!(
        snapshot.route("bulk", Priority::Bulk, 0.5, &[]).unwrap(),
        Route::Defer { .. }
    ));
    assert_eq!(
        snapshot
            .route("transactional", Priority::Critical, 0.5, &[])
            .unwrap(),
        Route::Send {
            account: "primary".into()
        }
    );
}
