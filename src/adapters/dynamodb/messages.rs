//! Keys claimed once and remembered: the sender's content claims (claimed by a request,
//! released) and the webhook's SNS replay checks (seen, remembered).

use super::*;

#[async_trait]
impl MessageLedger for DynamoStore {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(format!("claim#{key}")))
            .item("sk", s("claim"))
            .item(TTL_ATTRIBUTE, n(expires_at.as_epoch_seconds()))
            .item("owner", s(owner))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now OR #owner = :owner")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now.as_epoch_seconds()))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(failure("claiming a message", error)),
        }
    }

    async fn release(&self, keys: &[String]) -> Result<(), StoreError> {
        let claims = keys
            .iter()
            .map(|key| state_key(format!("claim#{key}"), "claim"));
        self.delete_all(claims, "releasing message claims").await
    }

    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .key("pk", s(format!("claim#{key}")))
            .key("sk", s("claim"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("reading a message claim", e))?;
        let Some(item) = output.item else {
            return Ok(false);
        };
        let expires: Option<i64> = number(&item, TTL_ATTRIBUTE, "message claim")?;
        Ok(expires.is_none_or(|at| at > now.as_epoch_seconds()))
    }

    async fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(format!("claim#{key}")))
            .item("sk", s("claim"))
            .item(TTL_ATTRIBUTE, n(expires_at.as_epoch_seconds()))
            .send()
            .await
            .map_err(|e| failure("writing a message claim", e))?;
        Ok(())
    }
}
