//! The send gate as a use case. Each request of a batch goes through, in order: the claim of
//! its identity (a conditional write of its send record, see
//! [`crate::domain::sending::send_record`]), the debounce of double submissions (a conditional
//! claim of its content, for requests without an idempotency key), the template policy,
//! suppression (the suppressed recipients are removed; a message left with none is not sent),
//! routing, and the transport. Each ends with one [`Decision`] and its reason. What cannot go
//! now is deferred with a retry time — never dropped; what must never go is recorded with the
//! reason; what SES may have accepted is in doubt until its `Send` event settles it.
//!
//! Store requests per batch: one batched read for the template policy, every recipient's
//! suppression and the accounts' guard states and rate records; per message a conditional
//! claim of its identity and, without an idempotency key, of its content; one token write per
//! account used; batched writes marking the sent ones sent and giving up the claims of what was
//! not sent (25 per request); one counter write for the sends of accounts whose send source is
//! the sender. The
//! accounts' counter windows (one query each) are kept by the instance for
//! `sender.window_refresh`. Consecutive transport failures on an account open a circuit
//! breaker: a short pause, with an alert.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::app::Context;
use crate::app::control::{Control, ControlError};
use crate::app::prevent::Screen;
use crate::app::send::snapshot::{RoutingError, Snapshot, Windows};
use crate::app::send::tokens::Tokens;
use crate::app::status::configured_limits;
use crate::config::StoreFailurePolicy;
use crate::domain::common::address::EmailAddress;
use crate::domain::common::names::StreamName;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::SendSource;
use crate::domain::feedback::plan::ChangeSet;
use crate::domain::reputation::counters::{Bucket, CounterDelta, Counts};
use crate::domain::reputation::state::{AccountState, Cause, Status};
use crate::domain::sending::prevention::Check;
use crate::domain::sending::request::{OutgoingMail, SendRequest};
use crate::domain::sending::routing::{self, Route};
use crate::domain::sending::send_record::{self, Held, Identity, SendKey, SendRecord};
use crate::domain::sending::ses_failure::{SendFailure, classify};
use crate::ports::{
    ApplyError, GateView, MailTransport, PreventedKey, RateRecord, SendClaim, StoreError,
};
use crate::telemetry::error_chain;

mod judgement;
mod prevented;
pub mod snapshot;
mod tokens;

/// SQS keeps a message invisible for at most 12 hours.
const MAX_DEFERRAL: Duration = Duration::from_secs(12 * 3600);

/// One request as it came off the queue.
#[derive(Debug)]
pub struct Queued {
    /// The queue's id for it (SQS `messageId`).
    pub id: String,
    /// The id of the queue message it first came in (the same as `id` unless it was put back
    /// into the queue): its identity when it has no idempotency key.
    pub origin: String,
    /// The request, or why it could not be read.
    pub request: Result<SendRequest, String>,
    /// How many times the queue has delivered it (1 the first time).
    pub receive_count: u32,
}

impl Queued {
    /// A request received for the first time, in a message that is its own origin.
    pub fn new(id: impl Into<String>, request: Result<SendRequest, String>) -> Self {
        let id = id.into();
        Self {
            origin: id.clone(),
            id,
            request,
            receive_count: 1,
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Handed to the mail service.
    Sent {
        /// Through this account.
        account: String,
        /// The service's message id.
        message_id: String,
        /// Recipients it went to.
        recipients: usize,
        /// Recipients removed because they are suppressed.
        suppressed: Vec<EmailAddress>,
        /// Recipients left out because they cannot receive mail (prevention, `refuse`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        prevented: Vec<EmailAddress>,
    },
    /// The same message went (or is going) out within the duplicate window.
    Duplicate {
        /// Why.
        reason: String,
    },
    /// The template policy refuses it.
    Blocked {
        /// Why.
        reason: String,
    },
    /// Every recipient is suppressed.
    Suppressed {
        /// Why.
        reason: String,
    },
    /// No recipient left can receive mail (prevention, `refuse`): never sent, not retried.
    Undeliverable {
        /// Why, recipient by recipient.
        reason: String,
        /// The domain the first typo probably meant (`gmail.com` for `gmial.com`).
        #[serde(skip_serializing_if = "Option::is_none")]
        suggestion: Option<String>,
    },
    /// Cannot go now: retry after the given time.
    Deferred {
        /// Why.
        reason: String,
        /// When to try again.
        retry_after_seconds: u64,
    },
    /// SES refused the message itself: recorded, never retried.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The request is unusable: it goes to the dead-letter queue.
    Invalid {
        /// Why.
        reason: String,
    },
}

impl Decision {
    /// The decision's name, as logs and metrics say it.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Sent { .. } => "sent",
            Decision::Duplicate { .. } => "duplicate",
            Decision::Blocked { .. } => "blocked",
            Decision::Suppressed { .. } => "suppressed",
            Decision::Undeliverable { .. } => "undeliverable",
            Decision::Deferred { .. } => "deferred",
            Decision::Rejected { .. } => "rejected",
            Decision::Invalid { .. } => "invalid",
        }
    }

    fn deferred(reason: impl Into<String>, wait: Duration) -> Self {
        Decision::Deferred {
            reason: reason.into(),
            retry_after_seconds: wait.clamp(Duration::from_secs(1), MAX_DEFERRAL).as_secs(),
        }
    }
}

/// Why a batch could not be judged at all (nothing was sent): retry it.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Routing could not load its snapshot.
    #[error(transparent)]
    Routing(#[from] RoutingError),
}

/// What one sender instance keeps between batches: the accounts' counter windows (refreshed
/// every `sender.window_refresh`), each account's run of consecutive transport failures, and
/// sends it could not count yet.
#[derive(Debug, Default)]
pub struct SenderMemory {
    windows: Mutex<Option<Windows>>,
    failures: Mutex<HashMap<String, u32>>,
    uncounted: Mutex<Vec<CounterDelta>>,
    /// How long a send to SES takes, smoothed (microseconds): a take asks for what the
    /// instance can send within a token's life.
    send_time_us: Mutex<Option<f64>>,
}

impl SenderMemory {
    /// Takes the sends an earlier batch could not count.
    fn uncounted(&self) -> Vec<CounterDelta> {
        std::mem::take(
            &mut *self
                .uncounted
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Keeps sends to count with the next batch.
    fn keep_uncounted(&self, counters: Vec<CounterDelta>) {
        self.uncounted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(counters);
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    /// The queue's id for the request.
    pub id: String,
    /// Its stream, when the request could be read.
    pub stream: Option<StreamName>,
    /// What became of it.
    pub decision: Decision,
    /// Recipients prevention refused or flagged, one entry each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prevented: Vec<PreventedKey>,
}

/// What one batch keeps while it is judged.
struct Batch {
    view: GateView,
    snapshot: Snapshot,
    tokens: Tokens,
    /// Content claims of requests that were not sent, released together at the end.
    releases: Vec<String>,
    /// Send records of requests that were not sent, given up together at the end.
    given_up: Vec<SendKey>,
    /// Send records of requests SES accepted, marked sent together at the end.
    sent: Vec<SendRecord>,
    /// Sends whose outcome is unknown, with their account and recipients: their records stay.
    in_doubt: BTreeMap<SendKey, (String, usize)>,
    /// Prevention's checks of the batch's unverified recipients in streams that prevent.
    checks: HashMap<EmailAddress, Check>,
    /// What prevention did in the request being judged.
    prevented: Vec<PreventedKey>,
}

/// Attempts at the send-count write.
const COUNT_ATTEMPTS: u32 = 4;

/// The wait before retry `attempt` (from 0) of a conflicting write: 20 ms doubled per attempt,
/// plus up to as much again at random, so that instances that collided do not collide again.
pub fn jittered(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let base = 20u64 << attempt.min(8);
    let random = RandomState::new().hash_one(std::time::SystemTime::now());
    Duration::from_millis(base + random % (base + 1))
}

/// Backoff after a transient failure: 30 s doubled per receive, at most 12 h.
pub fn backoff(receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(20);
    Duration::from_secs(30u64 << exponent).min(MAX_DEFERRAL)
}

/// The account and recipients a decision counts as sent: a send, or a send in doubt, which
/// SES most often took (a timeout after the request went out); if it did not, its retry is
/// counted again.
fn counted_send(queued: &Queued, decision: &Decision, batch: &Batch) -> Option<(String, usize)> {
    match decision {
        Decision::Sent {
            account,
            recipients,
            ..
        } => Some((account.clone(), *recipients)),
        Decision::Deferred { .. } => queued.request.as_ref().ok().and_then(|r| {
            let key = r.send_key(&queued.origin);
            batch.in_doubt.get(&key).cloned()
        }),
        _ => None,
    }
}

/// The sender over the [`Context`] and a transport.
pub struct Sender<'a> {
    deps: &'a Context,
    transport: &'a dyn MailTransport,
    memory: &'a SenderMemory,
}

impl<'a> Sender<'a> {
    /// The sender of `context`, handing mail to its transport and keeping what outlives a
    /// batch in `memory`.
    pub fn of(context: &'a Context, memory: &'a SenderMemory) -> Self {
        Self {
            deps: context,
            transport: context.transport.as_ref(),
            memory,
        }
    }

    /// The same sender handing mail to `transport` instead.
    pub fn with_transport(mut self, transport: &'a dyn MailTransport) -> Self {
        self.transport = transport;
        self
    }

    /// Judges and sends a batch at `now`.
    pub async fn send(
        &self,
        batch: Vec<Queued>,
        now: Timestamp,
    ) -> Result<Vec<Judged>, SenderError> {
        let config = &self.deps.config;
        let (mut state, mut windows) = self.open(&batch, now).await?;
        let mut counted: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut judged = Vec::with_capacity(batch.len());
        let total = batch.len() as u64;

        // A store failure mid-batch stops judging: what was sent stays sent (and is marked
        // so), the rest is deferred with backoff, and every claim of what was not sent is
        // given up, so that the retry finds them free.
        let mut failure: Option<SenderError> = None;
        for (index, queued) in batch.into_iter().enumerate() {
            state.tokens.remaining = total - index as u64;
            let stream = queued.request.as_ref().ok().map(|r| r.stream.clone());
            let decision = self.decide(&queued, &mut state, &mut failure, now).await;
            let sent = counted_send(&queued, &decision, &state);
            if let (Some((account, recipients)), Some(stream)) = (sent, &stream) {
                *counted
                    .entry(account)
                    .or_default()
                    .entry(stream.to_string())
                    .or_default() += recipients as u64;
            }
            tracing::debug!(message_id = %queued.id, decision = decision.name(), stream = stream.as_deref().unwrap_or("-"), detail = %serde_json::to_string(&decision).unwrap_or_default(), "send decision");
            judged.push(Judged {
                id: queued.id,
                stream,
                decision,
                prevented: std::mem::take(&mut state.prevented),
            });
        }
        self.close(&mut state, &mut judged).await;
        for (account, streams) in &counted {
            for (stream, sends) in streams {
                windows.add_sends(account, stream, *sends, config, now);
            }
        }
        *self
            .memory
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(windows);
        self.count(counted, &state.view.states, now).await;
        self.count_prevented(&judged, now).await;
        Ok(judged)
    }

    /// What judging `batch` starts from: one read of the policy, the recipients' suppressions,
    /// the accounts' states and rate records; the counter windows; the routing snapshot, after
    /// pausing accounts whose credentials SES refused.
    async fn open(
        &self,
        batch: &[Queued],
        now: Timestamp,
    ) -> Result<(Batch, Windows), SenderError> {
        let store = self.deps.store.as_ref();
        let config = &self.deps.config;
        let recipients: Vec<EmailAddress> = batch
            .iter()
            .filter_map(|q| q.request.as_ref().ok())
            .flat_map(SendRequest::recipients)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let accounts = config.routed_accounts();
        let unverified = prevented::unverified(batch, config);
        let pending = Screen::of(self.deps).pending(unverified.iter().copied(), now);
        let mut view = store
            .gate_view(&recipients, &accounts, &pending.missing)
            .await?;
        let stored = std::mem::take(&mut view.domains);
        let checks = self
            .prevention_checks(&unverified, pending, stored, now)
            .await;
        let windows = self.windows(now).await?;
        let snapshot =
            Snapshot::assemble(&windows, &view.states, self.deps.ses.as_ref(), config, now).await?;
        self.pause_refused(&snapshot, &view.states, now).await?;
        let state = Batch {
            tokens: Tokens::from_read(std::mem::take(&mut view.rates)),
            view,
            snapshot,
            releases: Vec::new(),
            given_up: Vec::new(),
            sent: Vec::new(),
            in_doubt: BTreeMap::new(),
            checks,
            prevented: Vec::new(),
        };
        Ok((state, windows))
    }

    /// Pauses, with an alert naming the fault, every account whose quota SES refused to give
    /// for its credentials or permissions (its role's trust, AccessDenied, an expired token):
    /// the same reaction as when `SendEmail` meets the fault. Accounts already paused are
    /// left as they are, so a broken role alerts once.
    async fn pause_refused(
        &self,
        snapshot: &Snapshot,
        states: &HashMap<String, AccountState>,
        now: Timestamp,
    ) -> Result<(), SenderError> {
        let control = Control::of(self.deps);
        for (account, why) in snapshot.unavailable() {
            let paused = states
                .get(account)
                .is_some_and(|s| s.status == Status::Paused);
            if paused || classify(None, why, None) != SendFailure::AccessDenied {
                continue;
            }
            match control
                .pause_for(account, Cause::AccessDenied, None, why, "sender", now)
                .await
            {
                Ok(_) | Err(ControlError::Conflict(_)) => {}
                Err(ControlError::Store(error)) => return Err(SenderError::Store(error)),
                Err(other) => {
                    tracing::error!(account, error = %error_chain(&other), "account not paused")
                }
            }
        }
        Ok(())
    }

    /// The counter windows: kept from an earlier batch while fresh, else read again.
    async fn windows(&self, now: Timestamp) -> Result<Windows, StoreError> {
        let refresh = self.deps.config.sender.window_refresh;
        let kept = self
            .memory
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|w| now >= w.read_at() && now.since(w.read_at()) < refresh);
        match kept {
            Some(windows) => Ok(windows),
            None => Ok(
                Windows::load(self.deps.store.as_ref(), &self.deps.config, now)
                    .await?
                    .0,
            ),
        }
    }

    /// Settles the batch's claims in batched writes: the records of what SES accepted are
    /// marked sent; the records and content claims of what was not sent are given up. If giving
    /// up fails, the claims stay until they run out, so the deferred requests wait for that: a
    /// deferred request must not come back as a "duplicate" of itself.
    async fn close(&self, batch: &mut Batch, judged: &mut [Judged]) {
        let store = self.deps.store.as_ref();
        if !batch.sent.is_empty()
            && let Err(error) = store.mark_sent(&batch.sent).await
        {
            let keys: Vec<&str> = batch.sent.iter().map(|r| r.key.as_str()).collect();
            tracing::error!(error = %error_chain(&error), send_keys = ?keys, "sent, but not marked sent: a redelivery of these waits for their Send events");
        }
        let mut kept = Vec::new();
        if !batch.given_up.is_empty()
            && let Err(error) = store.give_up(&batch.given_up).await
        {
            tracing::error!(error = %error_chain(&error), records = batch.given_up.len(), "send records not given up; deferred requests wait for them to run out");
            kept.push(self.deps.config.sender.in_doubt);
        }
        if !batch.releases.is_empty()
            && let Err(error) = store.release(&batch.releases).await
        {
            tracing::error!(error = %error_chain(&error), claims = batch.releases.len(), "content claims not released; deferred requests wait out the debounce");
            let config = &self.deps.config;
            let longest = config.streams.iter().filter_map(|s| s.debounce);
            kept.push(longest.fold(config.sender.debounce, Duration::max));
        }
        let Some(wait) = kept.into_iter().max() else {
            return;
        };
        let wait = wait.as_secs() + 1;
        for judged in judged {
            if let Decision::Deferred {
                retry_after_seconds,
                ..
            } = &mut judged.decision
            {
                *retry_after_seconds = (*retry_after_seconds).max(wait);
            }
        }
    }

    /// Adds the batch's sends to the rolling windows of the accounts whose send source is the
    /// sender: one atomic write, retried with jittered backoff (a transaction conflict with
    /// ingest is the common failure). The mail has gone by now, so a write that still fails
    /// cannot undo anything: the sends are logged with a notice and kept by the instance, and
    /// its next batch writes them with its own (each in the bucket of its own time).
    async fn count(
        &self,
        mut counted: BTreeMap<String, BTreeMap<String, u64>>,
        states: &HashMap<String, AccountState>,
        now: Timestamp,
    ) {
        let config = &self.deps.config;
        counted.retain(|account, _| {
            config
                .account(account)
                .is_some_and(|a| a.send_count_source == SendSource::Sender)
        });
        let mut counters = self.memory.uncounted();
        if counted.is_empty() && counters.is_empty() {
            return;
        }
        let window = self.deps.policy.window;
        // The bucket starts afresh where the account's state says (a resume, a probation
        // step), so that these sends are judged with their own feedback.
        let start_for = |account: &str| {
            let origins = states.get(account).map(AccountState::origins);
            window.bucket_from(now, origins.as_deref().unwrap_or_default())
        };
        let report = serde_json::json!({"uncounted_sends": &counted, "at": now.to_string()});
        counters.extend(counted.into_iter().map(|(account, streams)| {
            let sends = |n: u64| Counts {
                sends: n,
                ..Counts::default()
            };
            let start = start_for(&account);
            CounterDelta {
                account,
                bucket: Bucket {
                    start,
                    total: sends(streams.values().sum()),
                    streams: streams.into_iter().map(|(s, n)| (s, sends(n))).collect(),
                    providers: BTreeMap::new(),
                },
                expires_at: window.bucket_expiry(start),
            }
        }));
        let change = ChangeSet {
            now,
            counters: CounterDelta::merged(counters),
            ..ChangeSet::default()
        };
        let mut attempt = 0;
        let error = loop {
            match self.deps.store.apply(&change).await {
                Ok(()) => return,
                Err(error) if attempt + 1 >= COUNT_ATTEMPTS => break error,
                Err(error) => {
                    if matches!(error, ApplyError::Conflict) {
                        crate::telemetry::CONTENTION.conflict();
                    }
                    tracing::warn!(error = %error_chain(&error), attempt, "sends not counted yet; retrying");
                    tokio::time::sleep(jittered(attempt)).await;
                    attempt += 1;
                }
            }
        };
        tracing::error!(error = %error_chain(&error), sends = %report, "sends not counted; the instance counts them with its next batch");
        self.memory.keep_uncounted(change.counters);
        self.notify("sesguard: sends not counted", &report).await;
    }

    async fn notify(&self, subject: &str, body: &serde_json::Value) {
        if let Err(error) = self.deps.alerts.notice(subject, body).await {
            tracing::error!(error = %error_chain(&error), subject, "notice not delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_receive_up_to_the_sqs_limit() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(5), Duration::from_secs(480));
        assert_eq!(backoff(40), MAX_DEFERRAL);
        assert_eq!(backoff(0), Duration::from_secs(30));
    }
}
