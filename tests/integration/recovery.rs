//! The way back after an incident, through the ingest handler and the operator's resume, on
//! the embedded store and on the local DynamoDB server: a resume that holds against feedback
//! about the incident's mail, probation judged on the mail sent since, a second culprit
//! quarantined while the clean stream keeps the account, and the scheduled review.

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use sesguard::app::Context;
use sesguard::app::admin::Admin;
use sesguard::app::review::Guard;
use sesguard::domain::reputation::state::StateName;
use sesguard::domain::reputation::state::{AccountState, Status};
use sesguard::lambda::ingest::handle;
use sesguard::ports::Store;

use crate::helpers::{
    FixedClock, RecordedAlerts, dynamodb, example_config, ingest_function, sqlite, sqs_batch,
};
use crate::ses_event::SesEvent;
use crate::world::World;

/// An event about the mail `id` of `stream`, sent at `at` (`HH:MM` on the sample day) to
/// `count` recipients.
fn event(event: SesEvent, id: &str, stream: &str, count: usize, at: &str) -> SesEvent {
    event
        .to((0..count).map(|i| format!("{id}-{i}@example.com")))
        .sent_at(&format!("2026-11-20T{at}:00.000Z"))
        .tagged("primary", stream)
}

/// A Send event of `id` for `count` recipients of `stream`, sent at `at`.
fn send(id: &str, stream: &str, count: usize, at: &str) -> Value {
    event(SesEvent::send(id), id, stream, count, at).published()
}

/// A hard bounce of `count` recipients of the mail `id` of `stream` sent at `sent`, arriving
/// half a minute later.
fn bounce(id: &str, stream: &str, count: usize, sent: &str) -> Value {
    event(SesEvent::bounce(id), id, stream, count, sent)
        .at(&format!("2026-11-20T{sent}:30.000Z"))
        .published()
}

/// The delivery of the mail `id` of `stream` sent at `sent` to its first recipient.
fn delivery(id: &str, stream: &str, sent: &str) -> Value {
    event(SesEvent::delivery(id), id, stream, 1, sent)
        .at(&format!("2026-11-20T{sent}:40.000Z"))
        .published()
}

struct Run {
    deps: Context,
    clock: Arc<FixedClock>,
    alerts: RecordedAlerts,
}

impl Run {
    fn new(store: Arc<dyn Store>) -> Self {
        let world = World::builder().store(store).build();
        Self {
            deps: world.deps,
            clock: world.clock,
            alerts: world.alerts,
        }
    }

    async fn ingest(&self, bodies: Vec<Value>) {
        let response = handle(
            &ingest_function(&self.deps),
            LambdaEvent::new(sqs_batch(bodies), lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    }

    async fn state(&self) -> AccountState {
        let mut states = self.deps.store.states(&["primary".into()]).await.unwrap();
        states.remove("primary").unwrap_or_default()
    }

    /// The last alert's change as `(stream, from, to)`.
    fn last_change(&self) -> (Option<String>, StateName, StateName) {
        let alerts = self.alerts.all();
        let c = &alerts.last().expect("an alert").change;
        (c.stream.clone(), c.from, c.to)
    }
}

/// Bounces of `total` recipients in notifications of at most 50.
fn bounces(prefix: &str, stream: &str, total: usize, sent: &str) -> Vec<Vec<Value>> {
    let notes: Vec<Value> = (0..total.div_ceil(50))
        .map(|i| {
            let count = (total - i * 50).min(50);
            bounce(&format!("{prefix}{i}"), stream, count, sent)
        })
        .collect();
    notes.chunks(10).map(<[Value]>::to_vec).collect()
}

async fn an_operators_resume_holds_against_feedback_about_the_incidents_mail(
    store: Arc<dyn Store>,
) {
    let run = Run::new(store);
    // 400 sends and 36 hard bounces: 9 %, the critical level.
    run.ingest(vec![send("m1", "bulk", 400, "10:00")]).await;
    for batch in bounces("b", "bulk", 36, "10:00") {
        run.ingest(batch).await;
    }
    assert_eq!(run.state().await.status, Status::Paused);
    assert_eq!(
        run.last_change(),
        (None, StateName::Active, StateName::Paused)
    );

    let admin = Admin::of(&run.deps, "ana");
    let now = run.deps.clock.now();
    let resumed = admin
        .resume("primary", None, true, "list cleaned", now)
        .await
        .unwrap();
    assert_eq!(
        (resumed.to, resumed.share),
        (StateName::Probation, Some(0.1))
    );

    // The very next notification is about the incident's mail: it is counted, and judges
    // nothing.
    run.ingest(vec![delivery("m1", "bulk", "10:00")]).await;
    run.ingest(bounces("late", "bulk", 4, "10:00").remove(0))
        .await;
    let state = run.state().await;
    assert_eq!(
        (state.status, state.name()),
        (Status::Active, StateName::Probation)
    );
    assert_eq!(run.alerts.all().len(), 2, "pause and resume only");
    let status = admin
        .account("primary", run.deps.clock.now())
        .await
        .unwrap();
    let status = serde_json::to_value(status).unwrap();
    assert_eq!(
        (&status["state"], &status["sends"], &status["hard_bounces"]),
        (&json!("probation"), &json!(400), &json!(40)),
        "{status}"
    );
    assert_eq!(
        status["judged"]["sends"], 0,
        "nothing sent since the resume"
    );
    assert_eq!(status["probation"]["share"], 0.1);

    // Mail sent after the resume is judged as usual: 25 bounces in 250 sends pause it again.
    run.clock.set("2026-11-20T13:30:00.000Z");
    run.ingest(vec![send("m2", "bulk", 250, "13:10")]).await;
    for batch in bounces("n", "bulk", 25, "13:10") {
        run.ingest(batch).await;
    }
    assert_eq!(run.state().await.status, Status::Paused);
    assert_eq!(
        run.last_change(),
        (None, StateName::Probation, StateName::Paused)
    );
    let relapse = &run.alerts.all()[2].change;
    assert_eq!(
        relapse.window_sends, 250,
        "judged on the mail since the resume"
    );
}

/// The second-culprit scenario's numbers: the issue's, or a tenth of them where the local
/// DynamoDB server would take minutes over the issue's 1,949 suppressions.
struct Culprits {
    verification: usize,
    verification_bounces: usize,
    verification_late: usize,
    others: usize,
    transactional_bounces: usize,
}

const ISSUE: Culprits = Culprits {
    verification: 20_000,
    verification_bounces: 1_618,
    verification_late: 161,
    others: 1_000,
    transactional_bounces: 170,
};

const TENTH: Culprits = Culprits {
    verification: 2_000,
    verification_bounces: 162,
    verification_late: 16,
    others: 100,
    transactional_bounces: 17,
};

async fn a_second_culprit_is_quarantined_while_the_clean_stream_keeps_the_account(
    store: Arc<dyn Store>,
    n: Culprits,
) {
    let run = Run::new(store);
    // Verification: 20,000 sends, 1,618 hard bounces (8.09 %): quarantined.
    run.ingest(vec![send("v", "verification", n.verification, "09:00")])
        .await;
    for batch in bounces("vb", "verification", n.verification_bounces, "09:00") {
        run.ingest(batch).await;
    }
    let state = run.state().await;
    assert!(state.is_quarantined("verification"));
    assert_ne!(state.status, Status::Paused);

    // Then transactional (1,000 sends) reaches 170 hard bounces beside a clean bulk stream
    // (1,000 sends), while verification's late bounces bring it to 1,779: the account at
    // 8.86 % as SES sees it, under the 9 % critical level; the traffic still sending at 8.5 %.
    run.ingest(vec![
        send("t", "transactional", n.others, "11:00"),
        send("k", "bulk", n.others, "11:00"),
    ])
    .await;
    for batch in bounces("vl", "verification", n.verification_late, "09:00") {
        run.ingest(batch).await;
    }
    for batch in bounces("tb", "transactional", n.transactional_bounces, "11:00") {
        run.ingest(batch).await;
    }
    let state = run.state().await;
    assert!(state.is_quarantined("transactional"), "{state:?}");
    assert!(state.is_quarantined("verification"));
    assert_ne!(
        state.status,
        Status::Paused,
        "bulk keeps sending on the primary"
    );
    let alerts = run.alerts.all();
    assert!(
        !alerts.iter().any(|a| a.change.to == StateName::Paused),
        "{alerts:?}"
    );
    let quarantines: Vec<_> = alerts
        .iter()
        .filter(|a| a.change.to == StateName::Quarantined)
        .map(|a| &a.change)
        .collect();
    assert_eq!(quarantines.len(), 2, "{alerts:?}");
    let second = quarantines[1];
    assert_eq!(second.stream.as_deref(), Some("transactional"));
    // Decided on the streams still sending (transactional and bulk), and named beside the
    // account as SES sees it (every stream).
    let still_sending = 2 * n.others;
    assert_eq!(second.window_sends, still_sending as u64);
    assert!(
        (second.bounce_rate - n.transactional_bounces as f64 / still_sending as f64).abs() < 1e-9,
        "{}",
        second.bounce_rate
    );
    let sends = n.verification + 2 * n.others;
    let bad = n.verification_bounces + n.verification_late + n.transactional_bounces;
    let view = second.ses.unwrap();
    assert_eq!(view.sends, sends as u64);
    assert!(
        (view.bounce_rate - bad as f64 / sends as f64).abs() < 1e-9,
        "{}",
        view.bounce_rate
    );
}

async fn probation_brings_a_stream_back_step_by_step_and_the_scheduled_review_ends_a_timed_pause(
    store: Arc<dyn Store>,
) {
    let run = Run::new(store);
    // 85 bounces in 1,000 sends (8.5 %), all verification's: quarantined.
    run.ingest(vec![send("v", "verification", 1_000, "09:00")])
        .await;
    for batch in bounces("vb", "verification", 85, "09:00") {
        run.ingest(batch).await;
    }
    assert!(run.state().await.is_quarantined("verification"));
    let admin = Admin::of(&run.deps, "ana");
    admin
        .resume(
            "primary",
            Some("verification".into()),
            true,
            "sign-up form fixed",
            run.deps.clock.now(),
        )
        .await
        .unwrap();
    let back = (Some("verification".to_owned()), StateName::Quarantined);
    assert_eq!(
        run.last_change(),
        (back.0.clone(), back.1, StateName::Probation)
    );
    // 200 clean sends since its return pass the first step, once it has lasted the feedback
    // lag (30 minutes) so that their bounces would have arrived.
    run.clock.set("2026-11-20T13:35:00.000Z");
    run.ingest(vec![send("v2", "verification", 200, "13:05")])
        .await;
    let alerts = run.alerts.all();
    let step = &alerts.last().unwrap().change;
    assert_eq!(
        (step.from, step.to, step.share),
        (StateName::Probation, StateName::Probation, Some(0.25))
    );

    // A timed pause ends in the store on the scheduled review, with no feedback arriving.
    admin
        .pause(
            "primary",
            None,
            Some(std::time::Duration::from_secs(300)),
            "maintenance",
            run.deps.clock.now(),
        )
        .await
        .unwrap();
    run.clock.set("2026-11-20T13:41:00.000Z");
    let review = Guard::of(&run.deps)
        .review_all(run.deps.clock.now())
        .await
        .unwrap();
    let ended: Vec<(StateName, StateName)> = review
        .applied
        .iter()
        .map(|a| (a.alert.change.from, a.alert.change.to))
        .collect();
    assert_eq!(ended, [(StateName::Paused, StateName::Active)]);
    assert_eq!(run.state().await.status, Status::Active);
    let again = Guard::of(&run.deps)
        .review_all(run.deps.clock.now())
        .await
        .unwrap();
    assert!(again.applied.is_empty(), "nothing new to decide");
}

#[tokio::test]
async fn an_operators_resume_holds_on_the_embedded_store() {
    let (_dir, store) = sqlite();
    an_operators_resume_holds_against_feedback_about_the_incidents_mail(Arc::new(store)).await;
}

#[tokio::test]
async fn an_operators_resume_holds_on_dynamodb() {
    an_operators_resume_holds_against_feedback_about_the_incidents_mail(Arc::new(dynamodb().await))
        .await;
}

#[tokio::test]
async fn a_second_culprit_is_quarantined_on_the_embedded_store() {
    let (_dir, store) = sqlite();
    a_second_culprit_is_quarantined_while_the_clean_stream_keeps_the_account(
        Arc::new(store),
        ISSUE,
    )
    .await;
}

#[tokio::test]
async fn a_second_culprit_is_quarantined_on_dynamodb_at_a_tenth_of_the_volume() {
    a_second_culprit_is_quarantined_while_the_clean_stream_keeps_the_account(
        Arc::new(dynamodb().await),
        TENTH,
    )
    .await;
}

#[tokio::test]
async fn probation_and_the_scheduled_review_on_the_embedded_store() {
    let (_dir, store) = sqlite();
    probation_brings_a_stream_back_step_by_step_and_the_scheduled_review_ends_a_timed_pause(
        Arc::new(store),
    )
    .await;
}

#[tokio::test]
async fn probation_and_the_scheduled_review_on_dynamodb() {
    probation_brings_a_stream_back_step_by_step_and_the_scheduled_review_ends_a_timed_pause(
        Arc::new(dynamodb().await),
    )
    .await;
}

#[tokio::test]
async fn an_account_paused_for_its_credentials_comes_back_at_full_traffic() {
    use sesguard::app::control::Control;
    use sesguard::domain::reputation::state::Cause;
    let (_dir, store) = sqlite();
    let run = Run::new(Arc::new(store));
    let deps = &run.deps;
    let now = deps.clock.now();
    Control::of(deps)
        .pause_for(
            "primary",
            Cause::AccessDenied,
            None,
            "AssumeRole refused",
            "sender",
            now,
        )
        .await
        .unwrap();
    let resumed = Admin::of(deps, "ana")
        .resume("primary", None, true, "role trust fixed", now)
        .await
        .unwrap();
    assert_eq!(
        (resumed.to, resumed.share),
        (StateName::Active, None),
        "its mail was never the problem: no probation"
    );
}

/// A guard ledger whose first transition loses to another instance that wrote `warning`
/// first: what a conditional write losing the race looks like from the loser's side.
struct LosesOnce {
    store: Arc<dyn Store>,
    lost: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl sesguard::ports::GuardLedger for LosesOnce {
    async fn transition(
        &self,
        account: &str,
        expected_version: u64,
        next: &AccountState,
        entry: &sesguard::domain::reputation::history::HistoryEntry,
        history_expires_at: sesguard::domain::common::timestamp::Timestamp,
    ) -> Result<bool, sesguard::ports::StoreError> {
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let winner = AccountState {
                status: Status::Warning,
                ..AccountState::default()
            };
            let mut theirs = entry.clone();
            theirs.to = StateName::Warning;
            assert!(
                self.store
                    .transition(
                        account,
                        expected_version,
                        &winner,
                        &theirs,
                        history_expires_at
                    )
                    .await?
            );
            return Ok(false);
        }
        self.store
            .transition(account, expected_version, next, entry, history_expires_at)
            .await
    }

    async fn states(
        &self,
        accounts: &[String],
    ) -> Result<std::collections::HashMap<String, AccountState>, sesguard::ports::StoreError> {
        self.store.states(accounts).await
    }

    async fn history(
        &self,
        account: &str,
        limit: usize,
    ) -> Result<Vec<sesguard::domain::reputation::history::HistoryEntry>, sesguard::ports::StoreError>
    {
        self.store.history(account, limit).await
    }
}

#[tokio::test]
async fn a_review_that_loses_its_write_decides_again_on_the_winners_state() {
    let (_dir, store) = sqlite();
    let store: Arc<dyn Store> = Arc::new(store);
    let run = Run::new(store.clone());
    // 400 sends and 36 bounces recorded without a review: 9 %, the critical level.
    let quiet = sesguard::wiring::local(example_config(), store.clone(), run.clock.clone());
    let (_, records) = sesguard::lambda::ingest::decode(
        sqs_batch(
            std::iter::once(send("m1", "bulk", 400, "10:00"))
                .chain(bounces("b", "bulk", 36, "10:00").concat())
                .collect(),
        ),
        "batch",
    );
    let ingestor = sesguard::app::ingest::Ingestor::of(&quiet).without_review();
    assert_eq!(
        ingestor
            .ingest(records, quiet.clock.now())
            .await
            .summary()
            .failed,
        0
    );

    let ledger = LosesOnce {
        store: store.clone(),
        lost: false.into(),
    };
    let deps = &run.deps;
    let review = Guard::of(deps)
        .with_ledger(&ledger)
        .review(&["primary".to_owned()].into(), deps.clock.now())
        .await
        .unwrap();
    let applied: Vec<(StateName, StateName)> = review
        .applied
        .iter()
        .map(|a| (a.transition.from, a.transition.to))
        .collect();
    assert_eq!(
        applied,
        [(StateName::Warning, StateName::Paused)],
        "the loser read the winner's warning and still paused: the stronger transition wins"
    );
    assert_eq!(
        run.alerts.all().len(),
        1,
        "one alert, from the write that won"
    );
    assert_eq!(run.state().await.status, Status::Paused);
}
