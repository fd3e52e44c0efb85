//! Send-rate tokens in a batch: taken from the store for what this instance can send within
//! a token's life (`sender.token_life`), used one per send, dropped when they outlive it — the
//! sender's half of SES's send-rate line
//! ([`SesLine`](crate::domain::sending::rate_limit::SesLine)).

use super::*;

/// Send-rate tokens taken for one batch, per account: how many are left, when more come, and
/// when they were taken (a token older than `sender.token_life` is dropped).
#[derive(Debug, Clone, Copy)]
struct HeldTokens {
    left: u64,
    /// The take got fewer than it asked for: the bucket is dry until `next_at`.
    dry: bool,
    next_at: Option<Timestamp>,
    taken_at: Timestamp,
}

/// Send-rate tokens held for one batch.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    granted: HashMap<String, HeldTokens>,
    pub(super) remaining: u64,
    /// The rate records read with the batch: the first take of each account starts from it.
    read: HashMap<String, RateRecord>,
}

impl Tokens {
    /// No tokens yet; the first take of each account starts from its record in `read`.
    pub(super) fn from_read(read: HashMap<String, RateRecord>) -> Self {
        Self {
            granted: HashMap::new(),
            remaining: 0,
            read,
        }
    }
}

impl SenderMemory {
    /// Notes how long one send to SES took.
    pub(super) fn sent_in(&self, took: Duration) {
        let mut smoothed = self
            .send_time_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let took = took.as_micros() as f64;
        *smoothed = Some(smoothed.map_or(took, |before| before + 0.2 * (took - before)));
    }

    /// How many sends fit in `life` at the pace sends have gone (`wanted` when not known).
    fn sends_within(&self, life: Duration, wanted: u64) -> u64 {
        let smoothed = *self
            .send_time_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match smoothed {
            Some(us) if us >= 1.0 => wanted
                .min((life.as_micros() as f64 / us).floor() as u64)
                .max(1),
            _ => wanted,
        }
    }
}

impl Sender<'_> {
    /// Sends `mail` through the transport, noting how long SES took: the next take asks for
    /// what fits in a token's life at that pace.
    pub(super) async fn transmit(
        &self,
        mail: &OutgoingMail,
    ) -> Result<String, crate::ports::TransportError> {
        let started = self.deps.clock.now();
        let sent = self.transport.send(mail).await;
        self.memory.sent_in(self.deps.clock.now().since(started));
        sent
    }

    /// Takes a send-rate token of `account`, waiting for it in the instance when the bucket
    /// is dry and the next token comes within `sender.rate_wait`: an account whose burst is
    /// smaller than a batch (SES's line gives one of 14 a second a burst of 1.4) sends the
    /// batch at its rate instead of deferring all but the first. A token that another
    /// instance took meanwhile is waited for again, within the same `rate_wait`. `Err(wait)`
    /// when there is none.
    pub(super) async fn token(
        &self,
        account: &str,
        tokens: &mut Tokens,
        receive_count: u32,
        now: Timestamp,
    ) -> Result<(), Duration> {
        let deadline = self
            .deps
            .clock
            .now()
            .plus(self.deps.config.sender.rate_wait);
        let mut slept_at: Option<Timestamp> = None;
        loop {
            let taken = self.try_token(account, tokens, receive_count, now).await;
            let Err(wait) = taken else {
                return taken;
            };
            let clock = self.deps.clock.now();
            // A clock that did not move while the instance slept (a test's) is waited on once.
            if slept_at.is_some_and(|at| clock <= at) {
                return Err(wait);
            }
            let dry_until = tokens
                .granted
                .get(account)
                .filter(|held| held.left == 0 && held.dry)
                .and_then(|held| held.next_at);
            let Some(until) = dry_until.filter(|until| *until <= deadline && clock < deadline)
            else {
                return Err(wait);
            };
            // At least a millisecond: a token due now that another instance took is waited
            // for again, never spun on, and never past the deadline.
            tokio::time::sleep(until.since(clock).max(Duration::from_millis(1))).await;
            slept_at = Some(clock);
            // Taken again from the store: the wait is over, or another instance took the token.
            if let Some(held) = tokens.granted.get_mut(account) {
                held.dry = false;
            }
        }
    }

    /// One attempt at a send-rate token of `account`. Tokens are taken for what this instance
    /// can send within a token's life (`sender.token_life`, at the pace its sends have gone),
    /// in one write; a token that outlives its life unused is dropped and the next take made
    /// (slower, never faster than allowed: the line of
    /// [`SesLine`](crate::domain::sending::rate_limit::SesLine) counts on it). `Err(wait)` when
    /// there is none.
    async fn try_token(
        &self,
        account: &str,
        tokens: &mut Tokens,
        receive_count: u32,
        now: Timestamp,
    ) -> Result<(), Duration> {
        let config = &self.deps.config;
        // The time of the take itself, not of the batch's start: a paced bucket's write is
        // conditional on it, and a batch's sends before this one took their time.
        let at = self.deps.clock.now().max(now);
        let life = config.sender.token_life;
        // Taken again: tokens outlived, or used up when the take asked for fewer than the batch.
        let spent = |held: &HeldTokens| match held.left {
            0 => !held.dry,
            _ => at.since(held.taken_at) > life,
        };
        if tokens.granted.get(account).is_none_or(spent) {
            let limits = configured_limits(config, self.deps.ses.as_ref(), account)
                .await
                .map_err(|error| {
                    tracing::error!(account, error = %error_chain(&error), "send rate unknown");
                    backoff(receive_count)
                })?;
            // The record read with the batch serves every take of it: its limits do not change within.
            let read = tokens.read.get(account).cloned();
            let wanted = self.memory.sends_within(life, tokens.remaining);
            let (left, next_at) = match self
                .deps
                .store
                .take(account, &limits, wanted, at, read.as_ref())
                .await
            {
                Ok(grant) => (grant.granted, grant.next_at),
                Err(error) => {
                    tracing::error!(account, error = %error_chain(&error), "rate limiter's store unreachable");
                    match config.sender.on_store_failure {
                        StoreFailurePolicy::Send => (tokens.remaining, None),
                        StoreFailurePolicy::Defer => return Err(backoff(receive_count)),
                    }
                }
            };
            let held = HeldTokens {
                left,
                dry: left < wanted,
                next_at,
                taken_at: at,
            };
            tokens.granted.insert(account.to_owned(), held);
        }
        let held = tokens.granted.get_mut(account).expect("inserted above");
        if held.left == 0 {
            return Err(held.next_at.map_or(Duration::from_secs(1), |at| {
                at.since(now).max(Duration::from_millis(1))
            }));
        }
        held.left -= 1;
        Ok(())
    }
}
