//! Tests of [`super`]: rules.

use super::*;
use crate::domain::reputation::counters::Bucket;
use crate::domain::reputation::probation::Probation;
use crate::domain::reputation::ses_view::SesFigures;

const NOW: Timestamp = Timestamp::from_millis(1_000_000);

pub(crate) fn counts(sends: u64, hard_bounces: u64, complaints: u64) -> Counts {
    Counts {
        sends,
        hard_bounces,
        complaints,
        ..Counts::default()
    }
}

pub(crate) fn window(streams: &[(&str, Counts)]) -> WindowTotals {
    let mut totals = WindowTotals::default();
    for (name, c) in streams {
        totals.total += *c;
        totals.streams.insert((*name).to_owned(), *c);
    }
    totals
}

const STILL: Recovery<'static> = Recovery {
    auto_resume: false,
    ramp: &[],
    settle: SETTLE,
};
const AUTO: Recovery<'static> = Recovery {
    auto_resume: true,
    ramp: &[],
    settle: SETTLE,
};
const SETTLE: std::time::Duration = std::time::Duration::from_secs(600);

fn decide(state: &AccountState, w: &WindowTotals) -> Option<Transition> {
    decide_with(state, w, &STILL)
}

fn decide_with(
    state: &AccountState,
    w: &WindowTotals,
    recovery: &Recovery<'_>,
) -> Option<Transition> {
    evaluate(
        state,
        &Evidence::uncut(w.clone()),
        &Thresholds::default(),
        recovery,
        NOW,
    )
}

#[test]
fn below_the_minimum_volume_only_an_unambiguous_rate_decides() {
    let vague = window(&[("verification", counts(10, 2, 0))]);
    assert_eq!(decide(&AccountState::default(), &vague), None, "2 in 10");
    let first = window(&[("verification", counts(1, 1, 0))]);
    assert_eq!(
        decide(&AccountState::default(), &first),
        None,
        "a first bounce"
    );
    // Ten bounces in 30 sends: at least 20 % (lower bound), surely over 8 %.
    let ten = window(&[("verification", counts(30, 10, 0))]);
    assert_eq!(
        decide(&AccountState::default(), &ten).unwrap().to,
        StateName::Paused
    );
    let w = window(&[("verification", counts(199, 10, 0))]);
    assert_eq!(decide(&AccountState::default(), &w), None, "5 % of 199");
    let clear = window(&[("verification", counts(180, 40, 0))]);
    let t = decide(&AccountState::default(), &clear).unwrap();
    assert_eq!(
        (t.to, t.cause),
        (StateName::Paused, Cause::BounceRate),
        "40 in 180"
    );
    assert!(t.rates.bounds.bounce[0] > 0.16, "{:?}", t.rates.bounds);
}

#[test]
fn a_dominant_stream_is_quarantined_and_the_account_keeps_sending() {
    let w = window(&[
        ("verification", counts(500, 75, 0)),
        ("transactional", counts(500, 5, 0)),
    ]);
    let t = decide(&AccountState::default(), &w).unwrap();
    assert_eq!(
        (t.from, t.to, t.stream.as_deref()),
        (
            StateName::Active,
            StateName::Quarantined,
            Some("verification")
        )
    );
    assert_eq!(t.cause, Cause::BounceRate);
    assert_eq!(t.next.status, Status::Active);
    assert_eq!(t.next.quarantined["verification"].bounce_rate, 0.15);
    assert_eq!(t.rates.bounce_rate, 0.08);
}

#[test]
fn without_a_dominant_stream_the_whole_account_pauses() {
    let w = window(&[("a", counts(500, 40, 0)), ("b", counts(500, 40, 0))]);
    let t = decide(&AccountState::default(), &w).unwrap();
    assert_eq!(
        (t.from, t.to, t.stream),
        (StateName::Active, StateName::Paused, None)
    );
    assert!(t.next.is_paused(NOW));
    assert_eq!(t.next.until, None, "a rate pause stays until lifted");
}

#[test]
fn after_a_quarantine_the_culprits_late_feedback_does_not_pause_the_rest() {
    let w = window(&[
        ("verification", counts(500, 85, 0)),
        ("transactional", counts(500, 3, 0)),
    ]);
    let mut state = quarantined("verification", Cause::BounceRate);
    assert_eq!(
        decide(&state, &w),
        None,
        "8.8 % overall, 0.6 % without the quarantined stream"
    );
    // A warning raised before the quarantine clears: the streams still sending are healthy.
    state.status = Status::Warning;
    let cleared = decide(&state, &w).unwrap();
    assert_eq!(
        (cleared.from, cleared.to, cleared.cause),
        (StateName::Warning, StateName::Active, Cause::Recovered)
    );
    assert!(cleared.next.is_quarantined("verification"));
}

#[test]
fn the_critical_level_pauses_the_account_even_with_the_culprit_quarantined() {
    let w = window(&[
        ("verification", counts(500, 92, 0)),
        ("transactional", counts(500, 0, 0)),
    ]);
    let state = quarantined("verification", Cause::BounceRate);
    let t = decide(&state, &w).unwrap();
    assert_eq!((t.to, t.cause), (StateName::Paused, Cause::BounceRate));
    assert!(
        t.next.is_quarantined("verification"),
        "the quarantine is kept"
    );
}

#[test]
fn a_second_culprit_is_chosen_among_the_streams_still_sending() {
    // Verification was quarantined at 8.09 %; transactional now brings 170 hard bounces in
    // 1,000 sends: 8.5 % of the traffic still sending, 8.86 % of the account, under the
    // 9 % critical level. Transactional goes, bulk keeps sending on the account.
    let w = window(&[
        ("verification", counts(20_000, 1_779, 0)),
        ("transactional", counts(1_000, 170, 0)),
        ("bulk", counts(1_000, 0, 0)),
    ]);
    let mut state = AccountState::default();
    state.quarantined.insert(
        "verification".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: NOW,
            bounce_rate: 0.0809,
            complaint_rate: 0.0,
        },
    );
    let t = decide(&state, &w).unwrap();
    assert_eq!(
        (t.from, t.to, t.stream.as_deref()),
        (
            StateName::Active,
            StateName::Quarantined,
            Some("transactional")
        )
    );
    assert_eq!(
        t.next.status,
        Status::Active,
        "the account keeps sending bulk"
    );
    assert!(t.next.is_quarantined("verification"));
}

#[test]
fn complaints_follow_the_same_rules_at_their_own_levels() {
    let w = window(&[
        ("bulk", counts(10_000, 0, 55)),
        ("transactional", counts(10_000, 0, 5)),
    ]);
    let t = decide(&AccountState::default(), &w).unwrap();
    assert_eq!(
        (t.to, t.stream.as_deref(), t.cause),
        (StateName::Quarantined, Some("bulk"), Cause::ComplaintRate)
    );
    let warn = window(&[("bulk", counts(10_000, 0, 17))]);
    assert_eq!(
        decide(&AccountState::default(), &warn).unwrap().to,
        StateName::Warning
    );
}

#[test]
fn warning_is_entered_at_the_warn_level_and_left_only_below_eighty_percent_of_it() {
    let at_warn = window(&[("s", counts(1000, 40, 0))]);
    let t = decide(&AccountState::default(), &at_warn).unwrap();
    assert_eq!((t.from, t.to), (StateName::Active, StateName::Warning));
    let warning = t.next;
    assert_eq!(
        decide(&warning, &window(&[("s", counts(1000, 33, 0))])),
        None,
        "3.3 % is above 3.2 %"
    );
    let back = decide(&warning, &window(&[("s", counts(1000, 31, 0))])).unwrap();
    assert_eq!(
        (back.from, back.to, back.cause),
        (StateName::Warning, StateName::Active, Cause::Recovered)
    );
}

#[test]
fn a_rate_pause_stays_unless_the_account_opts_into_auto_resume() {
    let paused = paused(&AccountState::default(), Signal::BounceRate, NOW);
    let calm = window(&[("s", counts(1000, 10, 0))]);
    assert_eq!(decide(&paused, &calm), None);
    let resumed = decide_with(&paused, &calm, &AUTO).unwrap();
    assert_eq!(
        (resumed.from, resumed.to),
        (StateName::Paused, StateName::Active)
    );
}

#[test]
fn an_operator_pause_is_not_lifted_by_auto_resume_but_a_timed_one_ends() {
    let mut operator = paused(&AccountState::default(), Signal::BounceRate, NOW);
    operator.cause = Some(Cause::Operator);
    let calm = window(&[("s", counts(1000, 0, 0))]);
    assert_eq!(decide_with(&operator, &calm, &AUTO), None);
    operator.until = Some(NOW);
    let ended = decide(&operator, &calm).unwrap();
    assert_eq!(
        (ended.to, ended.cause),
        (StateName::Active, Cause::PauseExpired)
    );
}

#[test]
fn auto_resume_lifts_a_quarantine_once_the_streams_rate_is_under_warn() {
    let mut state = AccountState::default();
    state.quarantined.insert(
        "v".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: NOW,
            bounce_rate: 0.2,
            complaint_rate: 0.0,
        },
    );
    let w = window(&[("v", counts(1000, 20, 0))]);
    assert_eq!(decide(&state, &w), None);
    let unsure = window(&[("v", counts(1000, 30, 0))]);
    assert_eq!(
        decide_with(&state, &unsure, &AUTO),
        None,
        "3 % of 1,000 may still be 4 %: its upper bound is over warn"
    );
    let lifted = decide_with(&state, &w, &AUTO).unwrap();
    assert_eq!(
        (lifted.from, lifted.to, lifted.stream.as_deref()),
        (StateName::Quarantined, StateName::Active, Some("v"))
    );
    assert!(lifted.next.quarantined.is_empty());
}

const RAMP: Recovery<'static> = Recovery {
    auto_resume: false,
    ramp: &[0.1, 0.25, 0.5],
    settle: SETTLE,
};

fn at(minutes: i64) -> Timestamp {
    NOW.plus(std::time::Duration::from_secs(60 * minutes as u64))
}

fn judge(state: &AccountState, buckets: &[Bucket], now: Timestamp) -> Option<Transition> {
    let evidence = Evidence::gather(buckets, NOW, now, state);
    evaluate(state, &evidence, &Thresholds::default(), &RAMP, now)
}

/// 400 sends and 36 hard bounces paused the primary (9 %); the operator resumed it at
/// minute 10, over SES's line.
fn resumed_after_the_incident() -> (AccountState, Vec<Bucket>) {
    let mut state = paused(&AccountState::default(), Signal::BounceRate, at(5));
    state.resume(Cause::Operator, RAMP.start(at(10)), at(10));
    state.line_override = Some(at(10));
    let incident = Bucket::of(NOW, &[("bulk", counts(400, 36, 0))]);
    (state, vec![incident])
}

/// The same, on the ramp's second step (25 %) since minute 30.
fn on_the_second_step() -> (AccountState, Vec<Bucket>) {
    let (mut state, buckets) = resumed_after_the_incident();
    state.probation = Some(Probation {
        step: 1,
        share: 0.25,
        since: at(30),
    });
    (state, buckets)
}

#[test]
fn feedback_about_mail_sent_before_a_resume_does_not_pause_again() {
    let (state, mut buckets) = resumed_after_the_incident();
    assert_eq!(state.name(), StateName::Probation);
    // A late delivery and four late bounces, all about the incident's mail.
    buckets[0].total.deliveries += 1;
    buckets[0].total.hard_bounces += 4;
    assert_eq!(judge(&state, &buckets, at(11)), None);
    // Without the operator's override, SES's line is judged on the whole window.
    let mut under = state.clone();
    under.line_override = None;
    let t = judge(&under, &buckets, at(11)).unwrap();
    assert_eq!((t.to, t.rates.window_sends), (StateName::Paused, 400));
    assert_eq!(t.rates.ses.bounce_rate, 0.1);
}

#[test]
fn mail_sent_after_a_resume_is_judged_and_can_pause_again_at_once() {
    let (state, mut buckets) = resumed_after_the_incident();
    buckets.push(Bucket::of(at(10), &[("bulk", counts(250, 25, 0))]));
    let t = judge(&state, &buckets, at(12)).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (StateName::Probation, StateName::Paused, Cause::BounceRate)
    );
    assert_eq!(
        t.rates.window_sends, 250,
        "judged on the mail since the resume"
    );
    assert_eq!(t.next.probation, None);
}

#[test]
fn a_probation_step_passes_on_enough_new_sends_under_the_warn_levels() {
    let (state, mut buckets) = resumed_after_the_incident();
    buckets.push(Bucket::of(at(10), &[("bulk", counts(150, 2, 0))]));
    assert_eq!(judge(&state, &buckets, at(20)), None, "150 sends: not yet");
    buckets.push(Bucket::of(at(25), &[("bulk", counts(60, 1, 0))]));
    let t = judge(&state, &buckets, at(30)).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (StateName::Probation, StateName::Probation, Cause::Recovered)
    );
    assert_eq!(t.share(), Some(0.25));
    // The next step starts afresh: its evidence is the mail sent from now on.
    assert_eq!(judge(&t.next, &buckets, at(31)), None);
    let mut last = t.next.clone();
    last.probation = Some(Probation {
        step: 2,
        share: 0.5,
        since: at(31),
    });
    buckets.push(Bucket::of(at(31), &[("bulk", counts(300, 3, 0))]));
    assert_eq!(
        judge(&last, &buckets, at(40)),
        None,
        "nine minutes in: its bounces may still be on their way"
    );
    let done = judge(&last, &buckets, at(45)).unwrap();
    assert_eq!(
        (done.from, done.to),
        (StateName::Probation, StateName::Active)
    );
    assert_eq!(done.share(), None);
}

#[test]
fn a_probation_step_over_the_pause_level_pauses_the_account_again() {
    // Clean since the resume, but the latest step relapses on its own.
    let (state, mut buckets) = on_the_second_step();
    buckets.push(Bucket::of(at(10), &[("bulk", counts(2_000, 20, 0))]));
    buckets.push(Bucket::of(at(30), &[("bulk", counts(200, 17, 0))]));
    let t = judge(&state, &buckets, at(40)).unwrap();
    assert_eq!((t.from, t.to), (StateName::Probation, StateName::Paused));
}

#[test]
fn a_stream_back_from_quarantine_is_judged_on_its_new_mail_and_quarantined_again_on_a_relapse() {
    let mut state = AccountState::default();
    state.quarantined.insert(
        "verification".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: at(5),
            bounce_rate: 0.15,
            complaint_rate: 0.0,
        },
    );
    state.lift("verification", RAMP.start(at(10)), at(10));
    assert_eq!(stream_name(&state, "verification"), StateName::Probation);
    let mut buckets = vec![Bucket::of(
        NOW,
        &[
            ("verification", counts(1_000, 150, 0)),
            ("bulk", counts(1_000, 5, 0)),
        ],
    )];
    assert_eq!(
        judge(&state, &buckets, at(11)),
        None,
        "its incident mail no longer counts against the account"
    );
    buckets.push(Bucket::of(at(10), &[("verification", counts(200, 18, 0))]));
    let t = judge(&state, &buckets, at(20)).unwrap();
    assert_eq!(
        (t.from, t.to, t.stream.as_deref()),
        (
            StateName::Probation,
            StateName::Quarantined,
            Some("verification")
        )
    );
    assert!(t.next.returned.is_empty());
}

#[test]
fn auto_resume_never_acts_on_an_empty_window_and_starts_probation_on_evidence() {
    let auto = Recovery {
        auto_resume: true,
        ..RAMP
    };
    let paused = paused(&AccountState::default(), Signal::BounceRate, NOW);
    let empty = Evidence::uncut(window(&[]));
    let decide = |e: &Evidence| evaluate(&paused, e, &Thresholds::default(), &auto, NOW);
    assert_eq!(decide(&empty), None, "no mail, no evidence");
    let calm = Evidence::uncut(window(&[("s", counts(1000, 10, 0))]));
    let resumed = decide(&calm).unwrap();
    assert_eq!(
        (resumed.from, resumed.to),
        (StateName::Paused, StateName::Probation)
    );
    assert_eq!(resumed.next.judged_since, Some(NOW));
    let mut quarantined = AccountState::default();
    quarantined.quarantined.insert(
        "v".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: NOW,
            bounce_rate: 0.2,
            complaint_rate: 0.0,
        },
    );
    let aged_out = Evidence::uncut(window(&[("other", counts(1000, 0, 0))]));
    assert_eq!(
        evaluate(&quarantined, &aged_out, &Thresholds::default(), &auto, NOW),
        None,
        "a quarantined stream with no mail in the window stays out"
    );
}

// The six ways back to sending over SES's line that issue 23 found, one test each.

fn quarantined(stream: &str, cause: Cause) -> AccountState {
    let mut state = AccountState::default();
    state.quarantined.insert(
        stream.into(),
        Quarantine {
            cause,
            since: NOW,
            bounce_rate: 0.15,
            complaint_rate: 0.0,
        },
    );
    state
}

#[test]
fn auto_resume_never_lifts_a_pause_while_the_account_is_over_the_line_as_ses_sees_it() {
    // Verification quarantined at 8.3 %, its late bounces took the account to 9.33 %: the
    // critical pause. The streams still sending are clean.
    let mut state = quarantined("verification", Cause::BounceRate);
    state = paused(&state, Signal::BounceRate, NOW);
    let w = window(&[
        ("verification", counts(1_000, 260, 0)),
        ("transactional", counts(2_000, 20, 0)),
    ]);
    assert_eq!(
        decide_with(&state, &w, &AUTO),
        None,
        "9.33 % as SES sees it"
    );
    // Once the whole window is back under the line, the residual's evidence lifts it.
    let later = window(&[
        ("verification", counts(1_000, 150, 0)),
        ("transactional", counts(2_000, 20, 0)),
    ]);
    let resumed = decide_with(&state, &later, &AUTO).unwrap();
    assert_eq!(
        (resumed.from, resumed.to),
        (StateName::Paused, StateName::Active)
    );
    assert_eq!(resumed.rates.ses.bounce_rate, 170.0 / 3_000.0);
}

#[test]
fn auto_resume_never_lifts_an_operators_quarantine() {
    let state = quarantined("transactional", Cause::Operator);
    let clean = window(&[("transactional", counts(5_000, 0, 0))]);
    assert_eq!(decide_with(&state, &clean, &AUTO), None);
    let guards_own = quarantined("transactional", Cause::BounceRate);
    assert_eq!(
        decide_with(&guards_own, &clean, &AUTO).unwrap().to,
        StateName::Active
    );
}

#[test]
fn a_timed_pause_ending_over_the_line_becomes_a_rate_pause_and_never_sends() {
    let mut state = paused(&AccountState::default(), Signal::BounceRate, NOW);
    state.cause = Some(Cause::Operator);
    state.until = Some(NOW);
    let w = window(&[("s", counts(3_000, 300, 0))]);
    let t = decide(&state, &w).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (StateName::Paused, StateName::Paused, Cause::BounceRate)
    );
    assert_eq!(t.next.until, None, "a rate pause: until lifted");
    assert!(t.next.is_paused(NOW));
    assert_eq!(t.rates.ses.bounce_rate, 0.1);
    // Under the line it ends as it always did.
    let calm = window(&[("s", counts(3_000, 30, 0))]);
    assert_eq!(decide(&state, &calm).unwrap().to, StateName::Active);
}

#[test]
fn a_timed_pause_on_probation_returns_to_the_step_it_left() {
    let mut state = AccountState::default();
    state.resume(Cause::Operator, RAMP.step(1, NOW), NOW);
    state.status = Status::Paused;
    state.cause = Some(Cause::Operator);
    state.until = Some(at(5));
    let t = judge(&state, &[], at(5)).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (StateName::Paused, StateName::Probation, Cause::PauseExpired)
    );
    let step = t.next.probation.unwrap();
    assert_eq!((step.step, step.share, step.since), (1, 0.25, at(5)));
    assert!(t.next.note.unwrap().contains("back on probation step 2"));
}

#[test]
fn a_relapse_right_after_a_resume_pauses_below_the_minimum_volume() {
    // The incident's 3,000 sends at 7 %, resumed at minute 10; then 180 sends with 40
    // hard bounces: 22 %, the account at 8.5 % as SES sees it, under its critical level.
    let mut state = paused(&AccountState::default(), Signal::BounceRate, at(5));
    state.resume(Cause::Operator, None, at(10));
    let buckets = [
        Bucket::of(NOW, &[("bulk", counts(3_000, 210, 0))]),
        Bucket::of(at(10), &[("bulk", counts(180, 40, 0))]),
    ];
    let t = judge(&state, &buckets, at(20)).unwrap();
    // Its one stream dominates: it stops sending on the account.
    assert_eq!(
        (t.to, t.stream.as_deref(), t.cause),
        (StateName::Quarantined, Some("bulk"), Cause::BounceRate)
    );
    assert_eq!(
        t.rates.window_sends, 180,
        "decided on the mail since the resume"
    );
    assert!(t.rates.bounds.bounce[0] > 0.08);
    // Resumed over the line (9 %), the mail since is judged against the critical level.
    let mut over = state.clone();
    over.line_override = Some(at(10));
    let buckets = [
        Bucket::of(NOW, &[("bulk", counts(3_000, 270, 0))]),
        Bucket::of(at(10), &[("bulk", counts(180, 40, 0))]),
    ];
    assert_eq!(
        judge(&over, &buckets, at(20)).unwrap().to,
        StateName::Paused
    );
}

#[test]
fn a_transition_reports_the_rate_that_decided_and_the_account_as_ses_sees_it() {
    // The probation step pauses on its own 8.8 %, the mail since the resume is at 4.8 %.
    let (state, mut buckets) = on_the_second_step();
    buckets.push(Bucket::of(at(10), &[("bulk", counts(2_000, 80, 0))]));
    buckets.push(Bucket::of(at(30), &[("bulk", counts(250, 22, 0))]));
    let t = judge(&state, &buckets, at(40)).unwrap();
    assert_eq!((t.to, t.rates.window_sends), (StateName::Paused, 250));
    assert_eq!(t.rates.bounce_rate, 0.088);
    assert_eq!(t.rates.ses.sends, 2_650);
    let entry = t.history("primary", "guard", at(40));
    assert_eq!(entry.bounce_rate, 0.088);
    assert_eq!(entry.ses.unwrap().bounce_rate, 138.0 / 2_650.0);
    // Leaving warning after a quarantine reports the streams still sending.
    let mut warned = quarantined("verification", Cause::BounceRate);
    warned.status = Status::Warning;
    let w = window(&[
        ("verification", counts(1_000, 160, 0)),
        ("transactional", counts(1_000, 10, 0)),
    ]);
    let t = decide(&warned, &w).unwrap();
    assert_eq!((t.to, t.rates.bounce_rate), (StateName::Active, 0.01));
    assert_eq!(t.rates.ses.bounce_rate, 0.085);
}

#[test]
fn ses_own_figure_pauses_when_worse_and_a_gap_is_recorded_once() {
    let state = AccountState::default();
    let w = window(&[("s", counts(5_000, 50, 0))]);
    let figures = |bounce: f64| SesFigures {
        bounce_rate: Some(bounce),
        complaint_rate: Some(0.0),
        at: NOW,
    };
    let with = |f: Option<SesFigures>| Evidence::uncut(w.clone()).with_ses(f);
    let t = evaluate(
        &state,
        &with(Some(figures(0.095))),
        &Thresholds::default(),
        &STILL,
        NOW,
    )
    .unwrap();
    assert_eq!((t.to, t.cause), (StateName::Paused, Cause::BounceRate));
    assert_eq!(t.rates.ses.bounce_rate, 0.095);
    assert_eq!(t.rates.bounce_rate, 0.01, "sesguard's own count beside it");
    assert!(
        t.next
            .note
            .unwrap()
            .contains("SES reports a bounce rate of 9.50 %")
    );
    // 3.5 % at SES, 1 % counted: feedback is missing. Recorded once, cleared once.
    let gap = evaluate(
        &state,
        &with(Some(figures(0.035))),
        &Thresholds::default(),
        &STILL,
        NOW,
    )
    .unwrap();
    assert_eq!(
        (gap.from, gap.to, gap.cause),
        (StateName::Active, StateName::Active, Cause::FeedbackGap)
    );
    assert_eq!(gap.next.feedback_missing, Some(Signal::BounceRate));
    let noted = gap.next;
    assert_eq!(
        evaluate(
            &noted,
            &with(Some(figures(0.035))),
            &Thresholds::default(),
            &STILL,
            NOW
        ),
        None
    );
    assert_eq!(
        evaluate(&noted, &with(None), &Thresholds::default(), &STILL, NOW),
        None,
        "no figure read: nothing known"
    );
    assert_eq!(
        evaluate(
            &noted,
            &with(Some(figures(0.025))),
            &Thresholds::default(),
            &STILL,
            NOW
        ),
        None,
        "1.5 points apart: still open (it closes under 1)"
    );
    let agreed = evaluate(
        &noted,
        &with(Some(figures(0.012))),
        &Thresholds::default(),
        &STILL,
        NOW,
    )
    .unwrap();
    assert_eq!(agreed.next.feedback_missing, None);
}

#[test]
fn an_operators_timed_pause_stays_the_operators_until_it_ends_and_an_operational_one_turns() {
    let over = window(&[("s", counts(3_000, 300, 0))]);
    let mut operator = paused(&AccountState::default(), Signal::BounceRate, NOW);
    operator.cause = Some(Cause::Operator);
    operator.until = Some(at(60));
    assert_eq!(
        decide(&operator, &over),
        None,
        "the operator's, until it ends"
    );
    let mut throttled = operator.clone();
    throttled.cause = Some(Cause::SendingRate);
    let t = decide(&throttled, &over).unwrap();
    assert_eq!(
        (t.to, t.cause, t.next.until),
        (StateName::Paused, Cause::BounceRate, None)
    );
}

#[test]
fn a_timed_pause_ending_over_the_pause_level_stays_paused_in_one_write() {
    // 8.5 %: over the pause level, under the critical one.
    let mut state = paused(&AccountState::default(), Signal::BounceRate, NOW);
    state.cause = Some(Cause::Operator);
    state.until = Some(NOW);
    let w = window(&[("a", counts(1_000, 85, 0)), ("b", counts(1_000, 85, 0))]);
    let t = decide(&state, &w).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause),
        (StateName::Paused, StateName::Paused, Cause::BounceRate)
    );
    assert_eq!(t.next.until, None);
}
