//! SES's view is the line, through the application on both stores: an operator's timed pause
//! that ends over the line becomes a rate pause and never ends into sending, a timed pause on probation returns to its step, an operator's
//! quarantine is never lifted by auto-resume, and SES's own figure (the local figures file)
//! pauses an account whose feedback never arrived.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sesguard::app::Context;
use sesguard::app::control::{Action, Control};
use sesguard::app::review::Guard;
use sesguard::config::Config;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::reputation::state::StateName;
use sesguard::domain::reputation::state::{Cause, Status};
use sesguard::ports::Store;

use crate::guard_paths::{bounce, invoke, send};
use crate::helpers::{SAMPLE_NOW, deps_with, dynamodb, example_config, sqlite, sqs_batch};

fn now() -> Timestamp {
    Timestamp::parse_rfc3339(SAMPLE_NOW).unwrap()
}

/// 150 verification and `transactional` transactional sends at 10:00.
async fn traffic(deps: &Context, transactional: usize) {
    invoke(
        deps,
        sqs_batch(vec![
            send("s1", "verification", 150, 0),
            send("s2", "transactional", transactional, 0),
        ]),
    )
    .await;
}

async fn state(deps: &Context) -> sesguard::domain::reputation::state::AccountState {
    deps.store
        .states(&["primary".to_owned()])
        .await
        .unwrap()
        .remove("primary")
        .unwrap_or_default()
}

async fn a_timed_pause_over_the_line_never_ends_into_sending(store: Arc<dyn Store>) {
    let (deps, alerts) = deps_with(example_config(), store);
    traffic(&deps, 150).await;
    let pause = Action::Pause {
        stream: None,
        duration: Some(Duration::from_secs(60)),
    };
    Control::of(&deps)
        .apply("primary", &pause, "maintenance", "ana", now())
        .await
        .unwrap();
    // 30 hard bounces of both streams arrive during the pause: 10 % as SES sees it.
    let bounces = (0..30)
        .map(|i| {
            bounce(
                &format!("b{i}"),
                ["verification", "transactional"][i % 2],
                5,
            )
        })
        .collect();
    invoke(&deps, sqs_batch(bounces)).await;
    // The pause is the operator's until it ends: the batch's review leaves it as it is.
    assert!(alerts.all().iter().all(|a| a.change.actor != "guard"));
    // When its time runs out, the review keeps it paused for the rate: nothing sends.
    let review = Guard::of(&deps)
        .review_all(now().plus(Duration::from_secs(120)))
        .await
        .unwrap();
    let applied: Vec<_> = review
        .applied
        .iter()
        .map(|a| (a.transition.from, a.transition.to, a.transition.cause))
        .collect();
    assert_eq!(
        applied,
        [(StateName::Paused, StateName::Paused, Cause::BounceRate)]
    );
    let state = state(&deps).await;
    assert_eq!((state.status, state.until), (Status::Paused, None));
    let last = alerts.all().pop().unwrap().change;
    assert_eq!(last.ses.unwrap().bounce_rate, 0.1, "named as SES sees it");
}

#[tokio::test]
async fn a_timed_pause_over_the_line_never_ends_into_sending_on_sqlite() {
    let (_dir, store) = sqlite();
    a_timed_pause_over_the_line_never_ends_into_sending(Arc::new(store)).await;
}

#[tokio::test]
async fn a_timed_pause_over_the_line_never_ends_into_sending_on_dynamodb() {
    a_timed_pause_over_the_line_never_ends_into_sending(Arc::new(dynamodb().await)).await;
}

async fn a_timed_pause_on_probation_returns_to_the_step_it_left(store: Arc<dyn Store>) {
    let (deps, _) = deps_with(example_config(), store);
    traffic(&deps, 150).await;
    let control = Control::of(&deps);
    let minutes = |m: u64| now().plus(Duration::from_secs(60 * m));
    let pause = |duration| Action::Pause {
        stream: None,
        duration,
    };
    let resume = Action::Resume {
        stream: None,
        probation: true,
    };
    control
        .apply("primary", &pause(None), "incident", "ana", now())
        .await
        .unwrap();
    control
        .apply("primary", &resume, "list cleaned", "ana", minutes(1))
        .await
        .unwrap();
    let timed = pause(Some(Duration::from_secs(60)));
    let paused = control
        .apply("primary", &timed, "maintenance", "ana", minutes(2))
        .await
        .unwrap();
    assert_eq!(
        (paused.from, paused.to),
        (StateName::Probation, StateName::Paused)
    );
    let review = Guard::of(&deps).review_all(minutes(4)).await.unwrap();
    let ended = &review.applied[0].transition;
    assert_eq!(
        (ended.from, ended.to, ended.cause),
        (StateName::Paused, StateName::Probation, Cause::PauseExpired)
    );
    let state = state(&deps).await;
    let step = state.probation.unwrap();
    assert_eq!((step.step, step.share, step.since), (0, 0.1, minutes(4)));
    assert!(state.note.unwrap().contains("back on probation step 1"));
}

#[tokio::test]
async fn a_timed_pause_on_probation_returns_to_the_step_it_left_on_sqlite() {
    let (_dir, store) = sqlite();
    a_timed_pause_on_probation_returns_to_the_step_it_left(Arc::new(store)).await;
}

#[tokio::test]
async fn a_timed_pause_on_probation_returns_to_the_step_it_left_on_dynamodb() {
    a_timed_pause_on_probation_returns_to_the_step_it_left(Arc::new(dynamodb().await)).await;
}

fn auto_resuming() -> Config {
    let mut config = example_config();
    for account in &mut config.accounts {
        account.auto_resume = true;
    }
    config
}

async fn an_operators_quarantine_is_never_lifted_by_auto_resume(store: Arc<dyn Store>) {
    let (deps, _) = deps_with(auto_resuming(), store);
    traffic(&deps, 1_000).await;
    let quarantine = Action::Pause {
        stream: Some("transactional".into()),
        duration: None,
    };
    Control::of(&deps)
        .apply("primary", &quarantine, "template broken", "ana", now())
        .await
        .unwrap();
    let review = Guard::of(&deps)
        .review_all(now().plus(Duration::from_secs(3_600)))
        .await
        .unwrap();
    assert!(review.applied.is_empty(), "{:?}", review.applied);
    assert!(state(&deps).await.is_quarantined("transactional"));
}

#[tokio::test]
async fn an_operators_quarantine_is_never_lifted_by_auto_resume_on_sqlite() {
    let (_dir, store) = sqlite();
    an_operators_quarantine_is_never_lifted_by_auto_resume(Arc::new(store)).await;
}

#[tokio::test]
async fn an_operators_quarantine_is_never_lifted_by_auto_resume_on_dynamodb() {
    an_operators_quarantine_is_never_lifted_by_auto_resume(Arc::new(dynamodb().await)).await;
}

async fn ses_own_figure_pauses_an_account_whose_feedback_is_missing(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let figures = dir.path().join("figures.json");
    let mut config = example_config();
    config.ses_metrics.file = Some(figures.clone());
    let (deps, alerts) = deps_with(config, store);
    traffic(&deps, 150).await;
    let write = |bounce_rate: f64| {
        let body = json!({"primary": {"bounce_rate": bounce_rate, "complaint_rate": 0.0,
                                      "at": "2026-11-20T12:00:00Z"}});
        std::fs::write(&figures, body.to_string()).unwrap();
    };
    // 3.5 % at SES, none counted here: feedback is missing, recorded once.
    write(0.035);
    for _ in 0..2 {
        Guard::of(&deps).review_all(now()).await.unwrap();
    }
    let gaps: Vec<_> = alerts
        .all()
        .into_iter()
        .filter(|a| a.change.cause == Cause::FeedbackGap)
        .collect();
    assert_eq!(gaps.len(), 1, "one alert when the gap begins");
    // 9.5 % at SES: over the line, whatever sesguard counts.
    write(0.095);
    let review = Guard::of(&deps).review_all(now()).await.unwrap();
    let paused = &review.applied[0].transition;
    assert_eq!(
        (paused.to, paused.cause),
        (StateName::Paused, Cause::BounceRate)
    );
    assert_eq!(paused.rates.bounce_rate, 0.0, "sesguard's own count");
    let view = paused.rates.ses;
    assert_eq!(view.bounce_rate, 0.095);
    assert_eq!(view.reported.unwrap().bounce_rate, Some(0.095));
}

#[tokio::test]
async fn ses_own_figure_pauses_an_account_whose_feedback_is_missing_on_sqlite() {
    let (_dir, store) = sqlite();
    ses_own_figure_pauses_an_account_whose_feedback_is_missing(Arc::new(store)).await;
}

#[tokio::test]
async fn ses_own_figure_pauses_an_account_whose_feedback_is_missing_on_dynamodb() {
    ses_own_figure_pauses_an_account_whose_feedback_is_missing(Arc::new(dynamodb().await)).await;
}
