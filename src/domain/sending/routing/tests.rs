//! Tests of [`super`]: routing.

use super::*;
use crate::domain::reputation::state::{Cause, Quarantine, Status};

const NOW: Timestamp = Timestamp::from_millis(10_000_000);

fn candidate<'a>(
    name: &'a str,
    state: &'a AccountState,
    thresholds: &'a Thresholds,
) -> Candidate<'a> {
    Candidate {
        name,
        state,
        daily_quota: 50_000,
        sent_24h: 0,
        quota_frees_at: NOW.plus(Duration::from_secs(600)),
        rate_wait: Duration::ZERO,
        window: Counts::default(),
        recent_stream_sends: 0,
        thresholds,
        blocked_at: &[],
    }
}

fn message(priority: Priority) -> Message<'static> {
    Message {
        stream: "transactional",
        priority,
        risk: 0.0,
        draw: 0.5,
        providers: &[],
    }
}

fn account(name: &str, r: &Route) -> bool {
    matches!(r, Route::Send { account } if account == name)
}

#[test]
fn the_primary_takes_the_mail_while_it_can() {
    let (state, t) = (AccountState::default(), Thresholds::default());
    let c = [
        candidate("primary", &state, &t),
        candidate("backup", &state, &t),
    ];
    assert!(account(
        "primary",
        &route(
            &message(Priority::Normal),
            &c,
            &RoutingPolicy::default(),
            NOW
        )
    ));
}

#[test]
fn paused_and_quarantined_accounts_are_skipped_in_order() {
    let t = Thresholds::default();
    let paused = AccountState {
        status: Status::Paused,
        ..AccountState::default()
    };
    let mut quarantined = AccountState::default();
    quarantined.quarantined.insert(
        "transactional".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: NOW,
            bounce_rate: 0.1,
            complaint_rate: 0.0,
        },
    );
    let ok = AccountState::default();
    let c = [
        candidate("a", &paused, &t),
        candidate("b", &quarantined, &t),
        candidate("c", &ok, &t),
    ];
    assert!(account(
        "c",
        &route(
            &message(Priority::Normal),
            &c,
            &RoutingPolicy::default(),
            NOW
        )
    ));
}

#[test]
fn the_quota_reserve_defers_bulk_first_then_normal_and_never_critical() {
    let (state, t) = (AccountState::default(), Thresholds::default());
    let policy = RoutingPolicy::default();
    let with_left = |left: u64| {
        let mut c = candidate("backup", &state, &t);
        c.sent_24h = c.daily_quota - left;
        [c]
    };
    assert!(account(
        "backup",
        &route(&message(Priority::Bulk), &with_left(5_001), &policy, NOW)
    ));
    assert!(matches!(
        route(&message(Priority::Bulk), &with_left(5_000), &policy, NOW),
        Route::Defer { .. }
    ));
    assert!(account(
        "backup",
        &route(&message(Priority::Normal), &with_left(5_000), &policy, NOW)
    ));
    assert!(matches!(
        route(&message(Priority::Normal), &with_left(2_500), &policy, NOW),
        Route::Defer { .. }
    ));
    assert!(account(
        "backup",
        &route(&message(Priority::Critical), &with_left(1), &policy, NOW)
    ));
    let Route::Defer { until, reason } =
        route(&message(Priority::Critical), &with_left(0), &policy, NOW)
    else {
        panic!("an exhausted quota defers everything");
    };
    assert_eq!(
        until,
        NOW.plus(Duration::from_secs(600)),
        "until the quota frees"
    );
    assert!(reason.contains("daily quota used up"), "{reason}");
}

#[test]
fn deferral_waits_for_the_earliest_thing_that_frees_up() {
    let t = Thresholds::default();
    let timed = AccountState {
        status: Status::Paused,
        until: Some(NOW.plus(Duration::from_secs(120))),
        ..AccountState::default()
    };
    let ok = AccountState::default();
    let mut slow = candidate("b", &ok, &t);
    slow.rate_wait = Duration::from_secs(3);
    let c = [candidate("a", &timed, &t), slow];
    let Route::Defer { until, reason } = route(
        &message(Priority::Normal),
        &c,
        &RoutingPolicy::default(),
        NOW,
    ) else {
        panic!()
    };
    assert_eq!(until, NOW.plus(Duration::from_secs(3)));
    assert_eq!(reason, "a: paused; b: send rate");
    let Route::Defer { until, .. } = route(
        &message(Priority::Normal),
        &c[..1],
        &RoutingPolicy::default(),
        NOW,
    ) else {
        panic!()
    };
    assert_eq!(until, NOW.plus(Duration::from_secs(120)));
}

#[test]
fn a_risky_stream_fails_over_only_within_the_backups_bounce_budget() {
    let (state, t) = (AccountState::default(), Thresholds::default());
    let risky = Message {
        stream: "verification",
        priority: Priority::Normal,
        risk: 0.2,
        draw: 0.5,
        providers: &[],
    };
    // A healthy backup with volume absorbs it...
    let mut busy = candidate("backup", &state, &t);
    busy.window = Counts {
        sends: 10_000,
        hard_bounces: 50,
        ..Counts::default()
    };
    busy.recent_stream_sends = 100;
    assert!(account(
        "backup",
        &route(
            &risky,
            std::slice::from_ref(&busy),
            &RoutingPolicy::default(),
            NOW
        )
    ));
    // ...until the stream's bounces in flight would take it past its warn level.
    busy.recent_stream_sends = 1_800;
    assert!(matches!(
        route(&risky, &[busy], &RoutingPolicy::default(), NOW),
        Route::Defer { .. }
    ));
    // An idle backup takes none of it: its first bounce alone would be a rate the guard
    // pauses on (1 in 1, lower bound 27 %)...
    let mut idle = candidate("backup", &state, &t);
    assert!(matches!(
        route(
            &risky,
            std::slice::from_ref(&idle),
            &RoutingPolicy::default(),
            NOW
        ),
        Route::Defer { .. }
    ));
    // ...a backup with 300 clean sends of its own takes it within its warn level (40 in
    // flight: 8.2 expected bounces in 301 sends, 2.7 %; 60 in flight: 12.2, over 4 %).
    idle.window = Counts {
        sends: 300,
        ..Counts::default()
    };
    idle.recent_stream_sends = 40;
    assert!(account(
        "backup",
        &route(
            &risky,
            std::slice::from_ref(&idle),
            &RoutingPolicy::default(),
            NOW
        )
    ));
    idle.recent_stream_sends = 60;
    assert!(matches!(
        route(&risky, &[idle], &RoutingPolicy::default(), NOW),
        Route::Defer { .. }
    ));
}

#[test]
fn a_streams_risk_is_its_worst_quarantined_rate() {
    let mut a = AccountState::default();
    a.quarantined.insert(
        "v".into(),
        Quarantine {
            cause: Cause::BounceRate,
            since: NOW,
            bounce_rate: 0.16,
            complaint_rate: 0.0,
        },
    );
    assert_eq!(stream_risk("v", [&a, &AccountState::default()]), 0.16);
    assert_eq!(stream_risk("t", [&a]), 0.0);
}

#[test]
fn an_account_on_probation_takes_its_share_and_the_rest_goes_where_it_went() {
    use crate::domain::reputation::probation::Probation;
    let t = Thresholds::default();
    let probation = AccountState {
        probation: Some(Probation {
            step: 0,
            share: 0.1,
            since: NOW,
        }),
        ..AccountState::default()
    };
    let healthy = AccountState::default();
    let candidates = [
        candidate("primary", &probation, &t),
        candidate("backup", &healthy, &t),
    ];
    let policy = RoutingPolicy::default();
    let drawn = |draw| Message {
        draw,
        ..message(Priority::Normal)
    };
    assert!(account(
        "primary",
        &route(&drawn(0.05), &candidates, &policy, NOW)
    ));
    assert!(account(
        "backup",
        &route(&drawn(0.5), &candidates, &policy, NOW)
    ));
    let alone = [candidate("primary", &probation, &t)];
    match route(&drawn(0.5), &alone, &policy, NOW) {
        Route::Defer { reason, .. } => assert!(reason.contains("probation"), "{reason}"),
        other => panic!("expected a deferral, got {other:?}"),
    }
}

#[test]
fn draws_are_stable_and_spread_evenly() {
    assert_eq!(draw("send:key:a"), draw("send:key:a"));
    let below = (0..10_000)
        .filter(|i| draw(&format!("send:key:{i}")) < 0.1)
        .count();
    assert!((850..1150).contains(&below), "{below} of 10,000 below 0.1");
}

#[test]
fn mail_to_a_provider_that_blocks_the_primary_goes_through_the_next_account() {
    let (state, t) = (AccountState::default(), Thresholds::default());
    let blocked = ["microsoft".to_owned()];
    let mut primary = candidate("primary", &state, &t);
    primary.blocked_at = &blocked;
    let candidates = [primary, candidate("backup", &state, &t)];
    let to_outlook = Message {
        providers: &["google", "microsoft"],
        ..message(Priority::Normal)
    };
    let policy = RoutingPolicy::default();
    assert!(account(
        "backup",
        &route(&to_outlook, &candidates, &policy, NOW)
    ));
    // Mail to other providers stays on the primary.
    let to_gmail = Message {
        providers: &["google"],
        ..message(Priority::Normal)
    };
    assert!(account(
        "primary",
        &route(&to_gmail, &candidates, &policy, NOW)
    ));
    // Blocked everywhere: deferred with the reason, never sent into the block.
    let mut backup = candidate("backup", &state, &t);
    backup.blocked_at = &blocked;
    let everywhere = [candidates[0].clone(), backup];
    match route(&to_outlook, &everywhere, &policy, NOW) {
        Route::Defer { reason, .. } => {
            assert!(reason.contains("backup: blocked at microsoft"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
