//! The dependencies every function and the CLI build once at start: configuration, store and
//! clock. "Config is expensive, clients are cheap": the AWS configuration is loaded here, once
//! per process, never per event.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::alerts::{LogAlerts, SnsAlerts};
use crate::config::Config;
use crate::domain::attribution::AccountDirectory;
use crate::domain::plan::IngestPolicy;
use crate::domain::timestamp::Timestamp;
use crate::guard::Guard;
use crate::ingest::{Inbound, Ingestor, Report};
use crate::outbox::FileOutbox;
use crate::ports::{AlertSink, Clock, MailTransport, SesAccount, Store, SystemClock};
use crate::ses::{NoSes, Sesv2Accounts};
use crate::store::dynamodb::DynamoStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{DEFAULT_STORE, StoreUrl};

/// What a handler needs, built once.
#[derive(Clone)]
pub struct Deps {
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
    /// SES account calls (quotas, enforcement); none in local runs.
    pub ses: Arc<dyn SesAccount>,
    /// Where mail goes: SES in a deployment, the file outbox in local runs.
    pub transport: Arc<dyn MailTransport>,
}

impl Deps {
    /// Builds from `SESGUARD_CONFIG` / `SESGUARD_CONFIG_TOML` and `SESGUARD_STORE`.
    pub async fn from_env() -> anyhow::Result<Self> {
        let config_path = std::env::var_os("SESGUARD_CONFIG");
        let store = std::env::var("SESGUARD_STORE").unwrap_or_else(|_| DEFAULT_STORE.to_owned());
        Self::build(config_path.as_deref().map(Path::new), &store).await
    }

    /// Builds from an explicit configuration file and store address. The AWS SDK
    /// configuration is loaded once, and only when something needs AWS: a DynamoDB store (a
    /// deployment, where SES is reached too) or an SNS alert topic.
    pub async fn build(config_path: Option<&Path>, store: &str) -> anyhow::Result<Self> {
        let config = Config::load(config_path)?;
        let url: StoreUrl = store.parse()?;
        let needs_aws = url == StoreUrl::Dynamodb || config.alerts.topic_arn.is_some();
        let sdk = if needs_aws {
            Some(aws_config::load_from_env().await)
        } else {
            None
        };
        let store: Arc<dyn Store> = match (&url, &sdk) {
            (StoreUrl::Dynamodb, Some(sdk)) => Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.tables(),
            )),
            _ => connect_local(&url)?,
        };
        let alerts: Arc<dyn AlertSink> = match (&config.alerts.topic_arn, &sdk) {
            (Some(topic), Some(sdk)) => {
                Arc::new(SnsAlerts::new(aws_sdk_sns::Client::new(sdk), topic.clone()))
            }
            _ => Arc::new(LogAlerts::new(config.alerts.file.clone())),
        };
        // A DynamoDB store means a deployment: SES is there. The embedded store means a local
        // run: no SES, quotas come from the configuration.
        let ses: Arc<dyn SesAccount> = match (&url, &sdk) {
            (StoreUrl::Dynamodb, Some(sdk)) => {
                Arc::new(Sesv2Accounts::from_config(sdk, &config).await)
            }
            _ => Arc::new(NoSes),
        };
        Ok(Self::with_store(config, store, Arc::new(SystemClock))
            .with_alerts(alerts)
            .with_ses(ses))
    }

    /// The same dependencies with another SES port.
    pub fn with_ses(mut self, ses: Arc<dyn SesAccount>) -> Self {
        self.ses = ses;
        self
    }

    /// The same dependencies with another alert sink.
    pub fn with_alerts(mut self, alerts: Arc<dyn AlertSink>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Records a batch and lets the guard review the accounts it touched.
    pub async fn ingest(&self, records: Vec<Inbound>, now: Timestamp) -> Report {
        let store = self.store.as_ref();
        let guard = Guard::new(
            store,
            store,
            self.alerts.as_ref(),
            self.ses.as_ref(),
            &self.config,
        );
        Ingestor::new(store, &self.directory, &self.policy)
            .with_guard(guard)
            .ingest(records, now)
            .await
    }

    /// Assembles dependencies around an existing store and clock (tests, benchmarks); alerts
    /// go to the log and the configured file.
    pub fn with_store(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            alerts: Arc::new(LogAlerts::new(config.alerts.file.clone())),
            ses: Arc::new(NoSes),
            transport: Arc::new(FileOutbox::new(config.sender.outbox.clone())),
            directory: Arc::new(config.directory()),
            policy: config.ingest_policy(),
            config: Arc::new(config),
            store,
            clock,
        }
    }
}

/// Opens a local (SQLite) store; a DynamoDB address is refused here, as it needs the AWS SDK
/// configuration that [`Deps::build`] loads.
fn connect_local(url: &StoreUrl) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        StoreUrl::Sqlite(path) => {
            Ok(Arc::new(SqliteStore::open(path).with_context(|| {
                format!("opening SQLite store {}", path.display())
            })?))
        }
        StoreUrl::Dynamodb => anyhow::bail!("a DynamoDB store needs the AWS SDK configuration"),
    }
}
