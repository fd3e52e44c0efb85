//! Judging one request, gate by gate: the duplicate claim, template policy, suppression,
//! routing and the rate limiter's token, then the transport; each failure class has its reaction.

use super::*;
use crate::app::send::prevented::prevent;
use crate::config::{Config, StreamConfig};
use crate::domain::feedback::provider::providers_of;
use crate::ports::TransportError;

/// How a judged request leaves its claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Sent: the record is marked sent.
    Sent,
    /// SES may have taken it: the record stays sending.
    InDoubt,
    /// Never to be sent (SES refused the message itself): recorded as finished, like a send.
    Refused,
    /// Not sent now: both claims go, so that its retry is not a duplicate of itself.
    NotSent,
}

impl<'a> Sender<'a> {
    /// A request's decision: invalid when it could not be read, deferred once the store has
    /// failed in this batch, else judged; a store failure while judging defers it and is kept in
    /// `failure`.
    pub(super) async fn decide(
        &self,
        queued: &Queued,
        batch: &mut Batch,
        failure: &mut Option<SenderError>,
        now: Timestamp,
    ) -> Decision {
        match (&queued.request, &*failure) {
            (Err(reason), _) => Decision::Invalid {
                reason: reason.clone(),
            },
            (Ok(_), Some(error)) => Decision::deferred(
                format!("not judged: {}", error_chain(error)),
                backoff(queued.receive_count),
            ),
            (Ok(request), None) => match self.judge(request, queued, batch, now).await {
                Ok(decision) => decision,
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "store failed mid-batch: the rest of the batch is deferred");
                    let decision = Decision::deferred(
                        format!("not judged: {}", error_chain(&error)),
                        backoff(queued.receive_count),
                    );
                    *failure = Some(error);
                    decision
                }
            },
        }
    }

    /// Counts a transport failure of `account`: `true` when it opens the circuit breaker.
    fn transport_failed(&self, account: &str) -> bool {
        let mut failures = self.memory.failures();
        let run = failures.entry(account.to_owned()).or_default();
        *run += 1;
        if *run >= self.deps.config.sender.breaker_failures {
            *run = 0;
            return true;
        }
        false
    }

    pub(super) async fn judge(
        &self,
        request: &SendRequest,
        queued: &Queued,
        batch: &mut Batch,
        now: Timestamp,
    ) -> Result<Decision, SenderError> {
        let config = &self.deps.config;
        let store = self.deps.store.as_ref();
        let Some(stream) = config.stream(&request.stream) else {
            return Ok(Decision::Invalid {
                reason: format!("unknown stream `{}`", request.stream),
            });
        };
        let key = request.send_key(&queued.origin);
        let window = match key.identity() {
            Identity::IdempotencyKey => config.sender.duplicate_window,
            Identity::QueueMessage => Duration::ZERO,
        };
        let retention = send_record::Retention {
            in_doubt: config.sender.in_doubt,
            window,
            redelivery: config.sender.redelivery(),
        };
        let record = SendRecord::claim(key.clone(), &queued.origin, now, retention);
        if let SendClaim::Held(earlier) = store.claim_send(&record, now).await? {
            return Ok(match send_record::held(&earlier, &queued.origin) {
                Held::Duplicate(reason) => Decision::Duplicate { reason },
                Held::InDoubt { until } => Decision::deferred(
                    format!(
                        "in doubt: an earlier attempt may have been accepted by SES; its Send event settles it, or it is tried again at {until}"
                    ),
                    until.since(now) + Duration::from_secs(1),
                ),
            });
        }
        // Held now: unless the rest sends it (or may have), the claim is given up.
        let debounce = stream.debounce.unwrap_or(config.sender.debounce);
        let content = request.content_key().filter(|_| !debounce.is_zero());
        let decided = match &content {
            Some(content) => match store
                .claim(content, &queued.origin, now, now.plus(debounce))
                .await
            {
                Ok(true) => {
                    self.gate(request, stream, &record, queued, batch, now)
                        .await
                }
                Ok(false) => Ok(Decision::Duplicate {
                    reason: format!(
                        "the same content went to the same recipients within the stream's debounce ({})",
                        humantime::format_duration(debounce)
                    ),
                }),
                Err(error) => Err(error.into()),
            },
            None => {
                self.gate(request, stream, &record, queued, batch, now)
                    .await
            }
        };
        let outcome = match &decided {
            Ok(Decision::Sent { .. }) => Outcome::Sent,
            Ok(Decision::Deferred { .. }) if batch.in_doubt.contains_key(&key) => Outcome::InDoubt,
            Ok(Decision::Rejected { .. }) => Outcome::Refused,
            _ => Outcome::NotSent,
        };
        match outcome {
            // Finished either way: the same request is not sent again.
            Outcome::Sent | Outcome::Refused => batch.sent.push(record),
            Outcome::InDoubt => {}
            Outcome::NotSent => {
                batch.given_up.push(key);
                batch.releases.extend(content);
            }
        }
        decided
    }

    /// The gate after the claims: policy, suppression, routing, rate, transport.
    async fn gate(
        &self,
        request: &SendRequest,
        stream: &StreamConfig,
        record: &SendRecord,
        queued: &Queued,
        batch: &mut Batch,
        now: Timestamp,
    ) -> Result<Decision, SenderError> {
        let config = &self.deps.config;
        let removed = match screen(request, &batch.view) {
            Ok(removed) => removed,
            Err(refused) => return Ok(refused),
        };
        let prevented = match prevent(request, stream, &removed, batch) {
            Ok(prevented) => prevented,
            Err(undeliverable) => return Ok(undeliverable),
        };
        let priority = request.priority.unwrap_or(stream.priority);
        let not_sent = Ok;
        let draw = routing::draw(
            &request
                .content_key()
                .unwrap_or_else(|| record.key.to_string()),
        );
        let providers = providers_of(request.recipients());
        // Each account of the stream at most once: a paused or exhausted one fails over.
        for _ in 0..=stream.accounts.len() {
            let route = batch
                .snapshot
                .route(&request.stream, priority, draw, &providers)?;
            let account = match route {
                Route::Defer { until, reason } => {
                    return not_sent(Decision::deferred(reason, until.since(now)));
                }
                Route::Send { account } => account,
            };
            if let Err(wait) = self
                .token(&account, &mut batch.tokens, queued.receive_count, now)
                .await
            {
                batch.snapshot.set_rate_wait(&account, wait);
                continue;
            }
            let mail = match outgoing(config, request, record, &account, &batch.view, &prevented) {
                Ok(mail) => mail,
                // Not sent: the claim goes, so the request can be redriven once the account is fixed.
                Err(invalid) => return not_sent(invalid),
            };
            let failure = match self.transmit(&mail).await {
                Ok(message_id) => {
                    let left_out = (removed, prevented);
                    return Ok(self.sent(account, message_id, &mail, left_out, request, batch));
                }
                Err(failure) => failure,
            };
            if failure.ambiguous {
                return Ok(self.in_doubt(
                    &account,
                    record,
                    &failure,
                    mail.recipients(),
                    batch,
                    now,
                ));
            }
            let receive_count = queued.receive_count;
            if let Some(decision) = self
                .react(&account, failure, request, receive_count, batch, now)
                .await?
            {
                return Ok(decision);
            }
        }
        not_sent(Decision::deferred(
            "every account of the stream refused",
            config.guard.recheck,
        ))
    }

    /// A send SES accepted: the account's run of failures ends, its send counts in routing.
    fn sent(
        &self,
        account: String,
        message_id: String,
        mail: &OutgoingMail,
        (suppressed, prevented): (Vec<EmailAddress>, Vec<EmailAddress>),
        request: &SendRequest,
        batch: &mut Batch,
    ) -> Decision {
        self.memory.failures().remove(&account);
        batch
            .snapshot
            .record_send(&account, &request.stream, mail.recipients() as u64);
        Decision::Sent {
            account,
            message_id,
            recipients: mail.recipients(),
            suppressed,
            prevented,
        }
    }

    /// A send SES may have taken: the claim stays, sending, and settles by its Send event; the
    /// retry waits for it.
    fn in_doubt(
        &self,
        account: &str,
        record: &SendRecord,
        failure: &TransportError,
        recipients: usize,
        batch: &mut Batch,
        now: Timestamp,
    ) -> Decision {
        tracing::warn!(account, send_key = %record.key, error = %failure.detail, "send in doubt");
        batch
            .in_doubt
            .insert(record.key.clone(), (account.to_owned(), recipients));
        self.transport_failed(account);
        Decision::deferred(
            format!(
                "{account}: in doubt ({}): SES may have accepted it; waiting for its Send event until {}",
                failure.detail, record.expires_at
            ),
            record.expires_at.since(now) + Duration::from_secs(1),
        )
    }

    /// The reaction to `account` failing to send: the account paused as its failure says, and
    /// the decision; `None` when the mail fails over to the next account.
    async fn react(
        &self,
        account: &str,
        failure: TransportError,
        request: &SendRequest,
        receive_count: u32,
        batch: &mut Batch,
        now: Timestamp,
    ) -> Result<Option<Decision>, SenderError> {
        let config = &self.deps.config;
        let detail = failure.detail;
        let pause = |cause, until| self.pause(account, cause, until, &detail, now);
        match failure.failure {
            SendFailure::Rate => {
                let until = now.plus(config.sender.rate_pause);
                pause(Cause::SendingRate, Some(until)).await?;
                batch.snapshot.mark_paused(account, Some(until));
                return Ok(Some(Decision::deferred(
                    format!("{account}: sending rate exceeded: {detail}"),
                    config.sender.rate_pause,
                )));
            }
            SendFailure::DailyQuota => {
                let until = now.plus(Duration::from_secs(3600));
                pause(Cause::DailyQuota, Some(until)).await?;
                batch.snapshot.mark_paused(account, Some(until));
            }
            SendFailure::Paused | SendFailure::Suspended => {
                pause(Cause::SesPaused, None).await?;
                batch.snapshot.mark_paused(account, None);
            }
            SendFailure::AccessDenied => {
                tracing::error!(account, error = %detail, "credentials or permissions refused: the account is paused, its mail fails over");
                pause(Cause::AccessDenied, None).await?;
                batch.snapshot.mark_paused(account, None);
            }
            SendFailure::Rejected => return Ok(Some(Decision::Rejected { reason: detail })),
            SendFailure::Configuration => {
                let notice = serde_json::json!({"account": account, "error": detail, "stream": request.stream});
                self.notify("sesguard: SES configuration problem", &notice)
                    .await;
                return Ok(Some(Decision::deferred(
                    format!("{account}: {detail}"),
                    config.guard.recheck,
                )));
            }
            SendFailure::Transient => {
                if self.transport_failed(account) {
                    self.open_breaker(account, &detail, batch, now).await;
                }
                return Ok(Some(Decision::deferred(
                    format!("{account}: {detail}"),
                    backoff(receive_count),
                )));
            }
        }
        Ok(None)
    }

    /// Pauses `account` for a failure SES reported, as the sender; one paused already stays so.
    async fn pause(
        &self,
        account: &str,
        cause: Cause,
        until: Option<Timestamp>,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), SenderError> {
        match Control::of(self.deps)
            .pause_for(account, cause, until, detail, "sender", now)
            .await
        {
            Ok(_) | Err(ControlError::Conflict(_)) => Ok(()),
            Err(ControlError::Store(error)) => Err(SenderError::Store(error)),
            Err(other) => Err(SenderError::Store(StoreError::Rejected {
                action: "pausing an account".into(),
                source: other.to_string().into(),
            })),
        }
    }

    /// The circuit breaker opens on `account`: a short pause, recorded if the store takes it.
    async fn open_breaker(&self, account: &str, detail: &str, batch: &mut Batch, now: Timestamp) {
        let config = &self.deps.config;
        let until = now.plus(config.sender.breaker_pause);
        let why = format!(
            "circuit breaker: {} consecutive transport failures, the last: {detail}",
            config.sender.breaker_failures
        );
        match Control::of(self.deps)
            .pause_for(
                account,
                Cause::TransportFailures,
                Some(until),
                &why,
                "sender",
                now,
            )
            .await
        {
            Ok(_) | Err(ControlError::Conflict(_)) => {}
            Err(error) => {
                tracing::error!(account, error = %error_chain(&error), "circuit breaker not recorded");
            }
        }
        batch.snapshot.mark_paused(account, Some(until));
    }
}

/// The template policy and suppression: the recipients removed as suppressed, or the decision
/// when the policy refuses the request or no recipient is left.
fn screen(request: &SendRequest, view: &GateView) -> Result<Vec<EmailAddress>, Decision> {
    let suppressed = &view.suppressed;
    if let Some(reason) = view
        .policy
        .refusal(request.template(), request.recipient_verified)
    {
        return Err(Decision::Blocked { reason });
    }
    let removed: Vec<EmailAddress> = request
        .recipients()
        .filter(|e| suppressed.contains_key(*e))
        .cloned()
        .collect();
    if removed.len() == request.recipients().count() {
        let reasons: Vec<String> = removed
            .iter()
            .map(|e| format!("{e} is suppressed ({})", suppressed[e]))
            .collect();
        return Err(Decision::Suppressed {
            reason: reasons.join("; "),
        });
    }
    Ok(removed)
}

/// The mail as `account` sends it: its From (the request's, else the account's), its
/// configuration set, without the suppressed recipients nor those prevention left out;
/// `Invalid` when there is no From.
fn outgoing(
    config: &Config,
    request: &SendRequest,
    record: &SendRecord,
    account: &str,
    view: &GateView,
    prevented: &[EmailAddress],
) -> Result<OutgoingMail, Decision> {
    let account_config = config.account(account);
    let Some(from) = request
        .from
        .clone()
        .or_else(|| account_config.and_then(|a| a.from.clone()))
    else {
        return Err(Decision::Invalid {
            reason: format!(
                "no From: the request gives none and account `{account}` has no default `from`"
            ),
        });
    };
    let configuration_set = account_config.and_then(|a| a.configuration_set.clone());
    Ok(OutgoingMail::new(
        request,
        &record.key,
        account,
        from,
        configuration_set,
        |e| !view.suppressed.contains_key(e) && !prevented.contains(e),
    ))
}
