//! The template policy item.

use super::*;

#[async_trait]
impl PolicyStore for DynamoStore {
    async fn template_policy(&self) -> Result<TemplatePolicy, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(POLICY_KEY, POLICY_SORT_KEY)))
            .send()
            .await
            .map_err(|e| failure("reading the template policy", e))?;
        parse_policy(output.item.as_ref())
    }

    async fn put_template_policy(&self, policy: &TemplatePolicy) -> Result<(), StoreError> {
        let json = serde_json::to_string(policy).map_err(corrupt_policy)?;
        self.client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(POLICY_KEY))
            .item("sk", s(POLICY_SORT_KEY))
            .item("policy", s(json))
            .send()
            .await
            .map_err(|e| failure("writing the template policy", e))?;
        Ok(())
    }
}
