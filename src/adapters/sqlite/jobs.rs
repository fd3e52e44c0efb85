//! Bulk jobs' progress rows, each saved over the version it was read at.

use super::*;
use crate::ports::{JobLedger, JobProgress};

fn corrupt_job(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "job progress",
        detail: error.to_string(),
    }
}

#[async_trait]
impl JobLedger for SqliteStore {
    async fn job(&self, id: &str) -> Result<Option<JobProgress>, StoreError> {
        let id = id.to_owned();
        self.run(move |connection| {
            let row: Option<(String, i64)> = connection
                .query_row(
                    "SELECT progress, version FROM jobs WHERE id = ?1",
                    [&id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(unavailable("reading a job's progress"))?;
            row.map(|(json, version)| {
                let mut progress: JobProgress = serde_json::from_str(&json).map_err(corrupt_job)?;
                progress.version = version as u64;
                Ok(progress)
            })
            .transpose()
        })
        .await
    }

    async fn save_job(&self, progress: &JobProgress) -> Result<bool, StoreError> {
        let json = serde_json::to_string(progress).map_err(corrupt_job)?;
        let (id, version) = (progress.id.clone(), progress.version as i64);
        self.run(move |connection| {
            let written = connection
                .execute(
                    "INSERT INTO jobs (id, progress, version) VALUES (?1, ?2, 1)
                     ON CONFLICT (id) DO UPDATE SET progress = excluded.progress,
                         version = jobs.version + 1
                     WHERE jobs.version = ?3",
                    params![id, json, version],
                )
                .map_err(unavailable("saving a job's progress"))?;
            // Versions start at 1: a save at version 0 over an existing row updates nothing.
            Ok(written == 1)
        })
        .await
    }
}
