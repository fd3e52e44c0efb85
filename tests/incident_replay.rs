//! Replays the incident sesguard exists for, on the embedded store with a fake clock.
//!
//! 100,800 messages a day for three days: half `verification` mail to unchecked sign-up
//! addresses whose bad share climbs from 3 % to 20 % over the first day and stays there, half
//! `transactional` mail to known addresses (0.5 % bad). Both streams list the primary
//! (5,000,000/day) and then the backup (50,000/day). Every send is an SES `Send` event and every
//! bad address a hard bounce arriving 2 to 10 minutes later (seeded), all through the real ingest
//! path and guard; every message is routed through the real routing snapshot, and what cannot
//! go is deferred and retried, never dropped.
//!
//! With the guard, no account's windowed bounce rate ever reaches 10 %, counting bounces still
//! in flight; without it (thresholds out of reach) the primary crosses 10 %. With the guard
//! the replay has a second act: on day 3 the operator resumes verification after cleaning the
//! list, probation brings it back step by step, and a relapse during probation is caught.

use std::sync::Arc;

use sesguard::adapters::sqlite::SqliteStore;
use sesguard::app::simulate::{self, KeptAlerts, Outcome, SES_PAUSE, START, Scenario, SimClock};
use sesguard::config::GuardConfig;
use sesguard::domain::reputation::guard::Alert;
use sesguard::domain::sending::routing::Priority;

const MINUTE: i64 = 60_000;
const BACKUP_QUOTA: u64 = 50_000;

/// The default scenario (the seed incident) with the guard, or with thresholds out of reach.
async fn replay(guarded: bool) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("incident.db")).unwrap());
    let scenario = Scenario::default();
    let guard = if guarded {
        GuardConfig::default()
    } else {
        simulate::unguarded(&GuardConfig::default())
    };
    let config = scenario.config(&guard).unwrap();
    let clock = Arc::new(SimClock::new());
    let alerts = KeptAlerts::default();
    let deps =
        sesguard::wiring::local(config, store, clock.clone()).with_alerts(Arc::new(alerts.clone()));
    let out = simulate::run(&deps, &clock, &alerts, &scenario, guarded)
        .await
        .unwrap();
    println!(
        "\n{}",
        simulate::report(
            if guarded {
                "with the guard"
            } else {
                "without the guard"
            },
            &out,
            200
        )
    );
    out
}

/// The start of the second act: day 3, when the operator resumes verification.
const CLEANED: i64 = START + 2 * 1440 * MINUTE;
const RELAPSE: i64 = CLEANED + 45 * MINUTE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_keeps_every_account_under_the_ses_thresholds_and_loses_no_mail() {
    let guarded = replay(true).await;

    // No account ever reaches 10 %, counting bounces still in flight.
    for (account, (rate, minute)) in &guarded.peak {
        assert!(
            *rate < SES_PAUSE,
            "{account} reached {:.2} % at minute {minute}",
            rate * 100.0
        );
    }
    // Act one: the verification stream is quarantined on the primary at its threshold, with
    // one alert, and fails over.
    let verification: Vec<&Alert> = guarded
        .alerts
        .iter()
        .filter(|a| {
            a.change.account == "primary" && a.change.stream.as_deref() == Some("verification")
        })
        .collect();
    let quarantine = &verification[0].change;
    assert_eq!(quarantine.to, "quarantined");
    assert!(
        quarantine.bounce_rate >= 0.08,
        "at its threshold: {}",
        quarantine.bounce_rate
    );
    assert_eq!(verification[0].traffic, "verification fails over to backup");
    // Act two: the operator's resume puts it on probation, a step is passed on clean mail,
    // and the relapse during probation sends it back to quarantine.
    let steps: Vec<(&str, &str, Option<f64>)> = verification[1..]
        .iter()
        .map(|a| (a.change.from.as_str(), a.change.to.as_str(), a.change.share))
        .collect();
    assert_eq!(
        steps,
        [
            ("quarantined", "probation", Some(0.1)),
            ("probation", "probation", Some(0.25)),
            ("probation", "quarantined", None),
        ]
    );
    assert_eq!(verification[1].change.actor, "operator:ana");
    let relapse = verification[3].change.at.as_millis();
    assert!(
        (RELAPSE..RELAPSE + 30 * MINUTE).contains(&relapse),
        "caught within half an hour of the relapse"
    );
    // Caught below the critical level: the primary never went past 9 %.
    assert!(guarded.peak["primary"].0 < 0.09, "{:?}", guarded.peak);
    assert!(
        guarded
            .sent
            .get(&("backup", "verification".to_owned()))
            .is_some_and(|n| *n > 0),
        "verification went to the backup"
    );
    assert!(
        !guarded
            .alerts
            .iter()
            .any(|a| a.change.account == "primary" && a.change.to == "paused"),
        "the primary never paused"
    );
    // Transactional mail keeps flowing: never deferred.
    assert_eq!(guarded.longest_wait["transactional"], 0);
    assert!(
        !guarded
            .deferred
            .keys()
            .any(|(stream, _)| stream == "transactional")
    );
    assert_eq!(
        guarded.sent.get(&("backup", "transactional".to_owned())),
        None
    );
    // The backup never exceeds its daily quota.
    assert!(guarded.backup_peak_24h <= BACKUP_QUOTA);
    // What no account could take is deferred and counted, never dropped.
    let sent: u64 = guarded.sent.values().sum();
    assert_eq!(sent + guarded.pending_at_end, guarded.generated);
    assert!(
        guarded
            .deferred
            .get(&("verification".to_owned(), Priority::Normal))
            .is_some_and(|n| *n > 0)
    );
    // The backup took the risky stream only within its bounce budget: at most the warn level
    // of the minimum volume (4 % of 200 = 8 expected bounces), plus the luck of the draw.
    let (_, _, backup_bad) = guarded.backup_any_volume;
    assert!(
        backup_bad <= 16,
        "the backup inherited {backup_bad} bounces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_guard_the_primary_crosses_the_ses_pause_threshold() {
    let unguarded = replay(false).await;
    let (rate, minute) = unguarded.peak["primary"];
    assert!(
        rate >= SES_PAUSE,
        "peak {:.2} % at minute {minute}",
        rate * 100.0
    );
    assert!(unguarded.alerts.is_empty());
    assert_eq!(
        unguarded.pending_at_end, 0,
        "nothing deferred: everything went to the primary"
    );
}
