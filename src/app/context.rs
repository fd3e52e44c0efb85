//! The ports every use case may draw on, held together for one process: configuration, store,
//! clock, alerts, SES account calls and the mail transport. A plain bundle of trait objects:
//! it knows no adapter, and is assembled only by [`crate::wiring`] (or by a test).

use std::sync::Arc;

use crate::app::domain_cache::DomainCache;
use crate::app::window_cache::WindowCache;
use crate::config::Config;
use crate::domain::feedback::attribution::AccountDirectory;
use crate::domain::feedback::plan::IngestPolicy;
use crate::domain::sending::prevention::Prevention;
use crate::ports::{
    AlertSink, Clock, DomainResolver, MailTransport, SesAccount, SesReputation, Store,
};

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
    /// Prevention's checks, with the configuration's allowed domains.
    pub prevention: Arc<Prevention>,
    /// DNS, for prevention.
    pub resolver: Arc<dyn DomainResolver>,
    /// Domain answers as this process last learned them.
    pub domains: Arc<DomainCache>,
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
    /// DNS, for prevention.
    pub resolver: Arc<dyn DomainResolver>,
}

impl Context {
    /// The context of `config` over `parts`; the account directory and the ingest policy are
    /// derived from the configuration here, once.
    pub fn new(config: Config, parts: Parts) -> Self {
        Self {
            directory: Arc::new(config.directory()),
            policy: config.ingest_policy(),
            prevention: Arc::new(Prevention::new(config.prevention.allow_domains.clone())),
            config: Arc::new(config),
            store: parts.store,
            clock: parts.clock,
            alerts: parts.alerts,
            ses: parts.ses,
            reputation: parts.reputation,
            transport: parts.transport,
            windows: Arc::default(),
            resolver: parts.resolver,
            domains: Arc::default(),
        }
    }

    /// The same context with another SES port.
    pub fn with_ses(mut self, ses: Arc<dyn SesAccount>) -> Self {
        self.ses = ses;
        self
    }

    /// The same context with another resolver (a fresh domain cache with it).
    pub fn with_resolver(mut self, resolver: Arc<dyn DomainResolver>) -> Self {
        self.resolver = resolver;
        self.domains = Arc::default();
        self
    }

    /// The same context with another alert sink.
    pub fn with_alerts(mut self, alerts: Arc<dyn AlertSink>) -> Self {
        self.alerts = alerts;
        self
    }
}
