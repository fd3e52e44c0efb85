//! The send-rate limiter's row per account: token bucket and window counts, updated in one
//! transaction.

use super::*;

pub(super) fn corrupt_rate(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "rate state",
        detail: e.to_string(),
    }
}

/// The account's rate record, read inside the caller's transaction.
pub(super) fn read_rate(connection: &Connection, account: &str) -> Result<RateRecord, StoreError> {
    let action = "reading send-rate state";
    let state: Option<String> = connection
        .query_row(
            "SELECT state FROM rate_states WHERE account = ?1",
            [account],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable(action))?;
    let patch: Option<String> = connection
        .query_row(
            "SELECT patch FROM rate_limits WHERE account = ?1",
            [account],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable(action))?;
    Ok(RateRecord {
        version: 0,
        state: state
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(corrupt_rate)?,
        patch: patch
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(corrupt_rate)?
            .unwrap_or_default(),
        paced: Default::default(),
    })
}

pub(super) fn write_rate_state(
    connection: &Connection,
    account: &str,
    state: &RateState,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(state).map_err(corrupt_rate)?;
    connection
        .execute(
            "INSERT INTO rate_states (account, state) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET state = excluded.state",
            params![account, json],
        )
        .map_err(unavailable("writing send-rate state"))?;
    Ok(())
}

#[async_trait]
impl RateLedger for SqliteStore {
    async fn rate(&self, account: &str) -> Result<RateRecord, StoreError> {
        let account = account.to_owned();
        self.run(move |connection| read_rate(connection, &account))
            .await
    }

    /// One IMMEDIATE transaction: `read` is not needed, the record is read under the lock.
    async fn take(
        &self,
        account: &str,
        configured: &RateLimits,
        wanted: u64,
        now: Timestamp,
        _read: Option<&RateRecord>,
    ) -> Result<Grant, StoreError> {
        let (account, configured) = (account.to_owned(), *configured);
        self.run(move |connection| {
            let action = "taking send-rate tokens";
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable(action))?;
            let record = read_rate(&tx, &account)?;
            let grant = record
                .limits(&configured)
                .take(record.state.as_ref(), wanted, now);
            write_rate_state(&tx, &account, &grant.state)?;
            tx.commit().map_err(unavailable(action))?;
            Ok(grant)
        })
        .await
    }

    async fn set_limits(&self, account: &str, patch: &LimitsPatch) -> Result<(), StoreError> {
        let account = account.to_owned();
        let json = serde_json::to_string(patch).map_err(corrupt_rate)?;
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO rate_limits (account, patch) VALUES (?1, ?2)
                     ON CONFLICT (account) DO UPDATE SET patch = excluded.patch",
                    params![account, json],
                )
                .map(|_| ())
                .map_err(unavailable("writing send-rate limits"))
        })
        .await
    }

    async fn refill(
        &self,
        account: &str,
        configured: &RateLimits,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (account, configured) = (account.to_owned(), *configured);
        self.run(move |connection| {
            let action = "refilling the send-rate bucket";
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable(action))?;
            let record = read_rate(&tx, &account)?;
            let state = record.limits(&configured).refilled(record.state, now);
            write_rate_state(&tx, &account, &state)?;
            tx.commit().map_err(unavailable(action))
        })
        .await
    }
}
