//! `check`: what would happen to a message now — the template policy, suppressed recipients
//! removed, then the account routing would pick or the deferral — without sending anything.

use serde::Serialize;

use crate::app::send::snapshot::{RoutingError, Snapshot};
use crate::config::Config;
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::provider::providers_of;
use crate::domain::feedback::suppression::Reason;
use crate::domain::sending::routing::{self, Priority, Route};
use crate::ports::{SesAccount, Store};

/// The decision on one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `send`, `blocked`, `suppressed` or `deferred`.
    pub decision: &'static str,
    /// The account it would go through (`send`).
    pub account: Option<String>,
    /// Why it would not go now.
    pub reason: Option<String>,
    /// When to try again (`deferred`).
    pub retry_after_seconds: Option<u64>,
    /// The recipients it would go to.
    pub recipients: Vec<EmailAddress>,
    /// The recipients removed, with their suppression reason.
    pub suppressed: Vec<Removed>,
    /// The priority it was judged at.
    pub priority: Priority,
}

/// A recipient removed because it is suppressed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removed {
    /// The address.
    pub email: EmailAddress,
    /// Why it is suppressed.
    pub reason: Reason,
}

/// Decides for a message of `stream` to `to` at `priority` (default: the stream's).
/// What is being checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// The message's stream.
    pub stream: &'a str,
    /// Its recipients.
    pub to: &'a [EmailAddress],
    /// Its SES template, if it uses one.
    pub template: Option<&'a str>,
    /// Whether the application has verified the recipients.
    pub recipient_verified: bool,
    /// Its priority (default: the stream's).
    pub priority: Option<Priority>,
}

/// Decides for a message, gate by gate: template policy, suppression, routing.
pub async fn check(
    store: &dyn Store,
    ses: &dyn SesAccount,
    config: &Config,
    now: Timestamp,
    request: &Request<'_>,
) -> Result<Decision, RoutingError> {
    let Request {
        stream,
        to,
        template,
        recipient_verified,
        priority,
    } = *request;
    let stream_config = config
        .stream(stream)
        .ok_or_else(|| RoutingError::UnknownStream(stream.to_owned()))?;
    let priority = priority.unwrap_or(stream_config.priority);
    if let Some(refusal) = store
        .template_policy()
        .await?
        .refusal(template, recipient_verified)
    {
        return Ok(Decision {
            decision: "blocked",
            account: None,
            reason: Some(refusal),
            retry_after_seconds: None,
            recipients: Vec::new(),
            suppressed: Vec::new(),
            priority,
        });
    }
    let mut recipients = Vec::new();
    let mut suppressed = Vec::new();
    for email in to {
        match store.get(email).await? {
            Some(s) => suppressed.push(Removed {
                email: email.clone(),
                reason: s.reason,
            }),
            None => recipients.push(email.clone()),
        }
    }
    let mut decision = Decision {
        decision: "send",
        account: None,
        reason: None,
        retry_after_seconds: None,
        recipients,
        suppressed,
        priority,
    };
    if decision.recipients.is_empty() {
        decision.decision = "suppressed";
        let reasons: Vec<String> = decision
            .suppressed
            .iter()
            .map(|r| format!("{} is suppressed ({})", r.email, r.reason))
            .collect();
        decision.reason = Some(reasons.join("; "));
        return Ok(decision);
    }
    let snapshot = Snapshot::load(store, ses, config, now).await?;
    routed(decision, &snapshot, (stream, template), now)
}

/// `decision` with the account routing picks from `snapshot`, or when to try again.
fn routed(
    mut decision: Decision,
    snapshot: &Snapshot,
    (stream, template): (&str, Option<&str>),
    now: Timestamp,
) -> Result<Decision, RoutingError> {
    // No send key yet: the draw comes from what is asked, so the same question gets the same
    // answer while an account is on probation.
    let draw = routing::draw(&format!("{stream}:{template:?}:{:?}", decision.recipients));
    let providers = providers_of(&decision.recipients);
    match snapshot.route(stream, decision.priority, draw, &providers)? {
        Route::Send { account } => decision.account = Some(account),
        Route::Defer { until, reason } => {
            decision.decision = "deferred";
            decision.reason = Some(reason);
            decision.retry_after_seconds = Some(until.since(now).as_secs().max(1));
        }
    }
    Ok(decision)
}
