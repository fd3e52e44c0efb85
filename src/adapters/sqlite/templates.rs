//! The template policy row.

use super::*;

pub(super) fn corrupt_policy(error: &serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "template policy",
        detail: error.to_string(),
    }
}

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn template_policy(&self) -> Result<TemplatePolicy, StoreError> {
        self.run(|connection| read_policy(connection)).await
    }

    async fn put_template_policy(&self, policy: &TemplatePolicy) -> Result<(), StoreError> {
        let json = serde_json::to_string(policy).map_err(|e| corrupt_policy(&e))?;
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO policies (name, policy) VALUES ('templates', ?1)
                     ON CONFLICT (name) DO UPDATE SET policy = excluded.policy",
                    [json],
                )
                .map_err(unavailable("writing the template policy"))?;
            Ok(())
        })
        .await
    }
}

/// The template policy (empty when never written).
pub(super) fn read_policy(connection: &Connection) -> Result<TemplatePolicy, StoreError> {
    let json: Option<String> = connection
        .query_row(
            "SELECT policy FROM policies WHERE name = 'templates'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable("reading the template policy"))?;
    json.map_or(Ok(TemplatePolicy::default()), |json| {
        serde_json::from_str(&json).map_err(|e| corrupt_policy(&e))
    })
}
