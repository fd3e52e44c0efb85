//! `sesguard bounces explain`: each bounced recipient's reason, class and effect, read from
//! files by the configuration alone (no store is opened, nothing is recorded).

use super::*;
use crate::app::explain::{Explained, explain};
use crate::config::Config;
use crate::domain::feedback::bounce_reason::BounceEffect;
use crate::domain::sns::unwrap::Content;

/// Explains every bounce in `files`; exits 1 when a file held no readable notification.
pub(super) fn explain_files(
    config: Option<&std::path::Path>,
    files: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let directory = Config::load(config)?.directory();
    let mut explained = Vec::new();
    let mut unreadable = false;
    for file in files {
        let text = dispatch::read_input(file)?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
        for Inbound { id, content, .. } in decode(value, file).1 {
            match content {
                Ok(Content::Notification(notification)) => {
                    explained.extend(explain(&notification, &directory));
                }
                Ok(Content::SnsControl { kind, .. }) => {
                    eprintln!("{id}: {kind}, not a notification");
                }
                Err(error) => {
                    unreadable = true;
                    eprintln!("{id}: {error}");
                }
            }
        }
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&explained)?);
    } else {
        explained.iter().for_each(print_explained);
    }
    Ok(if unreadable {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_explained(e: &Explained) {
    let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    say!("{}  (message {})", e.recipient, e.message_id);
    say!("  ses          {}  status {}", e.ses, optional(&e.status));
    say!("  diagnostic   {}", optional(&e.diagnostic));
    say!("  reason       {} ({} class)", e.reason, e.class);
    say!("  decided by   {}", e.decided_by);
    say!(
        "  effect       {}{}",
        match e.effect {
            BounceEffect::Suppress => "suppress the address",
            BounceEffect::SoftBounce => "count a soft bounce (suppressed at the threshold)",
            BounceEffect::Record => "record only: the address stays sendable",
        },
        e.stream
            .as_deref()
            .map(|s| format!(" in stream {s}"))
            .unwrap_or_default()
    );
}
