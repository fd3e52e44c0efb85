//! The operators' audit log.

use super::*;

pub(super) const AUDIT_KEY: &str = "audit";

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, entry: &AuditEntry, expires_at: Timestamp) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt {
            what: "audit entry",
            detail: e.to_string(),
        })?;
        // Millisecond sort keys; the entry's own hash keeps two entries of one millisecond apart.
        let digest = sha2::Sha256::digest(json.as_bytes());
        let suffix: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        self.client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(AUDIT_KEY))
            .item(
                "sk",
                s(format!("{:015}#{suffix}", entry.at.as_millis().max(0))),
            )
            .item("entry", s(json))
            .item(TTL_ATTRIBUTE, n(expires_at.as_epoch_seconds()))
            .send()
            .await
            .map_err(|e| failure("writing the audit log", e))?;
        Ok(())
    }

    async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.state)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(AUDIT_KEY))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| failure("reading the audit log", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let json = text(item, "entry").unwrap_or_default();
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    what: "audit entry",
                    detail: e.to_string(),
                })
            })
            .collect()
    }
}
