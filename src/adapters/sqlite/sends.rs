//! Send records (exactly-once sending): claimed, marked sent, settled, given up.

use super::*;

fn state_name(state: SendState) -> &'static str {
    match state {
        SendState::Sending => "sending",
        SendState::Sent => "sent",
    }
}

type Row = (String, String, String, i64, i64, i64);

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn record(
    (key, owner, state, claimed_at, expires_at, sent_until): Row,
) -> Result<SendRecord, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "send record",
        detail,
    };
    Ok(SendRecord {
        key: SendKey::from_tag(&key).ok_or_else(|| corrupt(format!("key `{key}`")))?,
        owner,
        state: match state.as_str() {
            "sending" => SendState::Sending,
            "sent" => SendState::Sent,
            other => return Err(corrupt(format!("state `{other}`"))),
        },
        claimed_at: Timestamp::from_millis(claimed_at),
        expires_at: Timestamp::from_millis(expires_at),
        sent_until: Timestamp::from_millis(sent_until),
    })
}

fn put(connection: &Connection, record: &SendRecord) -> rusqlite::Result<usize> {
    connection.execute(
        "INSERT OR REPLACE INTO sends (key, owner, state, claimed_at, expires_at, sent_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            record.key.as_str(),
            record.owner,
            state_name(record.state),
            record.claimed_at.as_millis(),
            record.expires_at.as_millis(),
            record.sent_until.as_millis()
        ],
    )
}

#[async_trait]
impl SendLedger for SqliteStore {
    async fn claim_send(
        &self,
        record: &SendRecord,
        now: Timestamp,
    ) -> Result<SendClaim, StoreError> {
        let record = record.clone();
        self.run(move |connection| {
            let action = "claiming a send";
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable(action))?;
            let held = tx
                .query_row(
                    "SELECT key, owner, state, claimed_at, expires_at, sent_until FROM sends WHERE key = ?1 AND expires_at > ?2",
                    params![record.key.as_str(), now.as_millis()],
                    record_from_row,
                )
                .optional()
                .map_err(unavailable(action))?;
            if let Some(row) = held {
                return Ok(SendClaim::Held(self::record(row)?));
            }
            put(&tx, &record).map_err(unavailable(action))?;
            tx.commit().map_err(unavailable(action))?;
            Ok(SendClaim::Claimed)
        })
        .await
    }

    async fn mark_sent(&self, records: &[SendRecord]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.run(move |connection| {
            let action = "marking sends sent";
            let tx = connection.transaction().map_err(unavailable(action))?;
            for record in &records {
                put(&tx, &record.sent()).map_err(unavailable(action))?;
            }
            tx.commit().map_err(unavailable(action))
        })
        .await
    }

    async fn settle(&self, keys: &[SendKey], now: Timestamp) -> Result<usize, StoreError> {
        let keys = keys.to_vec();
        self.run(move |connection| {
            let action = "settling sends";
            let tx = connection.transaction().map_err(unavailable(action))?;
            let mut settled = 0;
            for key in &keys {
                settled += tx
                    .execute(
                        "UPDATE sends SET state = 'sent', expires_at = sent_until WHERE key = ?1 AND state = 'sending' AND expires_at > ?2",
                        params![key.as_str(), now.as_millis()],
                    )
                    .map_err(unavailable(action))?;
            }
            tx.commit().map_err(unavailable(action))?;
            Ok(settled)
        })
        .await
    }

    async fn give_up(&self, keys: &[SendKey]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.run(move |connection| {
            let action = "giving up sends";
            let tx = connection.transaction().map_err(unavailable(action))?;
            for key in &keys {
                tx.execute("DELETE FROM sends WHERE key = ?1", [key.as_str()])
                    .map_err(unavailable(action))?;
            }
            tx.commit().map_err(unavailable(action))
        })
        .await
    }
}
