//! Prevention in the gate. The batch's unverified recipients in streams that prevent are
//! checked once, before any request is judged: the instance's cache answers first, the store
//! is read with the gate's one read, DNS is asked for the rest (each domain once). Then each
//! request leaves out (`refuse`) or only counts (`flag`) what cannot receive mail, and the
//! batch's counts are added to the day's in one write.

use super::*;
use crate::app::prevent::Pending;
use crate::config::{Config, PreventMode, StreamConfig};
use crate::domain::sending::prevention::Undeliverable;
use crate::ports::{DomainRecord, PreventAction};

/// The recipients of `batch` prevention checks: those of readable requests not
/// `recipient_verified`, in streams whose `prevent` is not `off`; each once.
pub(super) fn unverified<'b>(batch: &'b [Queued], config: &Config) -> Vec<&'b EmailAddress> {
    let addresses: BTreeSet<&EmailAddress> = batch
        .iter()
        .filter_map(|q| q.request.as_ref().ok())
        .filter(|r| {
            !r.recipient_verified
                && config
                    .stream(&r.stream)
                    .is_some_and(|s| s.prevent != PreventMode::Off)
        })
        .flat_map(SendRequest::recipients)
        .collect();
    addresses.into_iter().collect()
}

impl Sender<'_> {
    /// The checks of `addresses`, given what the cache answered (`pending`) and what the gate's
    /// read found in the store (`stored`).
    pub(super) async fn prevention_checks(
        &self,
        addresses: &[&EmailAddress],
        pending: Pending,
        stored: Vec<DomainRecord>,
        now: Timestamp,
    ) -> HashMap<EmailAddress, Check> {
        if addresses.is_empty() {
            return HashMap::new();
        }
        let screen = Screen::of(self.deps);
        let (answers, lookups) = screen.complete(pending, stored, now).await;
        crate::telemetry::DNS.count(lookups.asked(), lookups.unknown);
        screen
            .conclude(addresses.iter().copied(), &answers)
            .into_iter()
            .map(|c| (c.address.clone(), c))
            .collect()
    }

    /// Adds the batch's prevented recipients to the day's counts; a failing store is logged
    /// (the decisions and their logs stand).
    pub(super) async fn count_prevented(&self, judged: &[Judged], now: Timestamp) {
        let mut counts: BTreeMap<PreventedKey, u64> = BTreeMap::new();
        for key in judged.iter().flat_map(|j| &j.prevented) {
            *counts.entry(key.clone()).or_default() += 1;
        }
        if counts.is_empty() {
            return;
        }
        if let Err(error) = self.deps.store.count_prevented(&now.day(), &counts).await {
            tracing::warn!(error = %error_chain(&error), "prevented recipients not counted");
        }
    }
}

/// Prevention for an unverified request in a stream that prevents: what it finds of the
/// recipients left after suppression is counted; under `refuse` those are left out (returned),
/// and a message left with none is `Undeliverable`. Under `flag` the mail goes as it is.
pub(super) fn prevent(
    request: &SendRequest,
    stream: &StreamConfig,
    removed: &[EmailAddress],
    batch: &mut Batch,
) -> Result<Vec<EmailAddress>, Decision> {
    if request.recipient_verified || stream.prevent == PreventMode::Off {
        return Ok(Vec::new());
    }
    let found: Vec<&Check> = request
        .recipients()
        .filter(|r| !removed.contains(r))
        .filter_map(|r| batch.checks.get(r))
        .filter(|c| !c.deliverable)
        .collect();
    let action = match stream.prevent {
        PreventMode::Refuse => PreventAction::Refused,
        _ => PreventAction::Flagged,
    };
    batch.prevented = found
        .iter()
        .filter_map(|c| c.reason)
        .map(|reason| PreventedKey {
            stream: request.stream.to_string(),
            reason,
            action,
        })
        .collect();
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let reasons: Vec<String> = found
        .iter()
        .map(|c| {
            format!(
                "{}: {} ({})",
                c.address,
                c.reason.map_or("-", Undeliverable::name),
                c.detail
            )
        })
        .collect();
    if action == PreventAction::Flagged {
        tracing::info!(stream = %request.stream, found = %reasons.join("; "), "flagged: sent to recipients that cannot receive mail");
        return Ok(Vec::new());
    }
    let left_out: Vec<EmailAddress> = found.iter().map(|c| c.address.clone()).collect();
    if removed.len() + left_out.len() >= request.recipients().count() {
        return Err(Decision::Undeliverable {
            reason: reasons.join("; "),
            suggestion: found.iter().find_map(|c| c.suggestion.clone()),
        });
    }
    Ok(left_out)
}
