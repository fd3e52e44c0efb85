//! The evidence a decision is made on: an account's counter buckets, cut where its state says
//! the mail was judged already. After a resume only the mail sent since counts; after a
//! stream's return only that stream's mail sent since; a probation step is judged on the mail
//! sent since it began. Buckets start afresh at each of these times (see
//! [`WindowConfig::bucket_from`]), so every cut falls on a bucket boundary and is exact.

use std::collections::BTreeMap;

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::counters::{Bucket, Counts, WindowConfig, WindowTotals};
use crate::domain::reputation::ses_view::SesFigures;
use crate::domain::reputation::state::{AccountState, Status};
use crate::domain::reputation::thresholds::Thresholds;

/// What the guard judges an account on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    /// Everything the window holds, judged before or not: the account as SES sees it.
    pub whole: Counts,
    /// The mail not judged before: the account's since its resume, each stream's since its
    /// return.
    pub judged: WindowTotals,
    /// The account's mail (quarantined streams left out) since its probation step began.
    pub account_step: Counts,
    /// Each stream on probation: its mail since its step began.
    pub stream_steps: BTreeMap<String, Counts>,
    /// SES's own figures for the account, when they were read.
    pub ses: Option<SesFigures>,
}

impl Evidence {
    /// The evidence in the buckets whose start lies in `[first, last]`, cut as `state` says.
    pub fn gather<'a>(
        buckets: impl IntoIterator<Item = &'a Bucket>,
        first: Timestamp,
        last: Timestamp,
        state: &AccountState,
    ) -> Self {
        let mut evidence = Evidence::default();
        for bucket in buckets {
            if bucket.start < first || bucket.start > last {
                continue;
            }
            evidence.whole += bucket.total;
            if state.judged_since.is_some_and(|since| bucket.start < since) {
                continue;
            }
            let mut total = bucket.total;
            let mut quarantined = Counts::default();
            for (stream, counts) in &bucket.streams {
                let returned = state.returned.get(stream);
                if returned.is_some_and(|r| bucket.start < r.since) {
                    total -= *counts;
                    continue;
                }
                *evidence.judged.streams.entry(stream.clone()).or_default() += *counts;
                if state.is_quarantined(stream) {
                    quarantined += *counts;
                }
                if let Some(step) = returned.and_then(|r| r.probation)
                    && bucket.start >= step.since
                {
                    *evidence.stream_steps.entry(stream.clone()).or_default() += *counts;
                }
            }
            evidence.judged.total += total;
            if let Some(step) = state.probation
                && bucket.start >= step.since
            {
                total -= quarantined;
                evidence.account_step += total;
            }
        }
        evidence
    }

    /// The same evidence with SES's own `figures` beside it.
    pub fn with_ses(mut self, figures: Option<SesFigures>) -> Self {
        self.ses = figures;
        self
    }

    /// Evidence with nothing cut: every count judged, every step the whole window.
    pub fn uncut(window: WindowTotals) -> Self {
        Self {
            whole: window.total,
            account_step: window.total,
            stream_steps: window.streams.clone(),
            judged: window,
            ses: None,
        }
    }
}

impl WindowConfig {
    /// The start of the bucket that counts mail sent at `at` on an account whose judged
    /// periods begin at `origins` (sorted): buckets run on from the latest origin at or before
    /// `at`, and on the fixed grid before the first.
    pub fn bucket_from(&self, at: Timestamp, origins: &[Timestamp]) -> Timestamp {
        match origins.iter().rev().find(|origin| **origin <= at) {
            Some(origin) => {
                let size = self.bucket.as_millis().max(1) as i64;
                let offset = (at.as_millis() - origin.as_millis()) / size * size;
                Timestamp::from_millis(origin.as_millis() + offset)
            }
            None => self.bucket_of(at),
        }
    }
}

/// Whether an active account's review may decide on a window read a few seconds ago, as
/// long as no hard bounce or complaint came since: off probation, no stream quarantined or on
/// its way back, and every judged rate — the account's and each stream's — under its warn
/// level. Then only bad feedback can bring a transition (more sends and deliveries lower the
/// rates, and no step or timer runs), and none comes from a read that old.
pub fn is_calm(state: &AccountState, evidence: &Evidence, thresholds: &Thresholds) -> bool {
    // Counted, not as rates: complaints with no sends yet are no rate, but the sends to come
    // would make them one.
    let under = |bad: u64, level: f64, sends: u64| bad == 0 || (bad as f64) < level * sends as f64;
    let under_warn = |c: &Counts| {
        under(c.hard_bounces, thresholds.bounce_warn, c.sends)
            && under(c.complaints, thresholds.complaint_warn, c.sends)
    };
    state.status == Status::Active
        && state.probation.is_none()
        && state.quarantined.is_empty()
        && state.returned.is_empty()
        && under_warn(&evidence.judged.total)
        && evidence.judged.streams.values().all(under_warn)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::reputation::rules::tests::{counts as bad, window};
    use crate::domain::reputation::state::{Cause, Quarantine};

    #[test]
    fn only_an_active_account_under_every_warn_level_is_calm() {
        let t = Thresholds::default();
        let calm = |state: &AccountState, w: &WindowTotals| {
            is_calm(state, &Evidence::uncut(w.clone()), &t)
        };
        let active = AccountState::default();
        let cases = [
            (bad(20_000, 700, 10), true, "3.5 %, 0.05 %"),
            (bad(0, 0, 0), true, "no mail yet"),
            (bad(20_000, 800, 0), false, "4 %: the warn level"),
            (bad(100, 5, 0), false, "over warn below the volume"),
            (bad(20_000, 0, 16), false, "0.08 % complaints"),
            (bad(0, 0, 10), false, "complaints before any send"),
        ];
        for (c, expected, why) in cases {
            assert_eq!(calm(&active, &window(&[("a", c)])), expected, "{why}");
        }
        let one_stream = window(&[("a", bad(30_000, 0, 0)), ("b", bad(1_000, 50, 0))]);
        assert!(!calm(&active, &one_stream), "one stream at 5 %");
        let warning = AccountState {
            status: Status::Warning,
            ..AccountState::default()
        };
        assert!(!calm(&warning, &window(&[("a", bad(20_000, 0, 0))])));
        let mut quarantine = AccountState::default();
        quarantine.quarantined.insert(
            "b".into(),
            Quarantine {
                since: Timestamp::EPOCH,
                cause: Cause::BounceRate,
                bounce_rate: 0.1,
                complaint_rate: 0.0,
            },
        );
        assert!(!calm(&quarantine, &window(&[("a", bad(20_000, 0, 0))])));
    }

    use crate::domain::reputation::probation::{Probation, Return};

    const MINUTE: i64 = 60_000;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_millis(1_000 * 24 * 3600 * 1000 + minutes * MINUTE)
    }

    fn counts(sends: u64, hard_bounces: u64) -> Counts {
        Counts {
            sends,
            hard_bounces,
            ..Counts::default()
        }
    }

    #[test]
    fn buckets_start_afresh_at_each_origin_and_keep_the_grid_before_the_first() {
        let window = WindowConfig::default();
        let origins = [at(7), at(40)];
        assert_eq!(window.bucket_from(at(6), &origins), at(0), "fixed grid");
        assert_eq!(window.bucket_from(at(7), &origins), at(7));
        assert_eq!(window.bucket_from(at(21), &origins), at(7));
        assert_eq!(window.bucket_from(at(22), &origins), at(22));
        assert_eq!(window.bucket_from(at(39), &origins), at(37));
        assert_eq!(window.bucket_from(at(41), &origins), at(40));
        assert_eq!(window.bucket_from(at(6), &[]), at(0));
        assert_eq!(window.bucket, Duration::from_secs(900));
    }

    #[test]
    fn mail_sent_before_a_resume_is_kept_whole_but_not_judged() {
        let state = AccountState {
            judged_since: Some(at(10)),
            ..AccountState::default()
        };
        let buckets = [
            Bucket::of(at(0), &[("bulk", counts(400, 36))]),
            Bucket::of(at(10), &[("bulk", counts(50, 1))]),
        ];
        let evidence = Evidence::gather(&buckets, at(0), at(30), &state);
        assert_eq!(evidence.whole, counts(450, 37));
        assert_eq!(evidence.judged.total, counts(50, 1));
        assert_eq!(evidence.judged.streams["bulk"], counts(50, 1));
    }

    #[test]
    fn a_returned_streams_earlier_mail_leaves_the_judged_total_and_steps_count_their_own() {
        let mut state = AccountState::default();
        state.returned.insert(
            "verification".into(),
            Return {
                since: at(15),
                probation: Some(Probation {
                    step: 1,
                    share: 0.25,
                    since: at(30),
                }),
            },
        );
        state.probation = Some(Probation {
            step: 0,
            share: 0.1,
            since: at(15),
        });
        let buckets = [
            Bucket::of(
                at(0),
                &[("verification", counts(1000, 90)), ("bulk", counts(100, 0))],
            ),
            Bucket::of(
                at(15),
                &[("verification", counts(20, 0)), ("bulk", counts(100, 1))],
            ),
            Bucket::of(at(30), &[("verification", counts(30, 3))]),
        ];
        let evidence = Evidence::gather(&buckets, at(0), at(45), &state);
        assert_eq!(evidence.whole, counts(1250, 94));
        assert_eq!(evidence.judged.total, counts(250, 4));
        assert_eq!(evidence.judged.streams["verification"], counts(50, 3));
        assert_eq!(evidence.stream_steps["verification"], counts(30, 3));
        assert_eq!(evidence.account_step, counts(150, 4));
    }
}
