//! The two tables' definitions: `store create-tables` creates them (on-demand, TTL on
//! `expires_at`, the suppressions table's sparse index by reason) where they do not exist yet.

use super::*;

impl DynamoStore {
    /// Creates both tables (on-demand, TTL on `expires_at`) if they do not exist: for local
    /// servers and tests. In AWS the SAM template creates them.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| build_error("defining a table", e))
        };
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|e| build_error("defining a table", e))
        };
        let definitions = [
            (&self.tables.suppressions, vec![("email", KeyType::Hash)]),
            (
                &self.tables.state,
                vec![("pk", KeyType::Hash), ("sk", KeyType::Range)],
            ),
        ];
        for (table, keys) in definitions {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (name, key_type) in keys {
                request = request
                    .attribute_definitions(attribute(name)?)
                    .key_schema(key(name, key_type)?);
            }
            if table == &self.tables.suppressions {
                request = request
                    .attribute_definitions(attribute("reason")?)
                    .global_secondary_indexes(by_reason_index(key)?);
            }
            match request.send().await {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceInUseException") => continue,
                Err(e) => return Err(failure(&format!("creating table {table}"), e)),
            }
            let ttl = TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| build_error("enabling TTL", e))?;
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(ttl)
                .send()
                .await
                .map_err(|e| failure(&format!("enabling TTL on {table}"), e))?;
        }
        Ok(())
    }
}

/// The suppressions table's index by reason: only suppressed items carry `reason`, so the
/// index holds them alone (soft-bounce trackers stay out), in address order per reason.
fn by_reason_index(
    key: impl Fn(&str, KeyType) -> Result<KeySchemaElement, StoreError>,
) -> Result<aws_sdk_dynamodb::types::GlobalSecondaryIndex, StoreError> {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
    GlobalSecondaryIndex::builder()
        .index_name(BY_REASON_INDEX)
        .key_schema(key("reason", KeyType::Hash)?)
        .key_schema(key("email", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| build_error("defining the index by reason", e))
}
