//! The guard use case: after each ingest batch, every account the batch touched is reviewed —
//! one window query (counters and state together), the domain's decision, a conditional
//! write of the transition with its history entry, and an alert from the one instance whose
//! write won. An instance that loses the race writes and sends nothing. An ingest instance
//! keeps a calm account's window for a few seconds ([`WindowCache`]) instead of reading it
//! after every batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::config::Config;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::Origins;
use crate::domain::reputation::evidence::{self, Evidence};
use crate::domain::reputation::guard::{
    self, AccountState, Alert, HistoryEntry, Transition, traffic_after,
};
use crate::ports::{AccountWindow, AlertSink, CounterWindow, GuardLedger, SesAccount, StoreError};
use crate::telemetry::error_chain;

/// Reviews accounts after a batch.
pub struct Guard<'a> {
    counters: &'a dyn CounterWindow,
    ledger: &'a dyn GuardLedger,
    alerts: &'a dyn AlertSink,
    ses: &'a dyn SesAccount,
    config: &'a Config,
    cache: Option<&'a WindowCache>,
}

/// The windows of calm accounts ([`is_calm`](crate::domain::reputation::evidence::is_calm)) as one ingest instance last read them.
/// At 1,000 sends a second ingest stores a batch every few milliseconds, and each review read
/// the account's whole window — every shard of every bucket of the day, tens of read units —
/// more than the account's partition serves. A calm account's window is reused for
/// `guard.window_cache` (5 s) by batches that bring it no hard bounce and no complaint (the
/// ingestor forgets it on those, [`Guard::bad_news`]): a calm account changes state only on
/// bad feedback, so a review on that read decides as a fresh one would. What the read misses
/// is the window sliding on — old mail leaving it — seen at most that much later.
#[derive(Debug, Default)]
pub struct WindowCache {
    windows: Mutex<HashMap<String, (Timestamp, AccountWindow)>>,
}

impl WindowCache {
    fn fresh(&self, account: &str, now: Timestamp, keep: Duration) -> Option<AccountWindow> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, window) = windows.get(account)?;
        (now.since(*read_at) < keep && *read_at <= now).then(|| window.clone())
    }

    fn keep(&self, account: &str, read_at: Timestamp, window: AccountWindow) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_owned(), (read_at, window));
    }

    fn forget(&self, account: &str) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(account);
    }
}

/// A transition this instance applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The account.
    pub account: String,
    /// What changed.
    pub transition: Transition,
    /// What operators were told.
    pub alert: Alert,
}

/// An account's rates (the whole window, as SES sees it) and state after a review, for
/// metrics and alarms.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// The account.
    pub account: String,
    /// Hard bounces per send over the window.
    pub bounce_rate: f64,
    /// Complaints per send over the window.
    pub complaint_rate: f64,
    /// Sends in the window.
    pub window_sends: u64,
    /// Whether it is paused now.
    pub paused: bool,
    /// How many of its streams are quarantined.
    pub quarantined: usize,
}

/// What a review did and saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Review {
    /// The transitions this instance applied.
    pub applied: Vec<Applied>,
    /// Every reviewed account as it is now.
    pub gauges: Vec<Gauge>,
}

impl<'a> Guard<'a> {
    /// A guard over these ports and settings.
    pub fn new(
        counters: &'a dyn CounterWindow,
        ledger: &'a dyn GuardLedger,
        alerts: &'a dyn AlertSink,
        ses: &'a dyn SesAccount,
        config: &'a Config,
    ) -> Self {
        Self {
            counters,
            ledger,
            alerts,
            ses,
            config,
            cache: None,
        }
    }

    /// The same guard reusing calm accounts' windows from `cache` for `guard.window_cache`.
    pub fn with_cache(mut self, cache: &'a WindowCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// A batch stored hard bounces or complaints of `account`: its next review reads.
    pub fn bad_news(&self, account: &str) {
        if let Some(cache) = self.cache {
            cache.forget(account);
        }
    }

    /// Reviews each account once; returns the transitions this instance applied. The window
    /// is read strongly consistent; an instance whose conditional write loses reads again and
    /// decides again on what the winner wrote, so a stronger transition is not lost to a
    /// weaker one, and each transition is alerted once, by the instance that wrote it.
    pub async fn review(
        &self,
        accounts: &BTreeSet<String>,
        now: Timestamp,
    ) -> Result<Review, StoreError> {
        let window = self.config.ingest_policy().window;
        let (first, last) = window.buckets_ending(now);
        let mut review = Review::default();
        for account in accounts {
            let thresholds = self.config.thresholds_for(account);
            let recovery = self.config.recovery(account);
            let keep = self.config.guard.window_cache;
            for race in 0..MAX_RACES {
                // Only the first read of a review may come from the cache: a lost race reads.
                let cached = self
                    .cache
                    .filter(|_| race == 0 && !keep.is_zero())
                    .and_then(|cache| cache.fresh(account, now, keep));
                let from_cache = cached.is_some();
                let read = match cached {
                    Some(window) => window,
                    None => self.counters.window(account, first, last).await?,
                };
                let evidence = Evidence::gather(&read.buckets, first, last, &read.state);
                let transition =
                    guard::evaluate(&read.state, &evidence, &thresholds, &recovery, now);
                if let Some(cache) = self.cache.filter(|_| !from_cache) {
                    let calm = transition.is_none()
                        && evidence::is_calm(&read.state, &evidence, &thresholds);
                    if calm {
                        cache.keep(account, now, read.clone());
                    } else {
                        cache.forget(account);
                    }
                }
                let Some(transition) = transition else {
                    review
                        .gauges
                        .push(gauge(account, &evidence, &read.state, now));
                    break;
                };
                let entry = transition.history(account, "guard", now);
                let expires = now.plus(self.config.guard.history_ttl);
                if !self
                    .ledger
                    .transition(
                        account,
                        read.state.version,
                        &transition.next,
                        &entry,
                        expires,
                    )
                    .await?
                {
                    tracing::info!(account = %account, "another instance changed the state first: deciding again");
                    continue;
                }
                review
                    .gauges
                    .push(gauge(account, &evidence, &transition.next, now));
                let mut alert = alert_for(self.config, entry);
                enforce(self.ses, &mut alert).await;
                if let Err(error) = self.alerts.publish(&alert).await {
                    tracing::error!(account = %account, error = %error_chain(&error), "transition applied but its alert was not delivered");
                }
                review.applied.push(Applied {
                    account: account.clone(),
                    transition,
                    alert,
                });
                break;
            }
        }
        Ok(review)
    }

    /// Where the accounts' counter buckets start afresh, from their states (one batched read).
    pub async fn origins(&self, accounts: &[String]) -> Result<Origins, StoreError> {
        let states = self.ledger.states(accounts).await?;
        Ok(states
            .into_iter()
            .map(|(account, state)| (account, state.origins()))
            .filter(|(_, origins)| !origins.is_empty())
            .collect())
    }

    /// Reviews every configured account: what the scheduled review runs, so that timed pauses
    /// end, probation advances and auto-resume runs without waiting for feedback.
    pub async fn review_all(&self, now: Timestamp) -> Result<Review, StoreError> {
        let accounts = self
            .config
            .accounts
            .iter()
            .map(|a| a.name.clone())
            .collect();
        self.review(&accounts, now).await
    }
}

/// How many times a review decides again after losing the conditional write to another
/// instance.
const MAX_RACES: usize = 5;

fn gauge(account: &str, evidence: &Evidence, state: &AccountState, now: Timestamp) -> Gauge {
    Gauge {
        account: account.to_owned(),
        bounce_rate: evidence.whole.bounce_rate(),
        complaint_rate: evidence.whole.complaint_rate(),
        window_sends: evidence.whole.sends,
        paused: state.is_paused(now),
        quarantined: state.quarantined.len(),
    }
}

/// The alert describing a transition recorded as `entry`, with where traffic goes now.
pub fn alert_for(config: &Config, entry: HistoryEntry) -> Alert {
    let streams: Vec<(&str, &[String])> = config
        .streams
        .iter()
        .map(|s| (s.name.as_str(), s.accounts.as_slice()))
        .collect();
    let traffic = traffic_after(
        &entry.account,
        entry.stream.as_deref(),
        (&entry.from, &entry.to),
        entry.share,
        &streams,
    );
    Alert {
        change: entry,
        traffic,
    }
}

/// Applies an account-wide pause or resume at SES itself, when the account asks for it, and
/// adds the outcome to the alert.
pub async fn enforce(ses: &dyn SesAccount, alert: &mut Alert) {
    let change = &alert.change;
    let enabled = match (
        change.stream.is_some(),
        change.from.as_str(),
        change.to.as_str(),
    ) {
        (false, _, "paused") => false,
        // On probation the sender takes a share of the traffic: SES must let it through.
        (false, "paused", "active" | "probation") => true,
        _ => return,
    };
    match ses.set_sending(&change.account, enabled).await {
        Ok(false) => {}
        Ok(true) => {
            let state = if enabled { "on" } else { "off" };
            alert
                .traffic
                .push_str(&format!("; SES sending switched {state}"));
        }
        Err(error) => {
            let error = error_chain(&error);
            tracing::error!(account = %change.account, %error, "SES enforcement failed");
            alert
                .traffic
                .push_str(&format!("; SES enforcement failed: {error}"));
        }
    }
}

impl crate::app::Context {
    /// Reviews every configured account now (the scheduled review).
    pub async fn review_all(&self, now: Timestamp) -> Result<Review, StoreError> {
        let store = self.store.as_ref();
        Guard::new(
            store,
            store,
            self.alerts.as_ref(),
            self.ses.as_ref(),
            &self.config,
        )
        .review_all(now)
        .await
    }
}
