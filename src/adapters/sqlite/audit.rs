//! The operators' audit log.

use super::*;

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, entry: &AuditEntry, expires_at: Timestamp) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt {
            what: "audit entry",
            detail: e.to_string(),
        })?;
        let at = entry.at;
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO audit (at, entry, expires_at) VALUES (?1, ?2, ?3)",
                    params![at.as_millis(), json, expires_at.as_millis()],
                )
                .map(|_| ())
                .map_err(unavailable("writing the audit log"))
        })
        .await
    }

    async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let action = "reading the audit log";
            let mut statement = connection
                .prepare_cached("SELECT entry FROM audit ORDER BY at DESC, seq DESC LIMIT ?1")
                .map_err(unavailable(action))?;
            let rows = statement
                .query_map([limit], |row| row.get::<_, String>(0))
                .map_err(unavailable(action))?;
            let mut entries = Vec::new();
            for json in rows {
                let json = json.map_err(unavailable(action))?;
                entries.push(
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        what: "audit entry",
                        detail: e.to_string(),
                    })?,
                );
            }
            Ok(entries)
        })
        .await
    }
}
