//! The send-rate limiter's item per account: an optimistic read-modify-write of its token
//! bucket and window counts.

use super::*;

impl DynamoStore {
    pub(super) async fn read_rate(
        &self,
        account: &str,
        action: &str,
    ) -> Result<RateRecord, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(account_key(account), RATE_SORT_KEY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(action, e))?;
        output
            .item
            .as_ref()
            .map_or(Ok(RateRecord::default()), parse_rate)
    }

    /// Writes `state` over the rate record read at `version`, unless another writer wrote it
    /// since: `Ok(false)` then. The operators' patch is left as it is.
    pub(super) async fn write_rate_state(
        &self,
        account: &str,
        version: u64,
        state: &RateState,
        action: &str,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(state).map_err(corrupt_rate)?;
        let update = self
            .client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(account_key(account), RATE_SORT_KEY)))
            .update_expression("SET #state = :state, version = :next")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(json))
            .expression_attribute_values(":next", n(version + 1));
        let update = if version == 0 {
            update.condition_expression("attribute_not_exists(version)")
        } else {
            update
                .condition_expression("version = :version")
                .expression_attribute_values(":version", n(version))
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(failure(action, error)),
        }
    }

    /// Reads (or starts from `read`), changes and conditionally writes an account's rate
    /// state, retrying with backoff while other instances write in between.
    pub(super) async fn update_rate<T>(
        &self,
        account: &str,
        read: Option<&RateRecord>,
        action: &str,
        change: impl Fn(&RateRecord) -> (RateState, T),
    ) -> Result<T, StoreError> {
        let mut record = match read {
            Some(record) => record.clone(),
            None => self.read_rate(account, action).await?,
        };
        for attempt in 0..8_u32 {
            let (state, answer) = change(&record);
            if self
                .write_rate_state(account, record.version, &state, action)
                .await?
            {
                return Ok(answer);
            }
            tokio::time::sleep(Duration::from_millis(5 << attempt.min(5))).await;
            record = self.read_rate(account, action).await?;
        }
        Err(StoreError::Unavailable {
            action: action.into(),
            source: "the rate state kept changing under concurrent senders".into(),
        })
    }
}

#[async_trait]
impl RateLedger for DynamoStore {
    async fn rate(&self, account: &str) -> Result<RateRecord, StoreError> {
        self.read_rate(account, "reading send-rate state").await
    }

    async fn take(
        &self,
        account: &str,
        configured: &RateLimits,
        wanted: u64,
        now: Timestamp,
        read: Option<&RateRecord>,
    ) -> Result<Grant, StoreError> {
        self.update_rate(account, read, "taking send-rate tokens", |record| {
            let grant = record
                .limits(configured)
                .take(record.state.as_ref(), wanted, now);
            (grant.state, grant)
        })
        .await
    }

    async fn set_limits(&self, account: &str, patch: &LimitsPatch) -> Result<(), StoreError> {
        let json = serde_json::to_string(patch).map_err(corrupt_rate)?;
        // Bumping the version makes a take that read the old limits read again.
        self.client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(account_key(account), RATE_SORT_KEY)))
            .update_expression("SET patch = :patch ADD version :one")
            .expression_attribute_values(":patch", s(json))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| failure("writing send-rate limits", e))?;
        Ok(())
    }

    async fn refill(
        &self,
        account: &str,
        configured: &RateLimits,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_rate(account, None, "refilling the send-rate bucket", |record| {
            let limits = record.limits(configured);
            (limits.refilled(record.state, now), ())
        })
        .await
    }
}
