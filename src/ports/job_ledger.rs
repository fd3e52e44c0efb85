//! Progress of bulk jobs (SES suppression-list imports and pushes), kept in the store so
//! that each call does a bounded step and the next call, from any instance, resumes.

use super::*;

/// Where a bulk job stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct JobProgress {
    /// The job: `push:ACCOUNT[:REASON]` or `import:ACCOUNT`.
    pub id: String,
    /// Where the next step starts (a listing cursor or an SES page token); `None` at the start.
    pub cursor: Option<String>,
    /// Addresses handled so far in this run.
    pub handled: u64,
    /// Steps taken so far in this run.
    pub steps: u64,
    /// Whether the run reached the end; the next call starts a new run.
    pub finished: bool,
    /// When this run started.
    pub started_at: Timestamp,
    /// When its last step ended.
    pub updated_at: Timestamp,
    /// Store version (0: never written); a step is saved only over the version it read.
    #[serde(skip)]
    pub version: u64,
}

/// Keeps bulk jobs' progress.
#[async_trait]
pub trait JobLedger: Send + Sync {
    /// The job's progress, or `None` when it never ran.
    async fn job(&self, id: &str) -> Result<Option<JobProgress>, StoreError>;

    /// Saves `progress` over the version it was read at (`progress.version`, 0 for a new
    /// job): `false`, and nothing written, when another call saved a step in between.
    async fn save_job(&self, progress: &JobProgress) -> Result<bool, StoreError>;
}
