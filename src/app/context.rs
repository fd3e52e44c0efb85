//! The ports every use case may draw on, held together for one process: configuration, store,
//! clock, alerts, SES account calls and the mail transport. A plain bundle of trait objects:
//! it knows no adapter, and is assembled only by [`crate::wiring`] (or by a test).

use std::sync::Arc;

use crate::app::window_cache::WindowCache;
use crate::config::Config;
use crate::domain::feedback::attribution::AccountDirectory;
use crate::domain::feedback::plan::IngestPolicy;
use crate::ports::{AlertSink, Clock, MailTransport, SesAccount, SesReputation, Store};

/// What a use case needs, built once per process.
#[derive(Clone)]
pub struct Context {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The accounts, for attribution.
    pub directory: Arc<AccountDirectory>,
    /// The ingest rules.
    pub policy: IngestPolicy,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where alerts go.
    pub alerts: Arc<dyn AlertSink>,
    /// SES account calls (quotas, enforcement).
    pub ses: Arc<dyn SesAccount>,
    /// SES's own reputation figures per account.
    pub reputation: Arc<dyn SesReputation>,
    /// Where mail goes.
    pub transport: Arc<dyn MailTransport>,
    /// The accounts' windows as this process's ingest last read them (calm ones only).
    pub windows: Arc<WindowCache>,
}

/// The outside world a [`Context`] is made of: each part one port.
pub struct Parts {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where alerts go.
    pub alerts: Arc<dyn AlertSink>,
    /// SES account calls.
    pub ses: Arc<dyn SesAccount>,
    /// SES's own reputation figures per account.
    pub reputation: Arc<dyn SesReputation>,
    /// Where mail goes.
    pub transport: Arc<dyn MailTransport>,
}

impl Context {
    /// The context of `config` over `parts`; the account directory and the ingest policy are
    /// derived from the configuration here, once.
    pub fn new(config: Config, parts: Parts) -> Self {
        Self {
            directory: Arc::new(config.directory()),
            policy: config.ingest_policy(),
            config: Arc::new(config),
            store: parts.store,
            clock: parts.clock,
            alerts: parts.alerts,
            ses: parts.ses,
            reputation: parts.reputation,
            transport: parts.transport,
            windows: Arc::default(),
        }
    }

    /// The same context with another SES port.
    pub fn with_ses(mut self, ses: Arc<dyn SesAccount>) -> Self {
        self.ses = ses;
        self
    }

    /// The same context with another alert sink.
    pub fn with_alerts(mut self, alerts: Arc<dyn AlertSink>) -> Self {
        self.alerts = alerts;
        self
    }
}
