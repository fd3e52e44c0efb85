//! Bulk jobs' progress items (`job#ID` / `job`), each saved over the version it was read at.

use super::*;
use crate::ports::{JobLedger, JobProgress};

const JOB_SORT_KEY: &str = "job";

fn corrupt_job(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "job progress",
        detail: detail.to_string(),
    }
}

#[async_trait]
impl JobLedger for DynamoStore {
    async fn job(&self, id: &str) -> Result<Option<JobProgress>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(format!("job#{id}"), JOB_SORT_KEY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("reading a job's progress", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let json = text(&item, "progress").ok_or_else(|| corrupt_job("no `progress`"))?;
        let mut progress: JobProgress = serde_json::from_str(&json).map_err(corrupt_job)?;
        progress.version = number(&item, "version", "job progress")?.unwrap_or(0);
        Ok(Some(progress))
    }

    async fn save_job(&self, progress: &JobProgress) -> Result<bool, StoreError> {
        let json = serde_json::to_string(progress).map_err(corrupt_job)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(format!("job#{}", progress.id)))
            .item("sk", s(JOB_SORT_KEY))
            .item("progress", s(json))
            .item("version", n(progress.version + 1));
        let request = if progress.version == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request
                .condition_expression("version = :version")
                .expression_attribute_values(":version", n(progress.version))
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(failure("saving a job's progress", error)),
        }
    }
}
