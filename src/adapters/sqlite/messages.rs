//! Keys claimed once and remembered: the sender's content claims (claimed by a request,
//! released) and the webhook's SNS replay checks (seen, remembered).

use super::*;

#[async_trait]
impl MessageLedger for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO content_claims (key, owner, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
                     WHERE content_claims.expires_at <= ?4 OR content_claims.owner = excluded.owner",
                    params![key, owner, expires_at.as_millis(), now.as_millis()],
                )
                .map(|changed| changed == 1)
                .map_err(unavailable("claiming a message"))
        })
        .await
    }

    async fn release(&self, keys: &[String]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.run(move |connection| {
            let action = "releasing message claims";
            let tx = connection.transaction().map_err(unavailable(action))?;
            for key in keys {
                tx.execute("DELETE FROM content_claims WHERE key = ?1", [key])
                    .map_err(unavailable(action))?;
            }
            tx.commit().map_err(unavailable(action))
        })
        .await
    }

    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT 1 FROM claims WHERE key = ?1 AND expires_at > ?2",
                    params![key, now.as_millis()],
                    |_| Ok(()),
                )
                .optional()
                .map(|row| row.is_some())
                .map_err(unavailable("reading a message claim"))
        })
        .await
    }

    async fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT OR REPLACE INTO claims (key, expires_at) VALUES (?1, ?2)",
                    params![key, expires_at.as_millis()],
                )
                .map(|_| ())
                .map_err(unavailable("writing a message claim"))
        })
        .await
    }
}
