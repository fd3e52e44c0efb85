//! `sesguard simulate`: the scenario from the command line, run with and without the guard on
//! stores of their own, both timelines printed, the picture written.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::app::simulate::{
    self, Act, KeptAlerts, Outcome, Preset, Scenario, SimClock, StreamScenario,
};
use crate::config::{Config, GuardConfig};
use crate::domain::reputation::thresholds::Profile;

use super::*;

/// `NAME=FROM..TO@HOURS[,critical][,unverified]`, shares in percent.
fn stream(spec: &str) -> anyhow::Result<StreamScenario> {
    let bad = || {
        anyhow::anyhow!(
            "`--stream {spec}`: expected NAME=FROM..TO@HOURS[,critical][,unverified], e.g. verification=3..20@24,unverified"
        )
    };
    let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
    let mut flags = rest.split(',');
    let rest = flags.next().ok_or_else(bad)?;
    let (mut critical, mut unverified) = (false, false);
    for flag in flags {
        match flag.trim() {
            "critical" => critical = true,
            "unverified" => unverified = true,
            _ => return Err(bad()),
        }
    }
    let (shares, hours) = rest.split_once('@').ok_or_else(bad)?;
    let (from, to) = shares.split_once("..").ok_or_else(bad)?;
    let number = |text: &str| text.trim().parse::<f64>().map_err(|_| bad());
    let name = name.trim();
    if name.is_empty() {
        return Err(bad());
    }
    Ok(StreamScenario {
        name: name.to_owned(),
        bad_from: number(from)? / 100.0,
        bad_to: number(to)? / 100.0,
        ramp_hours: number(hours)?,
        critical,
        unverified,
    })
}

/// One run on its own store in a temporary directory.
async fn run(scenario: &Scenario, guard: &GuardConfig, guarded: bool) -> anyhow::Result<Outcome> {
    let config = scenario.config(guard)?;
    let dir = std::env::temp_dir().join(format!(
        "sesguard-simulation-{}-{}",
        std::process::id(),
        guarded
    ));
    std::fs::create_dir_all(&dir)?;
    let clock = Arc::new(SimClock::new());
    let alerts = KeptAlerts::default();
    let outcome = async {
        let deps = crate::wiring::simulation(config, &dir.join("store.db"), clock.clone())?
            .with_alerts(Arc::new(alerts.clone()));
        anyhow::Ok(simulate::run(&deps, &clock, &alerts, scenario, guarded).await?)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// A PNG of the SVG beside it, when a converter is installed: `rsvg-convert`, else Chromium.
fn png(svg: &Path) -> Option<std::path::PathBuf> {
    let png = svg.with_extension("png");
    let quiet = |command: &mut std::process::Command| {
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let converted = quiet(
        std::process::Command::new("rsvg-convert")
            .arg("-o")
            .arg(&png)
            .arg(svg),
    ) || {
        let absolute = std::fs::canonicalize(svg).ok()?;
        quiet(
            std::process::Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--window-size=760,300",
                ])
                .arg(format!("--screenshot={}", png.display()))
                .arg(format!("file://{}", absolute.display())),
        )
    };
    converted.then_some(png)
}

/// `--bad-mix SPEC`.
pub(super) fn bad_mix(spec: &str) -> Result<simulate::BadMix, String> {
    simulate::BadMix::parse(spec)
}

/// `--prevention`: the scenario again with prevention, with and without the guard; both
/// reports, the four runs compared, and the picture of the primary's bounce rate with and
/// without prevention.
async fn with_prevention(
    scenario: &Scenario,
    guard: &GuardConfig,
    (guarded, unguarded): (&Outcome, &Outcome),
    svg: &Path,
) -> anyhow::Result<()> {
    let prevented = Scenario {
        prevent: true,
        ..scenario.clone()
    };
    let prevention_only = run(&prevented, &simulate::unguarded(guard), false).await?;
    let both = run(&prevented, guard, true).await?;
    let min_volume = guard.levels().min_volume;
    say!(
        "{}",
        simulate::report(
            "prevention, without the guard",
            &prevention_only,
            min_volume
        )
    );
    say!(
        "{}",
        simulate::report("prevention and the guard", &both, min_volume)
    );
    say!(
        "{}",
        simulate::compare(&[
            ("nothing", unguarded),
            ("prevention", &prevention_only),
            ("guard", guarded),
            ("guard + prevention", &both),
        ])
    );
    let chart = simulate::primary_rates(
        &[
            ("no sesguard", "#999", true, unguarded),
            ("prevention only", "#2ca02c", true, &prevention_only),
            ("guard only", "#d62728", false, guarded),
            ("guard + prevention", "#1f77b4", false, &both),
        ],
        &guard.levels(),
    );
    let stem = svg
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("simulation");
    let path = svg.with_file_name(format!("{stem}-prevention.svg"));
    write_svg(&path, &chart.svg())
}

/// `--scenario NAME`: one of [`Preset::ALL`].
pub(super) fn preset(name: &str) -> Result<Preset, String> {
    Preset::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            let names: Vec<&str> = Preset::ALL.iter().map(|(n, _)| *n).collect();
            format!("no scenario `{name}`: one of {}", names.join(", "))
        })
}

/// `--profiles`: runs the guard under the other profile too, prints that timeline and what
/// each run costs beside the other two.
async fn compare_profiles(
    scenario: &Scenario,
    guard: &GuardConfig,
    guarded: &Outcome,
    unguarded: &Outcome,
) -> anyhow::Result<()> {
    let min_volume = guard.levels().min_volume;
    let other = GuardConfig {
        profile: match guard.profile {
            Profile::Standard => Profile::NoReview,
            Profile::NoReview => Profile::Standard,
        },
        ..guard.clone()
    };
    let alternative = run(scenario, &other, true).await?;
    let title = format!("with sesguard, profile {}", other.profile.as_str());
    say!("{}", simulate::report(&title, &alternative, min_volume));
    let this = format!("profile {}", guard.profile.as_str());
    let that = format!("profile {}", other.profile.as_str());
    say!(
        "{}",
        simulate::compare(&[
            (this.as_str(), guarded),
            (that.as_str(), &alternative),
            ("without sesguard", unguarded),
        ])
    );
    Ok(())
}

/// Writes the picture of both runs to `svg`, and a PNG beside it when it can.
fn write_picture(
    svg: &Path,
    guarded: &Outcome,
    unguarded: &Outcome,
    guard: &GuardConfig,
) -> anyhow::Result<()> {
    let picture = simulate::picture(guarded, unguarded, &guard.levels()).svg();
    write_svg(svg, &picture)
}

/// Writes `picture` to `svg`, and a PNG beside it when it can.
fn write_svg(svg: &Path, picture: &str) -> anyhow::Result<()> {
    if let Some(parent) = svg.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(svg, picture).with_context(|| format!("writing {}", svg.display()))?;
    say!("picture: {}", svg.display());
    if let Some(png) = png(svg) {
        say!("picture: {}", png.display());
    }
    Ok(())
}

/// Runs the command.
pub async fn simulate(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Command::Simulate {
        scenario: preset,
        days,
        daily_volume,
        streams,
        primary_quota,
        backup_quota,
        seed,
        resume_day,
        prevention,
        bad_mix,
        profiles,
        svg,
    } = &cli.command
    else {
        unreachable!("called for `simulate` only");
    };
    let mut scenario = preset.scenario();
    scenario.days = days.unwrap_or(scenario.days);
    scenario.daily_volume = daily_volume.unwrap_or(scenario.daily_volume);
    scenario.primary_quota = primary_quota.unwrap_or(scenario.primary_quota);
    scenario.backup_quota = backup_quota.unwrap_or(scenario.backup_quota);
    scenario.seed = seed.unwrap_or(scenario.seed);
    if let Some(mix) = bad_mix {
        scenario.mix = mix.clone();
    }
    if let Some(day) = resume_day {
        scenario.act = (*day > 0).then_some(Act::CleanedResume { day: *day });
    }
    if !streams.is_empty() {
        scenario.streams = streams
            .iter()
            .map(|s| stream(s))
            .collect::<Result<_, _>>()?;
    }
    scenario.validate()?;
    let guard = match cli.config.as_deref() {
        Some(path) => Config::load(Some(path))?.guard,
        None => GuardConfig::default(),
    };
    let started = Instant::now();
    let guarded = run(&scenario, &guard, true).await?;
    let unguarded = run(&scenario, &simulate::unguarded(&guard), false).await?;
    let min_volume = guard.levels().min_volume;
    say!(
        "{}",
        simulate::report("with sesguard", &guarded, min_volume)
    );
    say!(
        "{}",
        simulate::report("without sesguard", &unguarded, min_volume)
    );
    let mut runs = 2;
    if *profiles {
        compare_profiles(&scenario, &guard, &guarded, &unguarded).await?;
        runs += 1;
    }
    write_picture(svg, &guarded, &unguarded, &guard)?;
    if *prevention {
        with_prevention(&scenario, &guard, (&guarded, &unguarded), svg).await?;
        runs += 2;
    }
    say!(
        "simulated {} days of {} messages a day {runs} times in {:.1} s",
        scenario.days,
        scenario.daily_volume,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_spec_reads_its_shares_in_percent_and_says_what_is_wrong() {
        let s = stream("verification=3..20@24").unwrap();
        assert_eq!((s.bad_from, s.bad_to, s.ramp_hours), (0.03, 0.2, 24.0));
        assert!(!s.critical);
        assert!(stream("receipts=0.5..0.5@0,critical").unwrap().critical);
        let signups = stream("signups=3..20@24,unverified").unwrap();
        assert!(signups.unverified && !signups.critical);
        for bad in [
            "verification",
            "=1..2@3",
            "v=1-2@3",
            "v=1..2",
            "v=a..2@3",
            "v=1..2@3,odd",
        ] {
            let error = stream(bad).unwrap_err().to_string();
            assert!(error.contains("NAME=FROM..TO@HOURS"), "{bad}: {error}");
        }
    }
}
