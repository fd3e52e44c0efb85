//! The limits' arithmetic: the bucket, the pace, the windows and the patch.

use std::time::Duration;

use super::*;
use crate::domain::common::timestamp::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_132_800_000); // a midnight

fn at(seconds: f64) -> Timestamp {
    T0.plus(Duration::from_secs_f64(seconds))
}

#[test]
fn a_full_bucket_grants_its_capacity_then_refills_at_the_rate() {
    let limits = RateLimits::from_send_rate(14.0);
    let first = limits.take(None, 20, T0);
    assert_eq!(first.granted, 14);
    assert_eq!(first.next_at, Some(at(1.0 / 14.0)));
    let half_second = limits.take(Some(&first.state), 20, at(0.5));
    assert_eq!(half_second.granted, 7);
    let later = limits.take(Some(&half_second.state), 3, at(10.0));
    assert_eq!((later.granted, later.next_at), (3, None));
    assert!(
        (later.state.tokens - 11.0).abs() < 1e-9,
        "capped at capacity, minus 3"
    );
}

/// A repeatable random number below `n` on each call (xorshift64).
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// A store's conditional write of one part at `now`, with its give-back: the tokens granted,
/// or the arrival time the write met.
fn write(
    pace: &Pace,
    part: &mut Option<i64>,
    step: PaceStep,
    now: Timestamp,
) -> Result<u64, Option<i64>> {
    match step {
        PaceStep::Advance {
            asked,
            by_us,
            floor_us,
        } => match *part {
            Some(at) if at >= floor_us => {
                let (granted, back) = pace.settle(asked, by_us, at + by_us, now);
                *part = Some(at + by_us - back);
                Ok(granted)
            }
            other => Err(other),
        },
        PaceStep::Restart {
            granted,
            to_us,
            floor_us,
        } => match *part {
            Some(at) if at >= floor_us => Err(Some(at)),
            _ => {
                *part = Some(to_us);
                Ok(granted)
            }
        },
        PaceStep::Wait { .. } => Ok(0),
    }
}

#[test]
fn a_paced_part_grants_like_the_bucket() {
    let pace = RateLimits::from_send_rate(14.0).pace();
    assert_eq!(pace.parts, 1);
    let mut part = None;
    let first = pace.step(None, 20, T0);
    assert!(matches!(first, PaceStep::Restart { granted: 14, .. }));
    assert_eq!(write(&pace, &mut part, first, T0), Ok(14));
    let empty = pace.step(part, 1, T0);
    let PaceStep::Wait { until } = empty else {
        panic!("{empty:?}")
    };
    assert!(
        until >= at(1.0 / 14.0) && until <= at(1.0 / 14.0).plus(Duration::from_millis(1)),
        "one token's refill away"
    );
    let half = pace.step(part, 20, at(0.5));
    assert!(
        matches!(half, PaceStep::Advance { asked: 7, .. }),
        "{half:?}"
    );
    assert_eq!(write(&pace, &mut part, half, at(0.5)), Ok(7));
    assert!((pace.available(part, at(0.5))).abs() < 1e-6);
    assert!((pace.available(part, at(100.0)) - 14.0).abs() < 1e-6);
}

#[test]
fn writers_with_stale_views_keep_what_fits_and_give_the_rest_back() {
    let pace = RateLimits::from_send_rate(10.0).pace();
    let mut part = None;
    assert_eq!(write(&pace, &mut part, pace.step(None, 6, T0), T0), Ok(6));
    // Two writers both saw the part with 4 tokens left; their adds are applied in turn.
    let seen = part;
    let first = pace.step(seen, 4, T0);
    let second = pace.step(seen, 4, T0);
    assert!(
        matches!(first, PaceStep::Advance { asked: 4, .. }),
        "{first:?}"
    );
    assert_eq!(write(&pace, &mut part, first, T0), Ok(4));
    assert_eq!(write(&pace, &mut part, second, T0), Ok(0), "nothing left");
    assert!(
        pace.available(part, T0).abs() < 1e-6,
        "empty, not overdrawn"
    );
    let PaceStep::Advance { by_us, .. } = second else {
        panic!("{second:?}")
    };
    let over = part.unwrap() + by_us;
    assert_eq!(
        pace.settle(4, by_us, over, at(0.25)),
        (2, by_us / 2),
        "half refilled"
    );
}

#[test]
fn a_bucket_that_never_refills_paces_a_token_a_day_not_nan() {
    let pace = RateLimits::from_send_rate(0.0).pace();
    let mut part = None;
    let first = pace.step(None, 5, T0);
    assert_eq!(write(&pace, &mut part, first, T0), Ok(1), "{first:?}");
    let PaceStep::Wait { until } = pace.step(part, 5, at(60.0)) else {
        panic!("no token a minute later")
    };
    assert!(until >= at(86_400.0) && until <= at(86_401.0), "{until:?}");
}

#[test]
fn fast_buckets_are_split_into_parts_that_each_hold_a_token() {
    let parts = |rate: f64, capacity: f64| {
        RateLimits {
            capacity,
            ..RateLimits::from_send_rate(rate)
        }
        .pace()
        .parts
    };
    assert_eq!(parts(14.0, 14.0), 1);
    assert_eq!(parts(250.0, 250.0), 1);
    assert_eq!(parts(1_000.0, 1_000.0), 4);
    assert_eq!(parts(50_000.0, 50_000.0), MAX_PACE_PARTS);
    assert_eq!(parts(1_000.0, 2.0), 2, "a part holds at least one token");
    let pace = RateLimits::from_send_rate(1_000.0).pace();
    assert!((pace.available(None, T0) * f64::from(pace.parts) - 1_000.0).abs() < 1e-6);
}

/// Six writers take in turns at random moments (`gap_ms` apart on average, up to
/// `most` tokens each) for a minute, each acting on what its own last write met, as sender
/// instances do: the grants (time, tokens) and the writes made.
fn race(limits: &RateLimits, gap_ms: u64, most: u64) -> (Vec<(i64, u64)>, usize) {
    let pace = limits.pace();
    let mut part = None;
    let mut seen = [None::<i64>; 6];
    let mut random = xorshift(0x2545_f491_4f6c_dd1d_u64);
    let (mut grants, mut writes, mut clock_ms) = (Vec::new(), 0, 0_i64);
    while clock_ms < 60_000 {
        clock_ms += random(2 * gap_ms) as i64;
        let now = T0.plus(Duration::from_millis(clock_ms as u64));
        let writer = random(6) as usize;
        let wanted = 1 + random(most);
        let mut assumed = pace.guess(seen[writer], now);
        for _ in 0..4 {
            let step = pace.step(assumed, wanted, now);
            if matches!(step, PaceStep::Wait { .. }) {
                grants.push((clock_ms, 0));
                break;
            }
            writes += 1;
            let outcome = write(&pace, &mut part, step, now);
            seen[writer] = match outcome {
                Ok(_) => part,
                Err(met) => met,
            };
            match outcome {
                Ok(granted) => {
                    grants.push((clock_ms, granted));
                    break;
                }
                Err(met) => assumed = met,
            }
        }
    }
    (grants, writes)
}

#[test]
fn racing_writers_above_the_rate_never_take_more_than_the_stated_bound() {
    let limits = RateLimits::from_send_rate(100.0);
    let (grants, writes) = race(&limits, 20, 10);
    for window_ms in [100_i64, 1_000, 10_000] {
        for (i, (start, _)) in grants.iter().enumerate() {
            let sum: u64 = grants[i..]
                .iter()
                .take_while(|(t, _)| t - start < window_ms)
                .map(|(_, g)| g)
                .sum();
            let bound = 1.5 * limits.capacity + 100.0 * window_ms as f64 / 1000.0;
            assert!(
                sum as f64 <= bound + 1.0,
                "{sum} in {window_ms} ms from {start}"
            );
        }
    }
    let total: u64 = grants.iter().map(|(_, g)| g).sum();
    assert!(
        (5_800..=6_300).contains(&total),
        "{total} over 60 s at 100/s"
    );
    // Full, a part refuses writers whose last sight of it is stale: those write twice.
    assert!(
        writes < grants.len() * 2,
        "{writes} writes for {} takes",
        grants.len()
    );
}

#[test]
fn racing_writers_below_the_rate_take_in_one_write_each() {
    let limits = RateLimits::from_send_rate(250.0);
    assert_eq!(limits.pace().parts, 1);
    // About 180 tokens a second wanted from a 250/s part: 5 on average every 28 ms.
    let (grants, writes) = race(&limits, 28, 9);
    let wanted_total: u64 = grants.len() as u64 * 5;
    let total: u64 = grants.iter().map(|(_, g)| g).sum();
    assert!(
        total * 100 >= wanted_total * 95,
        "{total} of about {wanted_total}"
    );
    // The extra writes are the restarts of a part that fell more than the slack behind
    // (once every second or two at this load): under 3 %.
    assert!(
        writes * 100 <= grants.len() * 103,
        "{writes} writes for {} takes",
        grants.len()
    );
}

#[test]
fn window_limits_bind_and_say_when_the_window_turns() {
    let limits = RateLimits {
        per_minute: Some(5),
        per_hour: Some(7),
        ..RateLimits::from_send_rate(100.0)
    };
    let a = limits.take(None, 10, at(30.0));
    assert_eq!(
        (a.granted, a.next_at),
        (5, Some(at(60.0))),
        "the minute is full"
    );
    let b = limits.take(Some(&a.state), 10, at(61.0));
    assert_eq!(
        (b.granted, b.next_at),
        (2, Some(at(3600.0))),
        "the hour is full"
    );
    let c = limits.take(Some(&b.state), 1, at(3600.5));
    assert_eq!(c.granted, 1, "a new hour");
}

#[test]
fn patches_change_only_what_they_name_and_null_lifts_a_window() {
    let base = RateLimits {
        per_hour: Some(100),
        ..RateLimits::from_send_rate(14.0)
    };
    let patch: LimitsPatch =
        serde_json::from_str(r#"{"capacity": 28, "per_minute": 50, "per_hour": null}"#).unwrap();
    let patched = patch.apply(base).unwrap();
    assert_eq!(patched.capacity, 28.0);
    assert_eq!(patched.refill_per_second, 14.0);
    assert_eq!((patched.per_minute, patched.per_hour), (Some(50), None));
    assert!(patched.enabled);
    assert!(LimitsPatch::default().is_empty());
    let later = LimitsPatch {
        enabled: Some(false),
        ..LimitsPatch::default()
    };
    let both = patch.then(&later).apply(base).unwrap();
    assert_eq!((both.capacity, both.enabled), (28.0, false));
}

#[test]
fn patches_that_would_stop_the_bucket_are_refused() {
    let base = RateLimits::from_send_rate(14.0);
    let zero: LimitsPatch = serde_json::from_str(r#"{"refill_per_second": 0}"#).unwrap();
    assert_eq!(zero.apply(base).unwrap_err().field, "refill_per_second");
    let small: LimitsPatch = serde_json::from_str(r#"{"capacity": 0.5}"#).unwrap();
    assert_eq!(small.apply(base).unwrap_err().field, "capacity");
    assert!(serde_json::from_str::<LimitsPatch>(r#"{"burst": 3}"#).is_err());
}

#[test]
fn periods_show_each_limits_use_now() {
    let limits = RateLimits {
        per_minute: Some(10),
        per_day: Some(100),
        ..RateLimits::from_send_rate(14.0)
    };
    let fresh = limits.periods(None, at(30.0));
    assert_eq!(
        (fresh.second.limit, fresh.second.available),
        (Some(14), Some(14))
    );
    assert_eq!(fresh.minute.status, "ok");
    assert_eq!(fresh.hour.status, "unlimited");
    let taken = limits.take(None, 9, at(30.0));
    let p = limits.periods(Some(&taken.state), at(30.0));
    assert_eq!((p.second.current, p.second.available), (9, Some(5)));
    assert_eq!(
        (p.minute.current, p.minute.available, p.minute.status),
        (9, Some(1), "near")
    );
    assert_eq!(p.minute.percentage, Some(90.0));
    assert_eq!(p.day.current, 9);
    let next_minute = limits.periods(Some(&taken.state), at(61.0));
    assert_eq!(next_minute.minute.current, 0, "a new minute");
    assert_eq!(next_minute.second.available, Some(14), "refilled");
    assert_eq!(next_minute.day.current, 9, "the same day");
    let off = RateLimits {
        enabled: false,
        ..limits
    };
    assert_eq!(off.periods(None, at(0.0)).minute.status, "disabled");
}

#[test]
fn disabled_limits_grant_everything() {
    let limits = RateLimits {
        enabled: false,
        ..RateLimits::from_send_rate(1.0)
    };
    assert_eq!(limits.take(None, 1_000, T0).granted, 1_000);
}

#[test]
fn asking_for_nothing_changes_nothing_but_the_refill() {
    let limits = RateLimits::from_send_rate(2.0);
    let g = limits.take(None, 0, T0);
    assert_eq!((g.granted, g.next_at), (0, None));
    assert_eq!(g.state.tokens, 2.0);
}

/// One sender instance of [`senders`]: its clock's offset from true time, when it is next
/// free, its batch's requests left, the tokens it holds and what it last saw of each part.
struct Instance {
    offset_ms: i64,
    free_at: i64,
    remaining: u64,
    held: Option<(u64, bool, i64)>,
    seen: Vec<Option<i64>>,
    send_ms: Option<f64>,
}

/// How the senders of [`senders`] use their tokens.
#[derive(Clone, Copy)]
enum Use {
    /// As before the line: one take for the rest of the batch, kept until used.
    Batch,
    /// Within `token_life` of the take, taking what fits in it at the pace sends have gone.
    Life(i64),
}

/// `count` sender instances, their clocks `skew_ms` ahead or behind true time in turn,
/// sending batches of ten back to back for a minute — every send 40 to 80 ms to SES — through
/// one paced bucket under `limits`, waiting for a token when the bucket is dry: more demand
/// than the limits allow. The true times (ms) at which sends reached SES.
fn senders(limits: &RateLimits, count: usize, skew_ms: i64, usage: Use) -> Vec<i64> {
    let pace = limits.pace();
    let mut parts = vec![None::<i64>; usize::from(pace.parts)];
    let mut random = xorshift(0x9e37_79b9_7f4a_7c15_u64);
    let mut instances: Vec<Instance> = (0..count)
        .map(|i| Instance {
            offset_ms: if i % 2 == 0 { skew_ms } else { -skew_ms },
            free_at: random(100) as i64,
            remaining: 0,
            held: None,
            seen: vec![None; parts.len()],
            send_ms: None,
        })
        .collect();
    let mut sends = Vec::new();
    for t in 0..60_000_i64 {
        for (i, me) in instances.iter_mut().enumerate() {
            if t < me.free_at {
                continue;
            }
            let local = t + me.offset_ms;
            let now = T0.plus(Duration::from_millis(local.max(0) as u64));
            if me.remaining == 0 {
                me.remaining = 10;
                me.held = None;
            }
            let retake = match (me.held, usage) {
                (None, _) => true,
                (Some((0, dry, _)), Use::Life(_)) => !dry,
                (Some((0, _, _)), Use::Batch) => false,
                (Some((_, _, taken)), Use::Life(life)) => local - taken > life,
                (Some(_), Use::Batch) => false,
            };
            if retake {
                let wanted = match (usage, me.send_ms) {
                    (Use::Life(life), Some(ms)) => {
                        me.remaining.min((life as f64 / ms) as u64).max(1)
                    }
                    _ => me.remaining,
                };
                let part = (i + sends.len()) % parts.len();
                let mut assumed = pace.guess(me.seen[part], now);
                let mut granted = 0;
                for _ in 0..4 {
                    let step = pace.step(assumed, wanted, now);
                    if let PaceStep::Wait { until } = step {
                        me.free_at = t + until.as_millis() - now.as_millis();
                        break;
                    }
                    match write(&pace, &mut parts[part], step, now) {
                        Ok(n) => {
                            me.seen[part] = parts[part];
                            granted = n;
                            break;
                        }
                        Err(met) => (me.seen[part], assumed) = (met, met),
                    }
                }
                me.held = Some((granted, granted < wanted, local));
            }
            match me.held {
                Some((left, dry, taken)) if left > 0 => {
                    me.held = Some((left - 1, dry, taken));
                    me.remaining -= 1;
                    sends.push(t);
                    let took = 40 + random(41) as i64;
                    me.send_ms = Some(
                        me.send_ms
                            .map_or(took as f64, |s| s + 0.2 * (took as f64 - s)),
                    );
                    me.free_at = t + took;
                }
                // Dry: the request is deferred and comes back when the token it was told of is
                // due (or a millisecond on), to take again.
                _ => {
                    me.held = None;
                    me.free_at = me.free_at.max(t + 1);
                }
            }
        }
    }
    sends
}

/// The most sends in any half-open window of `window_ms`, from sorted send times.
fn busiest(sends: &[i64], window_ms: i64) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, &at) in sends.iter().enumerate() {
        while sends[first] <= at - window_ms {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

fn line(max_send_rate: f64) -> SesLine {
    SesLine {
        max_send_rate,
        clock_skew: Duration::from_millis(10),
        token_life: Duration::from_millis(250),
    }
}

#[test]
fn sends_stay_under_ses_rate_in_every_window_with_skewed_clocks() {
    for (rate, count) in [(1.0, 2), (14.0, 4), (100.0, 12), (1_000.0, 100)] {
        let line = line(rate);
        let limits = line.limits();
        let sends = senders(&limits, count, 10, Use::Life(250));
        for window_s in [0.25, 1.0, 5.0, 30.0] {
            let most = busiest(&sends, (window_s * 1000.0) as i64);
            let allowed = line.allowed(window_s);
            assert!(
                most as u64 <= allowed,
                "{rate}/s: {most} sends in a window of {window_s} s, SES allows {allowed}"
            );
            assert!(
                (most as f64) < line.bound(&limits, window_s),
                "{rate}/s: {most} in {window_s} s past the stated bound"
            );
        }
        // Kept without starving the account: the minute carries what the limits refill.
        assert!(
            sends.len() as f64 >= 0.9 * 60.0 * limits.refill_per_second,
            "{rate}/s: {} sends in 60 s under {limits:?}",
            sends.len()
        );
        eprintln!(
            "{rate}/s: {} sends in 60 s, refill {:.2}",
            sends.len(),
            limits.refill_per_second
        );
    }
}

#[test]
fn the_old_burst_crosses_ses_rate() {
    let limits = RateLimits::from_send_rate(100.0);
    let sends = senders(&limits, 12, 10, Use::Batch);
    let most = busiest(&sends, 1_000);
    assert!(most > 100, "{most} sends in the busiest second");
}

#[test]
fn the_line_holds_patched_limits_and_keeps_a_token() {
    let line = line(14.0);
    let limits = line.limits();
    assert_eq!(limits.line, Some(line));
    assert!(line.bound(&limits, 1.0) <= 15.0 + 1e-9, "{limits:?}");
    let loose: LimitsPatch =
        serde_json::from_str(r#"{"capacity": 100, "refill_per_second": 100}"#).unwrap();
    let held = loose.apply(limits).unwrap();
    assert!(held.capacity <= 15.0 / 3.0, "{held:?}");
    assert!(line.bound(&held, 1.0) <= 15.0 + 1e-9, "{held:?}");
    let stricter: LimitsPatch = serde_json::from_str(r#"{"refill_per_second": 2}"#).unwrap();
    assert_eq!(stricter.apply(limits).unwrap().refill_per_second, 2.0);
    // Below a send a second, still a token to send with.
    let tiny = super::SesLine {
        max_send_rate: 0.5,
        ..line
    };
    assert_eq!(tiny.limits().capacity, 1.0);
    assert!(tiny.limits().refill_per_second > 0.0);
}
