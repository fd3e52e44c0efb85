//! The dependencies every function and the CLI build once at start: configuration, store and
//! clock. "Config is expensive, clients are cheap": the AWS configuration is loaded here, once
//! per process, never per event.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::domain::attribution::AccountDirectory;
use crate::domain::plan::IngestPolicy;
use crate::ports::{Clock, Store, SystemClock};
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
}

impl Deps {
    /// Builds from `SESGUARD_CONFIG` / `SESGUARD_CONFIG_TOML` and `SESGUARD_STORE`.
    pub async fn from_env() -> anyhow::Result<Self> {
        let config_path = std::env::var_os("SESGUARD_CONFIG");
        let store = std::env::var("SESGUARD_STORE").unwrap_or_else(|_| DEFAULT_STORE.to_owned());
        Self::build(config_path.as_deref().map(Path::new), &store).await
    }

    /// Builds from an explicit configuration file and store address.
    pub async fn build(config_path: Option<&Path>, store: &str) -> anyhow::Result<Self> {
        let config = Config::load(config_path)?;
        let url: StoreUrl = store.parse()?;
        let store = connect(&url, &config).await?;
        Ok(Self::with_store(config, store, Arc::new(SystemClock)))
    }

    /// Assembles dependencies around an existing store and clock (tests, benchmarks).
    pub fn with_store(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            directory: Arc::new(config.directory()),
            policy: config.ingest_policy(),
            config: Arc::new(config),
            store,
            clock,
        }
    }
}

/// Opens the store at `url`. For DynamoDB the AWS SDK's standard settings apply (region,
/// credentials, `AWS_ENDPOINT_URL` for a local server).
pub async fn connect(url: &StoreUrl, config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Arc::new(
            SqliteStore::open(path)
                .with_context(|| format!("opening SQLite store {}", path.display()))?,
        ),
        StoreUrl::Dynamodb => {
            let sdk = aws_config::load_from_env().await;
            Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                config.tables(),
            ))
        }
    })
}
