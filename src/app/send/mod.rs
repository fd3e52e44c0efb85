//! The send gate as a use case. Each request of a batch goes through, in order: the duplicate
//! check (a conditional claim of its duplicate key), the template policy, suppression (the
//! suppressed recipients are removed; a message left with none is not sent), routing, and the
//! transport. Each ends with one [`Decision`] and its reason. What cannot go now is deferred
//! with a retry time — never dropped; what must never go is recorded with the reason.
//!
//! Store requests per batch: one batched read for the template policy, every recipient's
//! suppression and the accounts' guard states and rate records; a conditional claim per
//! message; one token write per account used; one write releasing the claims of what was not
//! sent; one counter write for the sends of accounts whose send source is the sender. The
//! accounts' counter windows (one query each) are kept by the instance for
//! `sender.window_refresh`. Consecutive transport failures on an account open a circuit
//! breaker: a short pause, with an alert.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::app::Context;
use crate::app::control::{Control, ControlError};
use crate::app::send::snapshot::{RoutingError, Snapshot, Windows};
use crate::app::status::configured_limits;
use crate::config::StoreFailurePolicy;
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::attribution::SendSource;
use crate::domain::feedback::plan::ChangeSet;
use crate::domain::reputation::counters::{Bucket, CounterDelta, Counts};
use crate::domain::reputation::guard::{AccountState, Cause, Status};
use crate::domain::sending::request::{OutgoingMail, SendRequest};
use crate::domain::sending::routing::{self, Route};
use crate::domain::sending::ses_failure::{SendFailure, classify};
use crate::ports::{GateView, MailTransport, RateRecord, StoreError};
use crate::telemetry::error_chain;

mod judgement;
pub mod snapshot;

/// SQS keeps a message invisible for at most 12 hours.
const MAX_DEFERRAL: Duration = Duration::from_secs(12 * 3600);

/// One request as it came off the queue.
#[derive(Debug)]
pub struct Queued {
    /// The queue's id for it (SQS `messageId`).
    pub id: String,
    /// The request, or why it could not be read.
    pub request: Result<SendRequest, String>,
    /// How many times the queue has delivered it (1 the first time).
    pub receive_count: u32,
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

/// Send-rate tokens held for one batch: per account, how many are left and when more come.
#[derive(Debug, Default)]
struct Tokens {
    granted: HashMap<String, (u64, Option<Timestamp>)>,
    remaining: u64,
    /// The rate records read with the batch: the first take of each account starts from it.
    read: HashMap<String, RateRecord>,
}

/// What one sender instance keeps between batches: the accounts' counter windows (refreshed
/// every `sender.window_refresh`) and each account's run of consecutive transport failures.
#[derive(Debug, Default)]
pub struct SenderMemory {
    windows: Mutex<Option<Windows>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl SenderMemory {
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
    pub stream: Option<String>,
    /// What became of it.
    pub decision: Decision,
}

/// What one batch keeps while it is judged.
struct Batch {
    view: GateView,
    snapshot: Snapshot,
    tokens: Tokens,
    /// Claims of requests that were not sent, given up together at the end.
    releases: Vec<String>,
}

/// Backoff after a transient failure: 30 s doubled per receive, at most 12 h.
pub fn backoff(receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(20);
    Duration::from_secs(30u64 << exponent).min(MAX_DEFERRAL)
}

/// The sender over the [`Context`] and a transport.
pub struct Sender<'a> {
    deps: &'a Context,
    transport: &'a dyn MailTransport,
    memory: &'a SenderMemory,
}

impl<'a> Sender<'a> {
    /// A sender handing mail to `transport`, keeping what outlives a batch in `memory`.
    pub fn new(
        deps: &'a Context,
        transport: &'a dyn MailTransport,
        memory: &'a SenderMemory,
    ) -> Self {
        Self {
            deps,
            transport,
            memory,
        }
    }

    /// Judges and sends a batch at `now`.
    pub async fn send(
        &self,
        batch: Vec<Queued>,
        now: Timestamp,
    ) -> Result<Vec<Judged>, SenderError> {
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
        let mut view = store.gate_view(&recipients, &accounts).await?;
        let mut windows = self.windows(now).await?;
        let snapshot =
            Snapshot::assemble(&windows, &view.states, self.deps.ses.as_ref(), config, now).await?;
        self.pause_refused(&snapshot, &view.states, now).await?;
        let mut state = Batch {
            tokens: Tokens {
                read: std::mem::take(&mut view.rates),
                ..Tokens::default()
            },
            view,
            snapshot,
            releases: Vec::new(),
        };
        let mut counted: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut judged = Vec::with_capacity(batch.len());
        let total = batch.len() as u64;

        // A store failure mid-batch stops it; what was decided so far is still released and
        // counted, so that the retry finds the deferred requests free and the sends counted.
        let mut failure = None;
        for (index, queued) in batch.into_iter().enumerate() {
            state.tokens.remaining = total - index as u64;
            let (stream, decision) = match &queued.request {
                Err(reason) => (
                    None,
                    Decision::Invalid {
                        reason: reason.clone(),
                    },
                ),
                Ok(request) => {
                    let decision = match self.judge(request, &queued, &mut state, now).await {
                        Ok(decision) => decision,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    };
                    if let Decision::Sent {
                        account,
                        recipients,
                        ..
                    } = &decision
                    {
                        *counted
                            .entry(account.clone())
                            .or_default()
                            .entry(request.stream.clone())
                            .or_default() += *recipients as u64;
                    }
                    (Some(request.stream.clone()), decision)
                }
            };
            tracing::info!(message_id = %queued.id, decision = decision.name(), stream = stream.as_deref().unwrap_or("-"), detail = %serde_json::to_string(&decision).unwrap_or_default(), "send decision");
            judged.push(Judged {
                id: queued.id,
                stream,
                decision,
            });
        }
        self.release(&state.releases, &mut judged).await;
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
        match failure {
            Some(error) => Err(error),
            None => Ok(judged),
        }
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
        let store = self.deps.store.as_ref();
        let control = Control::new(
            store,
            store,
            self.deps.alerts.as_ref(),
            self.deps.ses.as_ref(),
            &self.deps.config,
        );
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

    /// Gives up the claims of requests that were not sent, in one batched write. If that
    /// fails, their claims stay until the duplicate window ends, so their retry waits for it:
    /// a deferred request must not come back as a "duplicate" of itself.
    async fn release(&self, keys: &[String], judged: &mut [Judged]) {
        if keys.is_empty() {
            return;
        }
        let Err(error) = self.deps.store.release(keys).await else {
            return;
        };
        tracing::error!(error = %error_chain(&error), claims = keys.len(), "claims not released; deferred requests wait out the duplicate window");
        let window = self.deps.config.sender.duplicate_window.as_secs() + 1;
        for judged in judged {
            if let Decision::Deferred {
                retry_after_seconds,
                ..
            } = &mut judged.decision
            {
                *retry_after_seconds = (*retry_after_seconds).max(window);
            }
        }
    }

    /// Adds the batch's sends to the rolling windows of the accounts whose send source is the
    /// sender: one atomic write. The mail has gone by now, so a failure cannot undo or redo
    /// anything: it is logged and reported as a notice, and the window undercounts.
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
        if counted.is_empty() {
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
        let counters = counted
            .into_iter()
            .map(|(account, streams)| {
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
                    },
                    expires_at: window.bucket_expiry(start),
                }
            })
            .collect();
        let change = ChangeSet {
            now,
            counters,
            ..ChangeSet::default()
        };
        if let Err(error) = self.deps.store.apply(&change).await {
            tracing::error!(error = %error_chain(&error), sends = %report, "sends not counted");
            self.notify("sesguard: sends not counted", &report).await;
        }
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
