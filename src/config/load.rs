//! Loading: the file (or `SESGUARD_CONFIG_TOML`), the environment overrides, and the compact
//! text a deployment carries.

use super::*;

impl Config {
    /// Loads from `path`, else `SESGUARD_CONFIG_TOML` (the text), else the defaults; then
    /// applies the environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, |key| std::env::var(key).ok())
    }

    /// As [`Config::load`], reading the environment through `var` (the composition root
    /// passes the variables it captured; tests pass their own).
    pub fn load_with(
        path: Option<&Path>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::parse(&Self::read(path)?, &path.display().to_string())?,
            None => match var("SESGUARD_CONFIG_TOML") {
                Some(text) => Self::parse(&text, "SESGUARD_CONFIG_TOML")?,
                None => Config::default(),
            },
        };
        if let Some(table) = var("SESGUARD_SUPPRESSION_TABLE") {
            config.tables.suppressions = table;
        }
        if let Some(table) = var("SESGUARD_STATE_TABLE") {
            config.tables.state = table;
        }
        if let Some(topic) = var("SESGUARD_ALERT_TOPIC_ARN") {
            config.alerts.topic_arn = Some(topic);
        }
        for name in ["SESGUARD_WEBHOOK_TOPICS", "SESGUARD_FEEDBACK_TOPICS"] {
            let Some(topics) = var(name) else { continue };
            for topic in topics.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !config.webhook.topics.iter().any(|known| known == topic) {
                    config.webhook.topics.push(topic.to_owned());
                }
            }
        }
        config.webhook.origin = SnsOrigin::from_endpoint(var("AWS_ENDPOINT_URL").as_deref());
        if let Some(dns) = var("SESGUARD_DNS") {
            config.prevention.dns = dns.parse().map_err(|problem| ConfigError::Invalid {
                key: "SESGUARD_DNS".into(),
                problem,
            })?;
        }
        config.sender.queue_from_environment(&var)?;
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

    /// The text of the configuration file at `path`.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })
    }

    /// The configuration `text` holds, and that text as a deployment carries it in
    /// `SESGUARD_CONFIG_TOML`: validated, then written again without its comments and layout.
    /// Refused when it is longer than [`DEPLOYED_TEXT_LIMIT`].
    pub fn for_deployment(text: &str, origin: &str) -> Result<(Self, String), ConfigError> {
        let config = Self::parse(text, origin)?;
        let table: toml::Table = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        let compact = table.to_string();
        if compact.len() > DEPLOYED_TEXT_LIMIT {
            return Err(ConfigError::TooLarge {
                origin: origin.to_owned(),
                bytes: compact.len(),
                limit: DEPLOYED_TEXT_LIMIT,
            });
        }
        Ok((config, compact))
    }
}
