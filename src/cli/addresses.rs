//! `sesguard addresses check`: prevention's answer for addresses before any mail goes to them;
//! `sesguard dns serve`: the local DNS server of known records tests and the demo point
//! `SESGUARD_DNS` at.

use super::*;
use crate::adapters::dns_zone::{Zone, ZoneServer};
use crate::app::admin::{AddressChecks, CHECK_LIMIT};
use crate::domain::sending::prevention::Dns;

/// Checks the addresses given and those of `file` (one a line, `-` for stdin), a thousand at a
/// time; exits 1 when one cannot receive mail, 2 when one is not an address at all.
pub(super) async fn check(
    deps: &Context,
    mut addresses: Vec<String>,
    file: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(file) = file {
        let text = dispatch::read_input(file)?;
        addresses.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if addresses.is_empty() {
        anyhow::bail!("no address to check: give some, or --file");
    }
    let unreadable: Vec<String> = addresses
        .iter()
        .filter_map(|a| EmailAddress::parse(a).err().map(|e| e.to_string()))
        .collect();
    for error in &unreadable {
        eprintln!("{error}");
    }
    addresses.retain(|a| EmailAddress::parse(a).is_ok());
    let admin = Admin::of(deps, "cli");
    let mut all = Vec::new();
    for chunk in addresses.chunks(CHECK_LIMIT) {
        let AddressChecks { results, lookups } =
            admin.check_addresses(chunk, deps.clock.now()).await?;
        tracing::info!(?lookups, "DNS answers");
        all.extend(results);
    }
    let undeliverable = all.iter().any(|c| !c.deliverable);
    answer(json, &all, |checks| {
        for c in checks {
            let verdict = match c.reason {
                Some(reason) => format!("undeliverable  {reason}"),
                None => "deliverable".to_owned(),
            };
            let dns = match c.dns {
                Dns::NotNeeded => "-".to_owned(),
                Dns::Unknown => "unknown".to_owned(),
                Dns::Known(answer) => answer.name().to_owned(),
            };
            say!("{}  {verdict}  (dns {dns})", c.address);
            say!("  {}", c.detail);
            if let Some(meant) = &c.suggestion {
                say!(
                    "  did you mean {}@{meant}?",
                    c.address.as_str().rsplit_once('@').map_or("", |(l, _)| l)
                );
            }
        }
    })?;
    Ok(if !unreadable.is_empty() {
        ExitCode::from(2)
    } else if undeliverable {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Serves the zone file `zone` on `listen` until the process is stopped.
pub(super) async fn serve(
    zone: &std::path::Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(zone)
        .with_context(|| format!("reading zone file {}", zone.display()))?;
    let zone = Zone::parse(&text).map_err(anyhow::Error::msg)?;
    let server = ZoneServer::start(zone, listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!(
        "sesguard dns: serving on {} (SESGUARD_DNS={0})",
        server.address()
    );
    server.run().await;
    Ok(ExitCode::SUCCESS)
}
