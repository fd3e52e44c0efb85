//! Property tests of the guard's invariant over random states, windows and SES figures: no
//! automatic transition lets an account or a stream on it send more while the account is at
//! or over a critical level as SES sees it, and the rules reach a fixed point within a
//! review's bound. Test-only.

use std::time::Duration;

use proptest::prelude::*;

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::{Bucket, Counts};
use crate::domain::reputation::evidence::Evidence;
use crate::domain::reputation::probation::{Probation, Recovery, Return};
use crate::domain::reputation::rules::{MAX_STEPS, evaluate};
use crate::domain::reputation::ses_view::SesFigures;
use crate::domain::reputation::state::{AccountState, Cause, Quarantine, Status};
use crate::domain::reputation::thresholds::Thresholds;

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const RAMP: [f64; 3] = [0.1, 0.25, 0.5];
const STREAMS: [&str; 2] = ["a", "b"];

fn ago(minutes: u64) -> Timestamp {
    Timestamp::from_millis(NOW.as_millis() - (minutes * 60_000) as i64)
}

fn cause() -> impl Strategy<Value = Cause> {
    prop_oneof![
        Just(Cause::BounceRate),
        Just(Cause::ComplaintRate),
        Just(Cause::Operator),
        Just(Cause::Recovered),
        Just(Cause::SendingRate),
    ]
}

fn probation() -> impl Strategy<Value = Option<Probation>> {
    proptest::option::of(
        (0..RAMP.len(), 0..90_u64).prop_map(|(step, minutes)| Probation {
            step,
            share: RAMP[step],
            since: ago(minutes),
        }),
    )
}

/// Per stream: not mentioned, quarantined (by the guard or an operator), or returned.
fn stream_state() -> impl Strategy<Value = (u8, Cause, Option<Probation>, u64)> {
    (0..3_u8, cause(), probation(), 0..120_u64)
}

fn state() -> impl Strategy<Value = AccountState> {
    (
        prop_oneof![
            Just(Status::Active),
            Just(Status::Warning),
            Just(Status::Paused)
        ],
        cause(),
        proptest::option::of(prop_oneof![
            Just(ago(1)),
            Just(NOW.plus(Duration::from_secs(60)))
        ]),
        probation(),
        proptest::option::of(0..180_u64),
        any::<bool>(),
        [stream_state(), stream_state()],
    )
        .prop_map(
            |(status, cause, until, probation, resumed, overridden, streams)| {
                let mut state = AccountState {
                    status,
                    cause: Some(cause),
                    until: until.filter(|_| status == Status::Paused),
                    probation,
                    judged_since: resumed.map(ago),
                    line_override: resumed.filter(|_| overridden).map(ago),
                    ..AccountState::default()
                };
                for (name, (kind, cause, probation, since)) in STREAMS.iter().zip(streams) {
                    match kind {
                        1 => {
                            state.quarantined.insert(
                                (*name).to_owned(),
                                Quarantine {
                                    cause,
                                    since: ago(since),
                                    bounce_rate: 0.1,
                                    complaint_rate: 0.0,
                                },
                            );
                        }
                        2 => {
                            state.returned.insert(
                                (*name).to_owned(),
                                Return {
                                    since: ago(since),
                                    probation,
                                },
                            );
                        }
                        _ => {}
                    }
                }
                state
            },
        )
}

fn counts() -> impl Strategy<Value = Counts> {
    (0..3_000_u64, 0.0..0.25_f64, 0.0..0.01_f64).prop_map(|(sends, bounce, complaint)| Counts {
        sends,
        hard_bounces: (sends as f64 * bounce) as u64,
        complaints: (sends as f64 * complaint) as u64,
        ..Counts::default()
    })
}

fn buckets() -> impl Strategy<Value = Vec<Bucket>> {
    proptest::collection::vec((0..200_u64, counts(), counts()), 0..5).prop_map(|buckets| {
        buckets
            .into_iter()
            .map(|(minutes, a, b)| Bucket::of(ago(minutes), &[("a", a), ("b", b)]))
            .collect()
    })
}

fn figures() -> impl Strategy<Value = Option<SesFigures>> {
    proptest::option::of(
        (0.0..0.15_f64, 0.0..0.008_f64).prop_map(|(bounce, complaint)| SesFigures {
            bounce_rate: Some(bounce),
            complaint_rate: Some(complaint),
            at: NOW,
        }),
    )
}

/// The test's own reading of "over the line as SES sees it": the whole window's rate over
/// SES's representative volume (or surely over below it), or SES's own figure.
fn over_the_line(evidence: &Evidence, t: &Thresholds) -> bool {
    let whole = &evidence.whole;
    let bounds = t.bounds();
    let over = |bad: u64, level: f64, reported: Option<f64>| {
        (whole.sends >= t.min_volume && bad as f64 >= level * whole.sends as f64)
            || (whole.sends < t.min_volume
                && bad >= t.min_events
                && bounds.interval(bad, whole.sends)[0] >= level)
            || reported.is_some_and(|r| r >= level)
    };
    let reported = evidence.ses;
    over(
        whole.hard_bounces,
        t.bounce_critical,
        reported.and_then(|r| r.bounce_rate),
    ) || over(
        whole.complaints,
        t.complaint_critical,
        reported.and_then(|r| r.complaint_rate),
    )
}

/// The share of its traffic the account (`None`) or a stream on it takes.
fn share(state: &AccountState, stream: Option<&str>) -> f64 {
    let account = if state.is_paused(NOW) {
        0.0
    } else {
        state.probation.map_or(1.0, |p| p.share)
    };
    match stream {
        None => account,
        Some(s) if state.is_quarantined(s) => 0.0,
        Some(s) => account.min(state.share_for(s)),
    }
}

fn check_invariant(before: &AccountState, after: &AccountState, cause: Cause) {
    for stream in [None, Some("a"), Some("b")] {
        assert!(
            share(after, stream) <= share(before, stream),
            "{cause:?} let {stream:?} send more over the line: {} -> {}\n{before:?}\n{after:?}",
            share(before, stream),
            share(after, stream),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn nothing_sends_more_over_the_line_and_every_review_reaches_a_fixed_point(
        start in state(),
        buckets in buckets(),
        figures in figures(),
        auto_resume in any::<bool>(),
    ) {
        let thresholds = Thresholds::default();
        let recovery = Recovery {
            auto_resume,
            ramp: &RAMP,
            settle: Duration::from_secs(30 * 60),
        };
        let mut state = start;
        let mut steps = 0;
        loop {
            let evidence = Evidence::gather(&buckets, ago(24 * 60), NOW, &state).with_ses(figures);
            let Some(t) = evaluate(&state, &evidence, &thresholds, &recovery, NOW) else {
                break;
            };
            if over_the_line(&evidence, &thresholds) {
                check_invariant(&state, &t.next, t.cause);
            }
            state = t.next;
            steps += 1;
            prop_assert!(steps <= MAX_STEPS, "no fixed point within {MAX_STEPS} transitions: {state:?}");
        }
    }
}
