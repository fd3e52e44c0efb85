//! How sure a rate is: the Wilson score interval of a proportion, so that a small sample is
//! judged by what it can show (40 bounces in 180 sends is unambiguous, 2 in 10 is not) and a
//! large one by its rate. Pure arithmetic; no clock, no I/O.

/// A one-sided confidence level, as the z-score the Wilson interval uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    z: f64,
}

impl Confidence {
    /// The confidence level `level` (0.5..1, e.g. 0.95) for a one-sided bound: each bound is
    /// wrong at most `1 - level` of the time.
    pub fn new(level: f64) -> Self {
        Self {
            z: normal_quantile(level.clamp(0.5, 0.999_999)),
        }
    }

    /// The z-score.
    pub fn z(self) -> f64 {
        self.z
    }

    /// The Wilson score interval `[low, high]` of `bad` events in `n` trials; `[0, 1]` when
    /// nothing was tried (no evidence either way).
    pub fn interval(self, bad: u64, n: u64) -> [f64; 2] {
        if n == 0 {
            return [0.0, 1.0];
        }
        let n = n as f64;
        let p = (bad as f64 / n).min(1.0);
        let z2 = self.z * self.z;
        let centre = p + z2 / (2.0 * n);
        let spread = self.z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        let denominator = 1.0 + z2 / n;
        [
            ((centre - spread) / denominator).max(0.0),
            ((centre + spread) / denominator).min(1.0),
        ]
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Self::new(0.95)
    }
}

/// The standard normal quantile (inverse CDF) at `p` in (0, 1): Acklam's rational
/// approximation, relative error under 1.2e-9 — ample for a threshold. Written here rather
/// than taken from a statistics crate: it is the only function of one that sesguard needs.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantiles_match_the_normal_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_6),
            (0.95, 1.644_853_6),
            (0.99, 2.326_347_9),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-6,
                "{p}: {}",
                normal_quantile(p)
            );
        }
        assert!((normal_quantile(0.01) + 2.326_347_9).abs() < 1e-6);
    }

    #[test]
    fn a_small_clear_sample_is_unambiguous_and_a_small_vague_one_is_not() {
        let c = Confidence::new(0.95);
        let [low, _] = c.interval(40, 180);
        assert!(low > 0.16 && low < 0.18, "40 of 180: low {low}");
        let [low, high] = c.interval(2, 10);
        assert!(low < 0.08 && high > 0.4, "2 of 10: [{low}, {high}]");
    }

    #[test]
    fn the_interval_behaves_at_zero_and_at_large_volumes() {
        let c = Confidence::default();
        assert_eq!(c.interval(0, 0), [0.0, 1.0]);
        let [low, high] = c.interval(0, 200);
        assert_eq!(low, 0.0);
        assert!((high - 0.0133).abs() < 0.0005, "0 of 200: high {high}");
        let [low, high] = c.interval(8_000, 100_000);
        assert!(
            low > 0.0785 && high < 0.0815,
            "8 % of 100,000: [{low}, {high}]"
        );
        assert_eq!(c.interval(10, 10)[1], 1.0);
    }
}
