//! The guard's account state, written conditionally on its version, with its history.

use super::*;

pub(super) fn corrupt_state(account: &str, error: &serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "account state",
        detail: format!("{account}: {error}"),
    }
}

pub(super) fn read_state(
    connection: &Connection,
    account: &str,
) -> Result<AccountState, StoreError> {
    let row: Option<(i64, String)> = connection
        .query_row(
            "SELECT version, state FROM account_states WHERE account = ?1",
            [account],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(unavailable("reading an account state"))?;
    match row {
        None => Ok(AccountState::default()),
        Some((version, json)) => {
            let mut state: AccountState =
                serde_json::from_str(&json).map_err(|e| corrupt_state(account, &e))?;
            state.version = version_of(Some(version));
            Ok(state)
        }
    }
}

#[async_trait]
impl GuardLedger for SqliteStore {
    async fn transition(
        &self,
        account: &str,
        expected_version: u64,
        next: &AccountState,
        entry: &HistoryEntry,
        history_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (account, state_json, entry_json) = (
            account.to_owned(),
            serde_json::to_string(next).map_err(|e| corrupt_state(account, &e))?,
            serde_json::to_string(entry).map_err(|e| corrupt_state(account, &e))?,
        );
        let at = entry.at.as_millis();
        self.run(move |connection| {
            let action = "writing an account transition";
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable(action))?;
            let version: Option<i64> = tx
                .query_row("SELECT version FROM account_states WHERE account = ?1", [&account], |row| row.get(0))
                .optional()
                .map_err(unavailable(action))?;
            if version_of(version) != expected_version {
                return Ok(false);
            }
            let new_version = i64::try_from(expected_version + 1).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO account_states (account, version, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account) DO UPDATE SET version = excluded.version, state = excluded.state",
                params![account, new_version, state_json],
            )
            .map_err(unavailable(action))?;
            tx.execute(
                "INSERT INTO history (account, at, version, entry, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![account, at, new_version, entry_json, history_expires_at.as_millis()],
            )
            .map_err(unavailable(action))?;
            tx.commit().map_err(unavailable(action))?;
            Ok(true)
        })
        .await
    }

    async fn states(
        &self,
        accounts: &[String],
    ) -> Result<HashMap<String, AccountState>, StoreError> {
        let accounts = accounts.to_vec();
        self.run(move |connection| {
            accounts
                .into_iter()
                .map(|account| read_state(connection, &account).map(|state| (account, state)))
                .collect()
        })
        .await
    }

    async fn history(&self, account: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let account = account.to_owned();
        self.run(move |connection| {
            let action = "reading history";
            let mut statement = connection
                .prepare_cached(
                    "SELECT entry FROM history WHERE account = ?1 ORDER BY at DESC, version DESC LIMIT ?2",
                )
                .map_err(unavailable(action))?;
            let rows = statement
                .query_map(params![account, i64::try_from(limit).unwrap_or(i64::MAX)], |row| row.get::<_, String>(0))
                .map_err(unavailable(action))?;
            let mut entries = Vec::new();
            for row in rows {
                let json = row.map_err(unavailable(action))?;
                entries.push(serde_json::from_str(&json).map_err(|e| corrupt_state(&account, &e))?);
            }
            Ok(entries)
        })
        .await
    }
}
