//! A batch's [`ChangeSet`] applied in one SQLite transaction: claims, address updates and
//! counter increments, all or nothing.

use super::*;
use crate::domain::feedback::suppression::{FeedbackRecord, SuppressionUpdate};
use crate::domain::reputation::counters::CounterDelta;

pub(super) fn encode_times(times: &[Timestamp]) -> String {
    times
        .iter()
        .map(|t| t.as_millis().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn decode_times(text: &str) -> Result<Vec<Timestamp>, StoreError> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<i64>()
                .map(Timestamp::from_millis)
                .map_err(|_| StoreError::Corrupt {
                    what: "soft-bounce list",
                    detail: format!("`{text}`"),
                })
        })
        .collect()
}

pub(super) fn version_of(row: Option<i64>) -> u64 {
    row.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// Applies `change` in `tx`, all or nothing: its conditions checked, then its claims, address
/// updates, counter increments and newly seen accounts written.
pub(super) fn apply_in(
    tx: &rusqlite::Transaction<'_>,
    change: &ChangeSet,
) -> Result<(), ApplyError> {
    check_conditions(tx, change)?;
    for claim in &change.claims {
        run(
            tx,
            "INSERT OR REPLACE INTO claims (key, expires_at) VALUES (?1, ?2)",
            params![claim.key, claim.expires_at.as_millis()],
        )
        .map_err(failed)?;
    }
    for update in &change.suppressions {
        write_address(tx, update).map_err(failed)?;
    }
    for delta in &change.counters {
        add_counts(tx, delta).map_err(failed)?;
        add_provider_counts(tx, delta).map_err(failed)?;
    }
    for name in &change.new_accounts {
        run(
            tx,
            "INSERT OR IGNORE INTO unconfigured_accounts (name) VALUES (?1)",
            [name],
        )
        .map_err(failed)?;
    }
    Ok(())
}

/// A statement that failed while a change was applied.
fn failed(e: rusqlite::Error) -> ApplyError {
    ApplyError::Store(unavailable("applying a change")(e))
}

/// The change's conditions: none of its claims still live (`AlreadyApplied` with those that
/// are), and every soft-bounce list at the version it was read at (`Conflict`).
fn check_conditions(tx: &rusqlite::Transaction<'_>, change: &ChangeSet) -> Result<(), ApplyError> {
    let now = change.now.as_millis();
    let mut taken = Vec::new();
    for claim in &change.claims {
        let live: Option<i64> = tx
            .prepare_cached("SELECT expires_at FROM claims WHERE key = ?1 AND expires_at > ?2")
            .and_then(|mut statement| {
                statement.query_row(params![claim.key, now], |row| row.get(0))
            })
            .optional()
            .map_err(failed)?;
        if live.is_some() {
            taken.push(claim.key.clone());
        }
    }
    if !taken.is_empty() {
        return Err(ApplyError::AlreadyApplied(taken));
    }
    for update in change.suppressions.iter().filter(|u| u.soft.is_some()) {
        let expected = update.soft.as_ref().map_or(0, |s| s.expected_version);
        let version: Option<i64> = tx
            .prepare_cached("SELECT version FROM suppressions WHERE email = ?1")
            .and_then(|mut statement| {
                statement.query_row([update.email.as_str()], |row| row.get(0))
            })
            .optional()
            .map_err(failed)?;
        if version_of(version) != expected {
            return Err(ApplyError::Conflict);
        }
    }
    Ok(())
}

/// One address's update: its row made if new, its version bumped, its reason set (a
/// suppression ends its expiry), its feedback and soft-bounce list written.
fn write_address(
    tx: &rusqlite::Transaction<'_>,
    update: &SuppressionUpdate,
) -> rusqlite::Result<()> {
    let email = update.email.as_str();
    run(
        tx,
        "INSERT INTO suppressions (email) VALUES (?1) ON CONFLICT (email) DO NOTHING",
        [email],
    )?;
    run(
        tx,
        "UPDATE suppressions SET version = version + 1,
             reason = COALESCE(reason, ?2),
             expires_at = CASE WHEN ?2 IS NOT NULL THEN NULL ELSE expires_at END
         WHERE email = ?1",
        params![email, update.suppress.map(Reason::as_str)],
    )?;
    if let Some(feedback) = &update.feedback {
        write_feedback(tx, email, feedback)?;
    }
    if let Some(soft) = &update.soft {
        run(
            tx,
            "UPDATE suppressions SET soft_bounces = ?2,
                 expires_at = CASE WHEN reason IS NULL THEN ?3 ELSE NULL END
             WHERE email = ?1",
            params![
                email,
                encode_times(&soft.bounces),
                soft.expires_at.map(Timestamp::as_millis)
            ],
        )?;
    }
    Ok(())
}

/// The feedback about an address: its count and times, the message, and the bounce's or
/// complaint's details.
fn write_feedback(
    tx: &rusqlite::Transaction<'_>,
    email: &str,
    feedback: &FeedbackRecord,
) -> rusqlite::Result<()> {
    run(
        tx,
        "UPDATE suppressions SET count = count + ?2,
             first_seen = COALESCE(first_seen, ?3), last_seen = ?4,
             message_id = ?5, feedback_id = ?6
         WHERE email = ?1",
        params![
            email,
            i64::try_from(feedback.events).unwrap_or(i64::MAX),
            feedback.first_seen.as_millis(),
            feedback.last_seen.as_millis(),
            feedback.message_id,
            feedback.feedback_id
        ],
    )?;
    if let Some(bounce) = &feedback.bounce {
        run(
            tx,
            "UPDATE suppressions SET bounce_type = ?2, bounce_subtype = ?3,
                 status = ?4, diagnostic_code = ?5, bounce_reason = ?6
             WHERE email = ?1",
            params![
                email,
                bounce.bounce_type,
                bounce.bounce_subtype,
                bounce.status,
                bounce.diagnostic_code,
                bounce.reason.as_str()
            ],
        )?;
    }
    if let Some(feedback_type) = &feedback.complaint_feedback_type {
        run(
            tx,
            "UPDATE suppressions SET complaint_feedback_type = ?2 WHERE email = ?1",
            params![email, feedback_type],
        )?;
    }
    Ok(())
}

/// One bucket's counter increments: the account's total and each stream's, added to what the
/// bucket holds.
fn add_counts(tx: &rusqlite::Transaction<'_>, delta: &CounterDelta) -> rusqlite::Result<()> {
    let start = delta.bucket.start.as_millis();
    let expires = delta.expires_at.as_millis();
    let rows = std::iter::once((TOTAL, &delta.bucket.total))
        .chain(delta.bucket.streams.iter().map(|(s, c)| (s.as_str(), c)));
    for (stream, counts) in rows {
        let [sends, deliveries, hard, soft, complaints] = counts
            .values()
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        run(
            tx,
            "INSERT INTO counters (account, bucket, stream, sends, deliveries, hard_bounces,
                 soft_bounces, complaints, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (account, bucket, stream) DO UPDATE SET
                 sends = sends + excluded.sends,
                 deliveries = deliveries + excluded.deliveries,
                 hard_bounces = hard_bounces + excluded.hard_bounces,
                 soft_bounces = soft_bounces + excluded.soft_bounces,
                 complaints = complaints + excluded.complaints,
                 expires_at = MAX(expires_at, excluded.expires_at)",
            params![
                delta.account,
                start,
                stream,
                sends,
                deliveries,
                hard,
                soft,
                complaints,
                expires
            ],
        )?;
    }
    Ok(())
}

/// One bucket's mailbox-provider counter increments, added to what the bucket holds.
fn add_provider_counts(
    tx: &rusqlite::Transaction<'_>,
    delta: &CounterDelta,
) -> rusqlite::Result<()> {
    for (provider, counts) in &delta.bucket.providers {
        let [
            deliveries,
            address,
            temporary,
            blocked,
            authentication,
            policy,
            complaints,
        ] = counts
            .values()
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        run(
            tx,
            "INSERT INTO provider_counters (account, bucket, provider, deliveries,
                 address_bounces, temporary_bounces, blocked, authentication, policy,
                 complaints, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (account, bucket, provider) DO UPDATE SET
                 deliveries = deliveries + excluded.deliveries,
                 address_bounces = address_bounces + excluded.address_bounces,
                 temporary_bounces = temporary_bounces + excluded.temporary_bounces,
                 blocked = blocked + excluded.blocked,
                 authentication = authentication + excluded.authentication,
                 policy = policy + excluded.policy,
                 complaints = complaints + excluded.complaints,
                 expires_at = MAX(expires_at, excluded.expires_at)",
            params![
                delta.account,
                delta.bucket.start.as_millis(),
                provider,
                deliveries,
                address,
                temporary,
                blocked,
                authentication,
                policy,
                complaints,
                delta.expires_at.as_millis()
            ],
        )?;
    }
    Ok(())
}

/// Runs one statement through the connection's statement cache: a bulk ingest runs the same
/// few statements thousands of times, and parsing SQL was its largest cost.
fn run(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

#[async_trait]
impl FeedbackLedger for SqliteStore {
    async fn address_states(
        &self,
        emails: &[EmailAddress],
        now: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError> {
        let emails = emails.to_vec();
        self.run(move |connection| {
            let action = "reading address states";
            let mut statement = connection
                .prepare_cached(
                    "SELECT version, reason IS NOT NULL, soft_bounces, expires_at
                     FROM suppressions WHERE email = ?1",
                )
                .map_err(unavailable(action))?;
            let mut states = HashMap::new();
            for email in emails {
                let row = statement
                    .query_row([email.as_str()], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, bool>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, Option<i64>>(3)?,
                        ))
                    })
                    .optional()
                    .map_err(unavailable(action))?;
                let Some((version, suppressed, soft, expires_at)) = row else {
                    continue;
                };
                let expired = expires_at.is_some_and(|at| at <= now.as_millis());
                let soft_bounces = if expired {
                    Vec::new()
                } else {
                    decode_times(&soft)?
                };
                states.insert(
                    email,
                    AddressState {
                        version: version_of(Some(version)),
                        suppressed,
                        soft_bounces,
                    },
                );
            }
            Ok(states)
        })
        .await
    }

    async fn apply(&self, change: &ChangeSet) -> Result<(), ApplyError> {
        let change = change.clone();
        self.run(move |connection| {
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| ApplyError::Store(unavailable("starting a transaction")(e)))?;
            apply_in(&tx, &change)?;
            tx.commit()
                .map_err(|e| ApplyError::Store(unavailable("committing a change")(e)))
        })
        .await
    }

    fn max_items_per_apply(&self) -> usize {
        usize::MAX
    }
}
