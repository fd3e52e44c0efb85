//! The local mail transport: each message written as one JSON file into a directory, for
//! local runs, tests and the demo. Nothing leaves the machine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::json;

use crate::domain::sending::request::{MailContent, OutgoingMail};
use crate::domain::sending::ses_failure::SendFailure;
use crate::ports::{MailTransport, TransportError};

/// Writes messages to `DIR/<millis>-<n>.json`.
#[derive(Debug)]
pub struct FileOutbox {
    dir: PathBuf,
    next: AtomicU64,
}

impl FileOutbox {
    /// An outbox in `dir` (created on first send).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            next: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl MailTransport for FileOutbox {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError> {
        let failed = |detail: String| TransportError {
            account: mail.account.clone(),
            failure: SendFailure::Transient,
            detail,
            ambiguous: false,
        };
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let id = format!(
            "outbox-{millis}-{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let content = match &mail.content {
            MailContent::Template { name, data } => json!({"template": name, "data": data}),
            MailContent::Inline {
                subject,
                html,
                text,
            } => json!({"subject": subject, "html": html, "text": text}),
        };
        let mut document = serde_json::to_value(mail).map_err(|e| failed(e.to_string()))?;
        document["content"] = content;
        document["message_id"] = json!(id);
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| failed(format!("{}: {e}", self.dir.display())))?;
        let path = self.dir.join(format!("{id}.json"));
        tokio::fs::write(&path, document.to_string())
            .await
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        Ok(id)
    }
}
