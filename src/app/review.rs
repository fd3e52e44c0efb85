//! The guard use case: after each ingest batch, every account the batch touched is reviewed —
//! one window query (counters and state together), the domain's decision, a conditional
//! write of the transition with its history entry, and an alert from the one instance whose
//! write won. An instance that loses the race writes and sends nothing. An ingest instance
//! keeps a calm account's window for a few seconds ([`WindowCache`]) instead of reading it
//! after every batch.

use std::collections::BTreeSet;

use crate::app::Context;
use crate::app::provider_watch::ProviderWatch;
use crate::app::window_cache::WindowCache;
use crate::config::Config;
use crate::domain::common::names::AccountName;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::Origins;
use crate::domain::reputation::evidence::{self, Evidence};
use crate::domain::reputation::guard::Transition;
use crate::domain::reputation::history::{Alert, HistoryEntry, traffic_after};
use crate::domain::reputation::providers::ProviderFinding;
use crate::domain::reputation::rules::{self, MAX_STEPS};
use crate::domain::reputation::ses_view::SesFigures;
use crate::domain::reputation::state::{AccountState, StateName};
use crate::ports::{
    AccountWindow, AlertSink, CounterWindow, GuardLedger, SesAccount, SesReputation, StoreError,
};
use crate::telemetry::error_chain;

/// The ports a change of an account's state draws on: its window and state read, the
/// transition written, the alert sent, SES told (enforcement), and SES's own figures. The
/// guard's review and an operator's control are built on the same set.
#[derive(Clone, Copy)]
pub struct StatePorts<'a> {
    /// The account's counters and state, read together.
    pub counters: &'a dyn CounterWindow,
    /// Where a transition is written, conditionally, with its history entry.
    pub ledger: &'a dyn GuardLedger,
    /// Where alerts go.
    pub alerts: &'a dyn AlertSink,
    /// SES account calls (enforcement).
    pub ses: &'a dyn SesAccount,
    /// SES's own reputation figures.
    pub reputation: &'a dyn SesReputation,
    /// The settings.
    pub config: &'a Config,
}

impl<'a> StatePorts<'a> {
    /// The ports of `context`.
    pub fn of(context: &'a Context) -> Self {
        let store = context.store.as_ref();
        Self {
            counters: store,
            ledger: store,
            alerts: context.alerts.as_ref(),
            ses: context.ses.as_ref(),
            reputation: context.reputation.as_ref(),
            config: &context.config,
        }
    }
}

/// Reviews accounts after a batch.
pub struct Guard<'a> {
    ports: StatePorts<'a>,
    cache: Option<&'a WindowCache>,
    providers: ProviderWatch<'a>,
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
    /// What this instance told operators of mailbox providers.
    pub providers: Vec<(String, ProviderFinding)>,
}

impl<'a> Guard<'a> {
    /// The guard over the ports and settings of `context`.
    pub fn of(context: &'a Context) -> Self {
        Self {
            ports: StatePorts::of(context),
            cache: None,
            providers: ProviderWatch::of(context),
        }
    }

    /// The same guard writing its transitions through `ledger` (tests put a race in it).
    pub fn with_ledger(mut self, ledger: &'a dyn GuardLedger) -> Self {
        self.ports.ledger = ledger;
        self
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

    /// Reviews each account until its state is at a fixed point; returns the transitions this
    /// instance applied. The window is read strongly consistent; an instance whose
    /// conditional write loses reads again and decides again on what the winner wrote, so a
    /// stronger transition is not lost to a weaker one, and each transition is alerted once,
    /// by the instance that wrote it. After a transition the guard reads again and decides
    /// on the new state (at most [`MAX_STEPS`] transitions a review): a timed pause that ends
    /// into a rate over a level is paused again before any batch can send on it.
    pub async fn review(
        &self,
        accounts: &BTreeSet<String>,
        now: Timestamp,
    ) -> Result<Review, StoreError> {
        let mut review = Review::default();
        for account in accounts {
            let figures = ses_figures(self.ports.reputation, account, now).await;
            self.review_one(account, figures, now, &mut review).await?;
        }
        Ok(review)
    }

    async fn review_one(
        &self,
        account: &str,
        figures: Option<SesFigures>,
        now: Timestamp,
        review: &mut Review,
    ) -> Result<(), StoreError> {
        let window = self.ports.config.ingest_policy().window;
        let (first, last) = window.buckets_ending(now);
        let thresholds = self.ports.config.thresholds_for(account);
        let recovery = self.ports.config.recovery(account);
        let (mut races, mut steps) = (0, 0);
        while races < MAX_RACES && steps < MAX_STEPS {
            let first_read = races == 0 && steps == 0;
            let (read, from_cache) = self.read(account, (first, last), first_read, now).await?;
            let evidence =
                Evidence::gather(&read.buckets, first, last, &read.state).with_ses(figures);
            let transition = rules::evaluate(&read.state, &evidence, &thresholds, &recovery, now);
            if let Some(cache) = self.cache.filter(|_| !from_cache) {
                let calm =
                    transition.is_none() && evidence::is_calm(&read.state, &evidence, &thresholds);
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
                let told = self.providers.watch(account, &read, (first, last), now);
                let told = told.await.into_iter().map(|f| (account.to_owned(), f));
                review.providers.extend(told);
                return Ok(());
            };
            let entry = transition.history(account, "guard", now);
            let expires = now.plus(self.ports.config.guard.history_ttl);
            let written = self
                .ports
                .ledger
                .transition(
                    account,
                    read.state.version,
                    &transition.next,
                    &entry,
                    expires,
                )
                .await?;
            if !written {
                tracing::info!(account = %account, "another instance changed the state first: deciding again");
                races += 1;
                continue;
            }
            steps += 1;
            if steps == MAX_STEPS {
                review
                    .gauges
                    .push(gauge(account, &evidence, &transition.next, now));
            }
            let mut alert = alert_for(self.ports.config, entry);
            enforce(self.ports.ses, &mut alert).await;
            if let Err(error) = self.ports.alerts.publish(&alert).await {
                tracing::error!(account = %account, error = %error_chain(&error), "transition applied but its alert was not delivered");
            }
            review.applied.push(Applied {
                account: account.to_owned(),
                transition,
                alert,
            });
        }
        Ok(())
    }

    /// The account's window, and whether it came from the cache: only the first read of a
    /// review may (a lost race, or the next step of a review, reads).
    async fn read(
        &self,
        account: &str,
        (first, last): (Timestamp, Timestamp),
        first_read: bool,
        now: Timestamp,
    ) -> Result<(AccountWindow, bool), StoreError> {
        let keep = self.ports.config.guard.window_cache;
        let cached = self
            .cache
            .filter(|_| first_read && !keep.is_zero())
            .and_then(|cache| cache.fresh(account, now, keep));
        Ok(match cached {
            Some(window) => (window, true),
            None => (
                self.ports.counters.window(account, first, last).await?,
                false,
            ),
        })
    }

    /// Where the accounts' counter buckets start afresh, from their states (one batched read).
    pub async fn origins(&self, accounts: &[String]) -> Result<Origins, StoreError> {
        let states = self.ports.ledger.states(accounts).await?;
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
            .ports
            .config
            .accounts
            .iter()
            .map(|a| a.name.to_string())
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
    let streams: Vec<(&str, &[AccountName])> = config
        .streams
        .iter()
        .map(|s| (s.name.as_str(), s.accounts.as_slice()))
        .collect();
    let traffic = traffic_after(
        &entry.account,
        entry.stream.as_deref(),
        (entry.from, entry.to),
        entry.share,
        &streams,
    );
    Alert {
        change: entry,
        traffic,
    }
}

/// SES's own figures for `account`, or `None` when they cannot be read now (logged: the
/// decision then rests on sesguard's own window).
pub async fn ses_figures(
    reputation: &dyn SesReputation,
    account: &str,
    now: Timestamp,
) -> Option<SesFigures> {
    match reputation.reputation(account, now).await {
        Ok(figures) => figures,
        Err(error) if error.permanent => None,
        Err(error) => {
            tracing::warn!(account, error = %error_chain(&error), "SES's reputation figures could not be read: judging on sesguard's own window");
            None
        }
    }
}

/// Applies an account-wide pause or resume at SES itself, when the account asks for it, and
/// adds the outcome to the alert.
pub async fn enforce(ses: &dyn SesAccount, alert: &mut Alert) {
    let change = &alert.change;
    let enabled = match (change.stream.is_some(), change.from, change.to) {
        (false, _, StateName::Paused) => false,
        // On probation the sender takes a share of the traffic: SES must let it through.
        (false, StateName::Paused, StateName::Active | StateName::Probation) => true,
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
