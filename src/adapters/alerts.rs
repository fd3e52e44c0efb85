//! Alert sinks: an SNS topic in AWS; locally a log line and, when configured, a JSON-lines
//! file that the demo and tests read.

use std::io::Write as _;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::domain::reputation::history::Alert;
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

impl LogAlerts {
    fn append(&self, line: &serde_json::Value) -> Result<(), AlertError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| AlertError {
            destination: path.display().to_string(),
            source,
        };
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

#[async_trait]
impl AlertSink for LogAlerts {
    async fn notice(&self, subject: &str, body: &serde_json::Value) -> Result<(), AlertError> {
        tracing::warn!(notice = %body, "{subject}");
        self.append(&serde_json::json!({"subject": subject, "notice": body}))
    }

    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        let change = &alert.change;
        tracing::warn!(
            account = %change.account,
            stream = change.stream.as_deref().unwrap_or(""),
            from = %change.from,
            to = %change.to,
            bounce_rate = change.bounce_rate,
            complaint_rate = change.complaint_rate,
            ses_bounce_rate = change.ses.map(|v| v.bounce_rate),
            ses_complaint_rate = change.ses.map(|v| v.complaint_rate),
            traffic = %alert.traffic,
            "{}",
            alert.subject()
        );
        let line = serde_json::to_value(alert).map_err(|e| AlertError {
            destination: "alert file".into(),
            source: Box::new(e),
        })?;
        self.append(&line)
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
        let body = serde_json::to_value(alert).map_err(|e| AlertError {
            destination: self.topic_arn.clone(),
            source: Box::new(e),
        })?;
        self.notice(&alert.subject(), &body).await
    }

    async fn notice(&self, subject: &str, body: &serde_json::Value) -> Result<(), AlertError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| AlertError {
            destination: self.topic_arn.clone(),
            source,
        };
        let message = serde_json::to_string_pretty(body).map_err(|e| failed(Box::new(e)))?;
        let subject: String = subject.chars().take(100).collect();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| failed(Box::new(e)))?;
        Ok(())
    }
}
