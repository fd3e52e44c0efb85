//! What a simulation simulates: the days, the volume, the streams and how their addresses go
//! bad, the quotas, the seed, and the operator's second act.

use super::*;

/// One stream of the scenario and the bad share of its addresses over time.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamScenario {
    /// Its name.
    pub name: String,
    /// The bad share at the start.
    pub bad_from: f64,
    /// The bad share it climbs to.
    pub bad_to: f64,
    /// Hours the climb takes (0: at once).
    pub ramp_hours: f64,
    /// Critical mail (may use the quota reserve) rather than normal.
    pub critical: bool,
    /// Addresses nobody has verified (sign-ups): the stream prevention checks, when on.
    pub unverified: bool,
}

/// What is simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Days simulated.
    pub days: u32,
    /// Messages a day, spread evenly over the streams and the minutes.
    pub daily_volume: u64,
    /// The streams.
    pub streams: Vec<StreamScenario>,
    /// The primary's 24-hour quota.
    pub primary_quota: u64,
    /// The backup's 24-hour quota.
    pub backup_quota: u64,
    /// The seed of the bad addresses and the feedback delays.
    pub seed: u64,
    /// With the guard, what the operator does (`None`: nothing).
    pub act: Option<Act>,
    /// The kinds of bad address.
    pub mix: BadMix,
    /// Whether prevention refuses the unverified streams' undeliverable addresses.
    pub prevent: bool,
}

/// What the operator does in a guarded run: the story's second act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// At the start of `day` (from 2) the operator resumes the first stream after cleaning
    /// its list; 45 minutes later, still on probation, a new bad source relapses.
    CleanedResume {
        /// The day.
        day: u32,
    },
    /// `after` minutes past the guard's first pause or quarantine on the primary, the
    /// operator resumes it — the account, or the stream — at full traffic (no probation) and
    /// without fixing anything: the relapse comes with its first mail.
    HastyResume {
        /// Minutes after the guard acted.
        after: i64,
    },
    /// At minute `at` of the run the operator pauses the primary for `minutes`
    /// (maintenance); the incident's feedback and the window go on meanwhile.
    TimedPause {
        /// Minutes from the start.
        at: i64,
        /// How long.
        minutes: i64,
    },
}

/// The scenarios `sesguard simulate --scenario` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The seed incident, with the cleaned resume and its relapse on day 3.
    #[default]
    Seed,
    /// Two sign-up streams going bad together (no culprit: the account pauses); the
    /// operator resumes it an hour later, without probation and without fixing anything.
    HastyResume,
    /// The seed incident's streams; the operator pauses the primary for ten hours on day 2
    /// before the guard acts, and the window slides over the line meanwhile.
    TimedPause,
}

impl Preset {
    /// Every preset and its name on the command line.
    pub const ALL: [(&'static str, Preset); 3] = [
        ("seed", Preset::Seed),
        ("hasty-resume", Preset::HastyResume),
        ("timed-pause", Preset::TimedPause),
    ];

    /// The scenario.
    pub fn scenario(self) -> Scenario {
        let seed = Scenario::default();
        match self {
            Preset::Seed => seed,
            Preset::HastyResume => Scenario {
                days: 2,
                streams: vec![
                    StreamScenario {
                        name: "signups".into(),
                        bad_from: 0.03,
                        bad_to: 0.20,
                        ramp_hours: 24.0,
                        critical: false,
                        unverified: true,
                    },
                    StreamScenario {
                        name: "invites".into(),
                        bad_from: 0.03,
                        bad_to: 0.20,
                        ramp_hours: 24.0,
                        critical: false,
                        unverified: true,
                    },
                ],
                act: Some(Act::HastyResume { after: 60 }),
                ..seed
            },
            Preset::TimedPause => Scenario {
                days: 2,
                act: Some(Act::TimedPause {
                    at: 1440 + 4 * 60,
                    minutes: 10 * 60,
                }),
                ..seed
            },
        }
    }
}

impl Default for Scenario {
    /// The seed incident: 100,800 messages a day for three days; a verification stream going
    /// bad beside clean transactional mail; a backup with a 50,000/day quota.
    fn default() -> Self {
        Self {
            days: 3,
            daily_volume: 100_800,
            streams: vec![
                StreamScenario {
                    name: "verification".into(),
                    bad_from: 0.03,
                    bad_to: 0.20,
                    ramp_hours: 24.0,
                    critical: false,
                    unverified: true,
                },
                StreamScenario {
                    name: "transactional".into(),
                    bad_from: 0.005,
                    bad_to: 0.005,
                    ramp_hours: 0.0,
                    critical: true,
                    unverified: false,
                },
            ],
            primary_quota: 5_000_000,
            backup_quota: 50_000,
            seed: 0x5e5_6a4d,
            act: Some(Act::CleanedResume { day: 3 }),
            mix: BadMix::default(),
            prevent: false,
        }
    }
}

/// Why a scenario cannot be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The simulation's own store failed.
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    /// A step of the story failed.
    #[error("{0}")]
    Step(String),
}

/// The first stream's clean and relapsing shares in the second act.
const CLEANED_SHARE: f64 = 0.01;
const RELAPSE_AFTER: i64 = 45 * MINUTE;

impl Scenario {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let invalid = |m: String| Err(SimulateError::Invalid(m));
        if self.days == 0 || self.days > 30 {
            return invalid(format!("days must be 1 to 30, not {}", self.days));
        }
        if self.streams.is_empty() {
            return invalid("at least one stream".into());
        }
        if (self.daily_volume / self.streams.len() as u64) < 1440 {
            return invalid(format!(
                "a daily volume of {} gives some stream less than one message a minute",
                self.daily_volume
            ));
        }
        for s in &self.streams {
            let shares = [s.bad_from, s.bad_to];
            if shares.iter().any(|b| !(0.0..=1.0).contains(b)) || s.ramp_hours < 0.0 {
                return invalid(format!("stream `{}`: shares are 0 to 100 %", s.name));
            }
        }
        match self.act {
            Some(Act::CleanedResume { day }) if day < 2 || day > self.days => {
                return invalid("the operator resumes on a day from 2 to the last".into());
            }
            Some(Act::TimedPause { at, minutes })
                if at < 0 || minutes <= 0 || at >= i64::from(self.days) * 1440 =>
            {
                return invalid("the operator's pause lies within the run".into());
            }
            _ => {}
        }
        Ok(())
    }

    /// The configuration the scenario runs under: its accounts and streams, with `guard` as
    /// the guard's settings.
    pub fn config(&self, guard: &crate::config::GuardConfig) -> Result<Config, SimulateError> {
        let mut text = format!(
            "[[accounts]]\nname = \"primary\"\nregion = \"us-east-1\"\naccount_id = \"111111111111\"\n\
             daily_quota = {}\nmax_send_rate = 500\n\n[[accounts]]\nname = \"backup\"\nregion = \"eu-west-1\"\n\
             account_id = \"222222222222\"\ndaily_quota = {}\nmax_send_rate = 14\n",
            self.primary_quota, self.backup_quota
        );
        for s in &self.streams {
            text.push_str(&format!(
                "\n[[streams]]\nname = \"{}\"\naccounts = [\"primary\", \"backup\"]\npriority = \"{}\"\n",
                s.name,
                if s.critical { "critical" } else { "normal" }
            ));
        }
        let mut config = Config::parse(&text, "simulation")
            .map_err(|e| SimulateError::Invalid(crate::telemetry::error_chain(&e)))?;
        config.guard = guard.clone();
        // The simulation judges its sample addresses with DNS answers of its own.
        config.prevention.dns = crate::config::DnsServer::Off;
        Ok(config)
    }

    pub(super) fn start_of_day(&self, day: u32) -> i64 {
        START + i64::from(day - 1) * 1440 * MINUTE
    }

    /// The bad share of `stream`'s addresses at `at`.
    pub(super) fn bad_share(
        &self,
        stream: &StreamScenario,
        index: usize,
        at: i64,
        second_act: bool,
    ) -> f64 {
        if let (true, 0, Some(Act::CleanedResume { day })) = (second_act, index, self.act) {
            let cleaned = self.start_of_day(day);
            if (cleaned..cleaned + RELAPSE_AFTER).contains(&at) {
                return CLEANED_SHARE;
            }
        }
        let ramp = stream.ramp_hours * 60.0 * MINUTE as f64;
        let progress = if ramp <= 0.0 {
            1.0
        } else {
            ((at - START) as f64 / ramp).min(1.0)
        };
        stream.bad_from + (stream.bad_to - stream.bad_from) * progress
    }
}
