//! The suppression list's rows: lookups, listing and operators' manual suppressions.

use super::*;

/// A suppression as the table holds it, before its email and reason are checked.
pub(super) struct SuppressionRow {
    pub(super) email: String,
    pub(super) reason: String,
    pub(super) bounce_type: Option<String>,
    pub(super) bounce_subtype: Option<String>,
    pub(super) status: Option<String>,
    pub(super) diagnostic_code: Option<String>,
    pub(super) complaint_feedback_type: Option<String>,
    pub(super) count: i64,
    pub(super) first_seen: Option<i64>,
    pub(super) last_seen: Option<i64>,
    pub(super) message_id: Option<String>,
    pub(super) feedback_id: Option<String>,
    pub(super) bounce_reason: Option<String>,
}

pub(super) fn suppression_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SuppressionRow> {
    Ok(SuppressionRow {
        email: row.get(0)?,
        reason: row.get(1)?,
        bounce_type: row.get(2)?,
        bounce_subtype: row.get(3)?,
        status: row.get(4)?,
        diagnostic_code: row.get(5)?,
        complaint_feedback_type: row.get(6)?,
        count: row.get(7)?,
        first_seen: row.get(8)?,
        last_seen: row.get(9)?,
        message_id: row.get(10)?,
        feedback_id: row.get(11)?,
        bounce_reason: row.get(12)?,
    })
}

impl TryFrom<SuppressionRow> for Suppression {
    type Error = StoreError;

    fn try_from(row: SuppressionRow) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "suppression",
            detail,
        };
        Ok(Suppression {
            email: EmailAddress::parse(&row.email).map_err(|e| corrupt(e.to_string()))?,
            reason: row
                .reason
                .parse()
                .map_err(|e: UnknownReason| corrupt(e.to_string()))?,
            bounce_type: row.bounce_type,
            bounce_subtype: row.bounce_subtype,
            status: row.status,
            diagnostic_code: row.diagnostic_code,
            bounce_reason: row.bounce_reason.and_then(|t| t.parse().ok()),
            complaint_feedback_type: row.complaint_feedback_type,
            count: u64::try_from(row.count).unwrap_or(0),
            first_seen: Timestamp::from_millis(row.first_seen.unwrap_or(0)),
            last_seen: Timestamp::from_millis(row.last_seen.unwrap_or(0)),
            message_id: row.message_id,
            feedback_id: row.feedback_id,
        })
    }
}

#[async_trait]
impl SuppressionList for SqliteStore {
    async fn suppressed(
        &self,
        emails: &[EmailAddress],
    ) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
        let emails = emails.to_vec();
        self.run(move |connection| read_suppressed(connection, emails))
            .await
    }

    async fn get(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        let email = email.clone();
        self.run(move |connection| {
            let sql = format!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE email = ?1 AND reason IS NOT NULL"
            );
            let row = connection
                .query_row(&sql, [email.as_str()], suppression_from_row)
                .optional()
                .map_err(unavailable("reading a suppression"))?;
            row.map(Suppression::try_from).transpose()
        })
        .await
    }

    async fn list(
        &self,
        reason: Option<Reason>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>, StoreError> {
        let cursor = cursor.unwrap_or("").to_owned();
        let limit = limit.max(1);
        self.run(move |connection| {
            let action = "listing suppressions";
            let sql = format!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions
                 WHERE reason IS NOT NULL AND (?1 IS NULL OR reason = ?1) AND email > ?2
                 ORDER BY email LIMIT ?3"
            );
            let mut statement = connection
                .prepare_cached(&sql)
                .map_err(unavailable(action))?;
            let rows = statement
                .query_map(
                    params![
                        reason.map(Reason::as_str),
                        cursor,
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    suppression_from_row,
                )
                .map_err(unavailable(action))?;
            let mut items = Vec::new();
            for row in rows {
                items.push(Suppression::try_from(row.map_err(unavailable(action))?)?);
            }
            let next = (items.len() == limit)
                .then(|| items.last().map(|s| s.email.as_str().to_owned()))
                .flatten();
            Ok(Page { items, next })
        })
        .await
    }
}

/// Which of `emails` are suppressed, and why.
pub(super) fn read_suppressed(
    connection: &Connection,
    emails: Vec<EmailAddress>,
) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
    let action = "reading suppressions";
    let mut statement = connection
        .prepare_cached("SELECT reason FROM suppressions WHERE email = ?1 AND reason IS NOT NULL")
        .map_err(unavailable(action))?;
    let mut found = HashMap::new();
    for email in emails {
        let reason: Option<String> = statement
            .query_row([email.as_str()], |row| row.get(0))
            .optional()
            .map_err(unavailable(action))?;
        if let Some(reason) = reason {
            let reason = reason
                .parse()
                .map_err(|e: UnknownReason| StoreError::Corrupt {
                    what: "suppression",
                    detail: e.to_string(),
                })?;
            found.insert(email, reason);
        }
    }
    Ok(found)
}

#[async_trait]
impl SuppressionAdmin for SqliteStore {
    async fn suppress(
        &self,
        entries: &[ManualSuppression],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let entries = entries.to_vec();
        self.run(move |connection| {
            let action = "suppressing addresses";
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable(action))?;
            let mut added = 0;
            {
                let mut was = tx
                    .prepare_cached(
                        "SELECT 1 FROM suppressions WHERE email = ?1 AND reason IS NOT NULL",
                    )
                    .map_err(unavailable(action))?;
                let mut write = tx
                    .prepare_cached(
                        "INSERT INTO suppressions (email, reason, first_seen, last_seen, version)
                         VALUES (?1, ?2, ?3, ?3, 1)
                         ON CONFLICT (email) DO UPDATE SET
                             reason = COALESCE(reason, excluded.reason),
                             first_seen = COALESCE(first_seen, excluded.first_seen),
                             last_seen = COALESCE(last_seen, excluded.last_seen),
                             expires_at = NULL,
                             version = version + 1
                         WHERE reason IS NULL",
                    )
                    .map_err(unavailable(action))?;
                for entry in &entries {
                    let suppressed = was
                        .exists([entry.email.as_str()])
                        .map_err(unavailable(action))?;
                    if !suppressed {
                        write
                            .execute(params![
                                entry.email.as_str(),
                                entry.reason.as_str(),
                                now.as_millis()
                            ])
                            .map_err(unavailable(action))?;
                        added += 1;
                    }
                }
            }
            tx.commit().map_err(unavailable(action))?;
            Ok(added)
        })
        .await
    }

    async fn unsuppress(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        let email = email.clone();
        self.run(move |connection| {
            let action = "lifting a suppression";
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable(action))?;
            let sql = format!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE email = ?1 AND reason IS NOT NULL"
            );
            let row = tx
                .query_row(&sql, [email.as_str()], suppression_from_row)
                .optional()
                .map_err(unavailable(action))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let suppression = Suppression::try_from(row)?;
            tx.execute("DELETE FROM suppressions WHERE email = ?1", [email.as_str()])
                .map_err(unavailable(action))?;
            tx.commit().map_err(unavailable(action))?;
            Ok(Some(suppression))
        })
        .await
    }
}
