//! SES suppression-list imports and pushes as resumable jobs: each call takes one bounded
//! step — one SES page imported, or at most [`PUSH_STEP`] addresses pushed from at most ten
//! pages of the list — and saves where
//! it stopped in the store, so that a list of a million addresses goes across as many calls
//! as it needs, each well inside a Lambda's time, and a call from anywhere resumes it.

use super::*;
use crate::ports::JobProgress;

/// Addresses one push step hands to SES at most (one `PutSuppressedDestination` each).
pub const PUSH_STEP: u64 = 200;
/// Pages of the list one push step reads at most: a scan page may hold few suppressed
/// addresses among soft-bounce trackers, and a step must stay bounded whatever the table holds.
const LIST_CALLS_PER_STEP: usize = 10;
/// An unfinished run not moved on for this long is started again from the top: its cursor (an
/// SES page token, or a place in a list that has changed since) is not worth trusting.
const STALE_RUN: Duration = Duration::from_secs(24 * 3600);

/// Where a job stands after a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatus {
    /// The job: `push:ACCOUNT[:REASON]` or `import:ACCOUNT`.
    pub job: String,
    /// Whether this step reached the end; the next call starts the job again from the top.
    pub finished: bool,
    /// Addresses handled by the run so far, this step's included.
    pub total: u64,
    /// Steps the run took so far.
    pub steps: u64,
    /// When the run started.
    pub started_at: Timestamp,
}

/// One push step: what it pushed and where the job stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushStep {
    /// Addresses this step pushed.
    pub pushed: u64,
    /// The job after it.
    #[serde(flatten)]
    pub status: JobStatus,
}

/// One import step: what it imported and where the job stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportStep {
    /// What this step imported.
    #[serde(flatten)]
    pub report: ImportReport,
    /// The job after it.
    #[serde(flatten)]
    pub status: JobStatus,
}

impl Admin<'_> {
    /// The job's progress to go on from: where the last step stopped, or a new run from the
    /// top when it never ran, its last run finished, or that run stood still for a day.
    async fn job_to_go_on(&self, id: String, now: Timestamp) -> Result<JobProgress, AdminError> {
        Ok(match self.deps.store.job(&id).await? {
            Some(progress) if !progress.finished && now.since(progress.updated_at) < STALE_RUN => {
                progress
            }
            earlier => JobProgress {
                id,
                started_at: now,
                updated_at: now,
                version: earlier.map_or(0, |p| p.version),
                ..JobProgress::default()
            },
        })
    }

    /// Saves a step: `next` is where the next one starts (`None`: the end).
    async fn step_done(
        &self,
        mut progress: JobProgress,
        handled: u64,
        next: Option<String>,
        now: Timestamp,
    ) -> Result<JobStatus, AdminError> {
        progress.finished = next.is_none();
        progress.cursor = next;
        progress.handled += handled;
        progress.steps += 1;
        progress.updated_at = now;
        if !self.deps.store.save_job(&progress).await? {
            return Err(AdminError::Conflict(format!(
                "job {} was moved on by another call while this step ran (its work is done and \
                 harmless to repeat): call again to go on from where it stands",
                progress.id
            )));
        }
        Ok(JobStatus {
            job: progress.id,
            finished: progress.finished,
            total: progress.handled,
            steps: progress.steps,
            started_at: progress.started_at,
        })
    }

    /// One step of importing an account's SES account-level suppression list: one page of
    /// `ListSuppressedDestinations`, resumed from the page token the last step saved.
    pub async fn import_from_ses(
        &self,
        account: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<ImportStep, AdminError> {
        require_reason(reason)?;
        self.known_account(account)?;
        let progress = self.job_to_go_on(format!("import:{account}"), now).await?;
        let (page, next) = self
            .deps
            .ses
            .list_suppressed(account, progress.cursor.clone())
            .await?;
        let mut importer = self.importer(LineFormat::Jsonl, reason, now)?;
        for (email, reason) in page {
            importer.entry(ManualSuppression { email, reason }).await?;
        }
        let report = importer.finish(&format!("ses:{account}"), reason).await?;
        let status = self.step_done(progress, report.read, next, now).await?;
        Ok(ImportStep { report, status })
    }

    /// One step of pushing sesguard's suppressions (optionally of one reason) to an account's
    /// SES account-level list, so that mail sent around sesguard is stopped too: at most
    /// [`PUSH_STEP`] addresses, from where the last step stopped.
    pub async fn push_to_ses(
        &self,
        account: &str,
        only: Option<&str>,
        reason: &str,
        now: Timestamp,
    ) -> Result<PushStep, AdminError> {
        require_reason(reason)?;
        self.known_account(account)?;
        let id = match only {
            Some(only) => format!("push:{account}:{only}"),
            None => format!("push:{account}"),
        };
        let progress = self.job_to_go_on(id, now).await?;
        let mut cursor = progress.cursor.clone();
        let mut pushed = 0;
        for _ in 0..LIST_CALLS_PER_STEP {
            let room = (PUSH_STEP - pushed) as usize;
            let page = self.suppressions(only, cursor.as_deref(), room).await?;
            for suppression in &page.items {
                self.deps
                    .ses
                    .put_suppressed(account, &suppression.email, suppression.reason)
                    .await?;
            }
            pushed += page.items.len() as u64;
            cursor = page.next;
            if cursor.is_none() || pushed >= PUSH_STEP {
                break;
            }
        }
        let status = self.step_done(progress, pushed, cursor, now).await?;
        if status.finished {
            let detail =
                serde_json::json!({"pushed": status.total, "steps": status.steps, "reason": only});
            self.audit(
                "suppression.push",
                &format!("ses:{account}"),
                reason,
                detail,
                now,
            )
            .await?;
        }
        Ok(PushStep { pushed, status })
    }
}
