//! The guard's account state, written conditionally on its version, with its history.

use super::*;

#[async_trait]
impl GuardLedger for DynamoStore {
    async fn transition(
        &self,
        account: &str,
        expected_version: u64,
        next: &AccountState,
        entry: &HistoryEntry,
        history_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let action = "writing an account transition";
        let state_json = serde_json::to_string(next).map_err(|e| corrupt_state(account, e))?;
        let entry_json = serde_json::to_string(entry).map_err(|e| corrupt_state(account, e))?;
        let version = expected_version + 1;
        let condition = if expected_version == 0 {
            "attribute_not_exists(version)".to_owned()
        } else {
            "version = :expected".to_owned()
        };
        let mut state = Put::builder()
            .table_name(&self.tables.state)
            .item("pk", s(account_key(account)))
            .item("sk", s(STATE_SORT_KEY))
            .item("version", n(version))
            .item("state", s(state_json))
            .condition_expression(condition);
        if expected_version > 0 {
            state = state.expression_attribute_values(":expected", n(expected_version));
        }
        let history = Put::builder()
            .table_name(&self.tables.state)
            .item("pk", s(account_key(account)))
            .item(
                "sk",
                s(format!(
                    "history#{:015}#{version:010}",
                    entry.at.as_millis().max(0)
                )),
            )
            .item("entry", s(entry_json))
            .item(TTL_ATTRIBUTE, n(history_expires_at.as_epoch_seconds()));
        let items = vec![
            TransactWriteItem::builder()
                .put(state.build().map_err(|e| build_error(action, e))?)
                .build(),
            TransactWriteItem::builder()
                .put(history.build().map_err(|e| build_error(action, e))?)
                .build(),
        ];
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                    error.as_service_error()
                    && cancel
                        .cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed")
                {
                    return Ok(false);
                }
                Err(failure(action, error))
            }
        }
    }

    async fn states(
        &self,
        accounts: &[String],
    ) -> Result<HashMap<String, AccountState>, StoreError> {
        let keys = accounts
            .iter()
            .map(|a| state_key(account_key(a), STATE_SORT_KEY))
            .collect();
        let items = self
            .batch_get(
                &self.tables.state,
                keys,
                consistent,
                "reading account states",
            )
            .await?;
        by_account(accounts, &items, STATE_SORT_KEY, parse_account_state)
    }

    async fn history(&self, account: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.state)
            .key_condition_expression("pk = :pk AND begins_with(sk, :history)")
            .expression_attribute_values(":pk", s(account_key(account)))
            .expression_attribute_values(":history", s("history#"))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| failure("reading history", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let json = text(item, "entry")
                    .ok_or_else(|| corrupt_state(account, "history entry without `entry`"))?;
                serde_json::from_str(&json).map_err(|e| corrupt_state(account, e))
            })
            .collect()
    }
}
