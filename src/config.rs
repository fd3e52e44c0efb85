//! sesguard's configuration: one TOML file (`--config PATH`, `SESGUARD_CONFIG=PATH`, or the
//! text itself in `SESGUARD_CONFIG_TOML`), every key optional with a documented default,
//! unknown keys refused, and values validated at start with errors that name the key.
//! Environment variables override the table names (`SESGUARD_SUPPRESSION_TABLE`,
//! `SESGUARD_STATE_TABLE`), so one file serves every deployment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::attribution::{AccountDirectory, KnownAccount, SendSource};
use crate::domain::counters::WindowConfig;
use crate::domain::plan::IngestPolicy;
use crate::domain::suppression::SoftBouncePolicy;
use crate::store::dynamodb::Tables;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// DynamoDB table names.
    pub tables: TablesConfig,
    /// Ingest policy.
    pub ingest: IngestConfig,
    /// The rolling window of the account counters.
    pub window: WindowSection,
    /// The SES accounts sesguard guards.
    pub accounts: Vec<AccountConfig>,
}

/// `[tables]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    /// Default `sesguard-suppressions`.
    pub suppressions: String,
    /// Default `sesguard-state`.
    pub state: String,
}

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            suppressions: "sesguard-suppressions".into(),
            state: "sesguard-state".into(),
        }
    }
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Soft bounces within the window that suppress an address (default 3).
    pub soft_bounce_threshold: u32,
    /// The soft-bounce window (default `14d`).
    #[serde(with = "humantime_serde")]
    pub soft_bounce_window: Duration,
    /// How long a notification is remembered for de-duplication (default `14d`).
    #[serde(with = "humantime_serde")]
    pub dedup_ttl: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let policy = IngestPolicy::default();
        Self {
            soft_bounce_threshold: policy.soft_bounce.threshold,
            soft_bounce_window: policy.soft_bounce.window,
            dedup_ttl: policy.dedup_ttl,
        }
    }
}

/// `[window]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    /// How far back rates look (default `24h`).
    #[serde(with = "humantime_serde")]
    pub length: Duration,
    /// Counter bucket size (default `15m`); `length` must be a whole number of buckets.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
}

impl Default for WindowSection {
    fn default() -> Self {
        let window = WindowConfig::default();
        Self {
            length: window.length,
            bucket: window.bucket,
        }
    }
}

/// `[[accounts]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// sesguard's name for the account: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// The SES region, for example `us-east-1`.
    pub region: String,
    /// The 12-digit AWS account id.
    pub account_id: String,
    /// `ses_events` (default) or `sender`.
    #[serde(default)]
    pub send_count_source: SendSource,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a key that is unknown or has the wrong type.
    #[error("configuration {origin} is invalid: {source}")]
    Parse {
        /// Where it came from.
        origin: String,
        /// The parser's message, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value that parses but cannot be used.
    #[error("configuration key `{key}` {problem}")]
    Invalid {
        /// The key, for example `accounts[1].region`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Loads from `path`, else `SESGUARD_CONFIG_TOML` (the text), else the defaults; then
    /// applies the environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse(&text, &path.display().to_string())?
            }
            None => match std::env::var("SESGUARD_CONFIG_TOML") {
                Ok(text) => Self::parse(&text, "SESGUARD_CONFIG_TOML")?,
                Err(_) => Config::default(),
            },
        };
        if let Ok(table) = std::env::var("SESGUARD_SUPPRESSION_TABLE") {
            config.tables.suppressions = table;
        }
        if let Ok(table) = std::env::var("SESGUARD_STATE_TABLE") {
            config.tables.state = table;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tables.suppressions.is_empty() {
            return Err(invalid("tables.suppressions", "is empty"));
        }
        if self.tables.state.is_empty() {
            return Err(invalid("tables.state", "is empty"));
        }
        if self.ingest.soft_bounce_threshold == 0 {
            return Err(invalid(
                "ingest.soft_bounce_threshold",
                "must be at least 1",
            ));
        }
        if self.ingest.soft_bounce_window.is_zero() {
            return Err(invalid(
                "ingest.soft_bounce_window",
                "must be longer than zero",
            ));
        }
        if self.ingest.dedup_ttl < Duration::from_secs(3600) {
            return Err(invalid(
                "ingest.dedup_ttl",
                "must be at least 1h: SQS retries for days",
            ));
        }
        let (length, bucket) = (self.window.length, self.window.bucket);
        if bucket < Duration::from_secs(60) {
            return Err(invalid("window.bucket", "must be at least 1m"));
        }
        if length < bucket || length.as_millis() % bucket.as_millis() != 0 {
            return Err(invalid(
                "window.length",
                "must be a whole number of buckets",
            ));
        }
        let mut names = HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let key = |field: &str| format!("accounts[{i}].{field}");
            let name_ok = !account.name.is_empty()
                && account
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !name_ok {
                return Err(invalid(
                    key("name"),
                    format!(
                        "`{}` must be lower-case letters, digits, `-` or `_`",
                        account.name
                    ),
                ));
            }
            if !names.insert(account.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("`{}` is used by another account", account.name),
                ));
            }
            if account.account_id.len() != 12
                || !account.account_id.chars().all(|c| c.is_ascii_digit())
            {
                return Err(invalid(
                    key("account_id"),
                    format!("`{}` is not a 12-digit AWS account id", account.account_id),
                ));
            }
            let region_ok = account.region.split('-').count() >= 3
                && account
                    .region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !region_ok {
                return Err(invalid(
                    key("region"),
                    format!("`{}` is not an AWS region", account.region),
                ));
            }
        }
        Ok(())
    }

    /// The ingest policy these settings describe.
    pub fn ingest_policy(&self) -> IngestPolicy {
        IngestPolicy {
            soft_bounce: SoftBouncePolicy {
                threshold: self.ingest.soft_bounce_threshold,
                window: self.ingest.soft_bounce_window,
            },
            window: WindowConfig {
                length: self.window.length,
                bucket: self.window.bucket,
            },
            dedup_ttl: self.ingest.dedup_ttl,
        }
    }

    /// The configured accounts, for attribution.
    pub fn directory(&self) -> AccountDirectory {
        AccountDirectory::new(
            self.accounts
                .iter()
                .map(|a| KnownAccount {
                    name: a.name.clone(),
                    account_id: a.account_id.clone(),
                    region: a.region.clone(),
                    send_source: a.send_count_source,
                })
                .collect(),
        )
    }

    /// The DynamoDB table names.
    pub fn tables(&self) -> Tables {
        Tables {
            suppressions: self.tables.suppressions.clone(),
            state: self.tables.state.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> String {
        Config::parse(text, "test").unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let config = Config::parse("", "test").unwrap();
        assert_eq!(config.ingest_policy(), IngestPolicy::default());
        assert_eq!(config.tables().suppressions, "sesguard-suppressions");
        assert!(config.accounts.is_empty());
    }

    #[test]
    fn durations_are_written_as_text() {
        let config = Config::parse(
            "[window]\nlength = \"1h\"\nbucket = \"5m\"\n[ingest]\nsoft_bounce_window = \"7d\"",
            "t",
        )
        .unwrap();
        assert_eq!(config.window.length, Duration::from_secs(3600));
        assert_eq!(
            config.ingest.soft_bounce_window,
            Duration::from_secs(7 * 86400)
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        assert!(problem("[ingest]\nsoft_bounce_limit = 3").contains("soft_bounce_limit"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let account = |field: &str| {
            let mut fields = vec![
                ("name", "\"primary\""),
                ("region", "\"us-east-1\""),
                ("account_id", "\"111111111111\""),
            ];
            for f in &mut fields {
                if f.0 == field {
                    f.1 = "\"Bad Value\"";
                }
            }
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("[[accounts]]\n{}", body.join("\n"))
        };
        assert!(problem(&account("name")).contains("`accounts[0].name`"));
        assert!(problem(&account("region")).contains("`accounts[0].region`"));
        assert!(problem(&account("account_id")).contains("`accounts[0].account_id`"));
        assert!(problem("[window]\nlength = \"1h\"\nbucket = \"7m\"").contains("`window.length`"));
        assert!(
            problem("[ingest]\nsoft_bounce_threshold = 0")
                .contains("`ingest.soft_bounce_threshold`")
        );
    }

    #[test]
    fn account_names_must_be_unique() {
        let one =
            "[[accounts]]\nname = \"a\"\nregion = \"us-east-1\"\naccount_id = \"111111111111\"\n";
        assert!(problem(&format!("{one}{one}")).contains("used by another account"));
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../infra/sesguard.example.toml");
        let config = Config::parse(text, "example").unwrap();
        assert!(config.accounts.len() >= 2);
    }
}
