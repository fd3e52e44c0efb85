//! Alert sinks: an SNS topic in AWS; locally a log line and, when configured, a JSON-lines
//! file that the demo and tests read.

use std::io::Write as _;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::domain::guard::Alert;
use crate::ports::{AlertError, AlertSink};

/// Logs every alert at `warn` and appends it to a file when one is set.
#[derive(Debug, Clone, Default)]
pub struct LogAlerts {
    file: Option<PathBuf>,
}

impl LogAlerts {
    /// Alerts to the log and, if given, appended to `file`.
    pub fn new(file: Option<PathBuf>) -> Self {
        Self { file }
    }
}

#[async_trait]
impl AlertSink for LogAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        let change = &alert.change;
        tracing::warn!(
            account = %change.account,
            stream = change.stream.as_deref().unwrap_or(""),
            from = %change.from,
            to = %change.to,
            bounce_rate = change.bounce_rate,
            complaint_rate = change.complaint_rate,
            traffic = %alert.traffic,
            "{}",
            alert.subject()
        );
        let Some(path) = &self.file else {
            return Ok(());
        };
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| AlertError {
            destination: path.display().to_string(),
            source,
        };
        let line = serde_json::to_string(alert).map_err(|e| failed(Box::new(e)))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| failed(Box::new(e)))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| failed(Box::new(e)))?;
        writeln!(file, "{line}").map_err(|e| failed(Box::new(e)))
    }
}

/// Publishes every alert to an SNS topic: the subject line, and the alert as JSON.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsAlerts {
    /// Alerts to `topic_arn` through `client` (built once at init).
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

#[async_trait]
impl AlertSink for SnsAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| AlertError {
            destination: self.topic_arn.clone(),
            source,
        };
        let message = serde_json::to_string_pretty(alert).map_err(|e| failed(Box::new(e)))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(alert.subject())
            .message(message)
            .send()
            .await
            .map_err(|e| failed(Box::new(e)))?;
        Ok(())
    }
}
