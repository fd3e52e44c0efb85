//! Counter buckets and the guard state of an account, read in one query over its partition;
//! a bucket's shards (adjacent in key order) are added up as they come.

use super::*;

#[async_trait]
impl CounterWindow for DynamoStore {
    async fn window(
        &self,
        account: &str,
        first: Timestamp,
        last: Timestamp,
    ) -> Result<AccountWindow, StoreError> {
        let mut window = AccountWindow::default();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.state)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :state")
                .expression_attribute_values(":pk", s(account_key(account)))
                .expression_attribute_values(":first", s(bucket_sort_key(first)))
                .expression_attribute_values(":state", s(STATE_SORT_KEY))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| failure("reading counters", e))?;
            for item in output.items.unwrap_or_default() {
                if text(&item, "sk").as_deref() == Some(STATE_SORT_KEY) {
                    window.state = parse_account_state(account, &item)?;
                } else {
                    let bucket = parse_bucket(&item)?;
                    match window.buckets.last_mut() {
                        _ if bucket.start > last => {}
                        Some(previous) if previous.start == bucket.start => previous.absorb(bucket),
                        _ => window.buckets.push(bucket),
                    }
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(window),
            }
        }
    }

    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.state)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(UNCONFIGURED))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| failure("listing unconfigured accounts", e))?;
            names.extend(
                output
                    .items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|item| text(item, "sk")),
            );
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(names),
            }
        }
    }
}
