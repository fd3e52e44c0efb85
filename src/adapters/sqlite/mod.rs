//! The embedded store: one SQLite file (`sqlite:PATH`), the default for local runs, the CLI
//! and the demo. Several processes may share the file: WAL journaling, a busy timeout, and
//! `BEGIN IMMEDIATE` transactions serialise writers, so `apply` is atomic across processes
//! just as the DynamoDB transaction is across Lambda instances.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::ChangeSet;
use crate::domain::feedback::suppression::{AddressState, Reason, Suppression, UnknownReason};
use crate::domain::reputation::counters::{Bucket, Counts};
use crate::domain::reputation::guard::{AccountState, HistoryEntry};
use crate::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits, RateState};
use crate::domain::sending::template_policy::TemplatePolicy;
use crate::ports::{
    AccountWindow, ApplyError, AuditEntry, AuditLog, CounterWindow, FeedbackLedger, GateRead,
    GateView, GuardLedger, ManualSuppression, MessageLedger, Page, PolicyStore, RateLedger,
    RateRecord, StoreError, SuppressionAdmin, SuppressionList,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS suppressions (
    email TEXT PRIMARY KEY,
    reason TEXT,
    bounce_type TEXT,
    bounce_subtype TEXT,
    status TEXT,
    diagnostic_code TEXT,
    complaint_feedback_type TEXT,
    count INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER,
    last_seen INTEGER,
    message_id TEXT,
    feedback_id TEXT,
    soft_bounces TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS suppressions_by_reason ON suppressions (reason, email);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    account TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    stream TEXT NOT NULL,
    sends INTEGER NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    hard_bounces INTEGER NOT NULL DEFAULT 0,
    soft_bounces INTEGER NOT NULL DEFAULT 0,
    complaints INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account, bucket, stream)
);
CREATE TABLE IF NOT EXISTS unconfigured_accounts (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS account_states (
    account TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_states (
    account TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    at INTEGER NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_limits (
    account TEXT PRIMARY KEY,
    patch TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    account TEXT NOT NULL,
    at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    entry TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account, at, version)
);
";

/// WAL journaling and the schema, created if missing.
fn prepare(connection: &Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
}

/// The stream name under which a bucket's all-streams total is stored.
const TOTAL: &str = "";

const SUPPRESSION_COLUMNS: &str = "email, reason, bounce_type, bounce_subtype, status, \
     diagnostic_code, complaint_feedback_type, count, first_seen, last_seen, message_id, feedback_id";

/// An SQLite-backed store.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn unavailable(action: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Unavailable {
        action: action.to_owned(),
        source: Box::new(source),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent directory.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Unavailable {
                action: format!("creating {}", parent.display()),
                source: Box::new(source),
            })?;
        }
        let action = format!("opening {}", path.display());
        let connection = Connection::open(path).map_err(unavailable(&action))?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(unavailable(&action))?;
        // Switching a new file to WAL takes an exclusive lock and may answer BUSY at once,
        // without the busy handler, while another process does the same: retry for a while.
        let mut attempt = 0_u32;
        while let Err(error) = prepare(&connection) {
            let busy = matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            attempt += 1;
            if !busy || attempt > 100 {
                return Err(unavailable(&action)(error));
            }
            std::thread::sleep(Duration::from_millis(10 + u64::from(attempt) * 5));
        }
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking SQLite work off the async executor.
    async fn run<T, E>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut guard)
        })
        .await;
        joined.unwrap_or_else(|join| {
            Err(E::from(StoreError::Unavailable {
                action: "running an SQLite task".into(),
                source: Box::new(join),
            }))
        })
    }
}

fn encode_times(times: &[Timestamp]) -> String {
    times
        .iter()
        .map(|t| t.as_millis().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_times(text: &str) -> Result<Vec<Timestamp>, StoreError> {
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

fn version_of(row: Option<i64>) -> u64 {
    row.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

fn apply_in(tx: &rusqlite::Transaction<'_>, change: &ChangeSet) -> Result<(), ApplyError> {
    let failed = |e: rusqlite::Error| ApplyError::Store(unavailable("applying a change")(e));
    let now = change.now.as_millis();

    let mut taken = Vec::new();
    for claim in &change.claims {
        let live: Option<i64> = tx
            .query_row(
                "SELECT expires_at FROM claims WHERE key = ?1 AND expires_at > ?2",
                params![claim.key, now],
                |row| row.get(0),
            )
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
            .query_row(
                "SELECT version FROM suppressions WHERE email = ?1",
                [update.email.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(failed)?;
        if version_of(version) != expected {
            return Err(ApplyError::Conflict);
        }
    }

    for claim in &change.claims {
        tx.execute(
            "INSERT OR REPLACE INTO claims (key, expires_at) VALUES (?1, ?2)",
            params![claim.key, claim.expires_at.as_millis()],
        )
        .map_err(failed)?;
    }
    for update in &change.suppressions {
        let email = update.email.as_str();
        tx.execute(
            "INSERT INTO suppressions (email) VALUES (?1) ON CONFLICT (email) DO NOTHING",
            [email],
        )
        .map_err(failed)?;
        tx.execute(
            "UPDATE suppressions SET version = version + 1,
                 reason = COALESCE(reason, ?2),
                 expires_at = CASE WHEN ?2 IS NOT NULL THEN NULL ELSE expires_at END
             WHERE email = ?1",
            params![email, update.suppress.map(Reason::as_str)],
        )
        .map_err(failed)?;
        if let Some(feedback) = &update.feedback {
            tx.execute(
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
            )
            .map_err(failed)?;
            if let Some(bounce) = &feedback.bounce {
                tx.execute(
                    "UPDATE suppressions SET bounce_type = ?2, bounce_subtype = ?3,
                         status = ?4, diagnostic_code = ?5
                     WHERE email = ?1",
                    params![
                        email,
                        bounce.bounce_type,
                        bounce.bounce_subtype,
                        bounce.status,
                        bounce.diagnostic_code
                    ],
                )
                .map_err(failed)?;
            }
            if let Some(feedback_type) = &feedback.complaint_feedback_type {
                tx.execute(
                    "UPDATE suppressions SET complaint_feedback_type = ?2 WHERE email = ?1",
                    params![email, feedback_type],
                )
                .map_err(failed)?;
            }
        }
        if let Some(soft) = &update.soft {
            tx.execute(
                "UPDATE suppressions SET soft_bounces = ?2,
                     expires_at = CASE WHEN reason IS NULL THEN ?3 ELSE NULL END
                 WHERE email = ?1",
                params![
                    email,
                    encode_times(&soft.bounces),
                    soft.expires_at.map(Timestamp::as_millis)
                ],
            )
            .map_err(failed)?;
        }
    }
    for delta in &change.counters {
        let start = delta.bucket.start.as_millis();
        let expires = delta.expires_at.as_millis();
        let rows = std::iter::once((TOTAL, &delta.bucket.total))
            .chain(delta.bucket.streams.iter().map(|(s, c)| (s.as_str(), c)));
        for (stream, counts) in rows {
            let [sends, deliveries, hard, soft, complaints] = counts
                .values()
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            tx.execute(
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
            )
            .map_err(failed)?;
        }
    }
    for name in &change.new_accounts {
        tx.execute(
            "INSERT OR IGNORE INTO unconfigured_accounts (name) VALUES (?1)",
            [name],
        )
        .map_err(failed)?;
    }
    Ok(())
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

/// A suppression as the table holds it, before its email and reason are checked.
struct SuppressionRow {
    email: String,
    reason: String,
    bounce_type: Option<String>,
    bounce_subtype: Option<String>,
    status: Option<String>,
    diagnostic_code: Option<String>,
    complaint_feedback_type: Option<String>,
    count: i64,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    message_id: Option<String>,
    feedback_id: Option<String>,
}

fn suppression_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SuppressionRow> {
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

#[async_trait]
impl CounterWindow for SqliteStore {
    async fn window(
        &self,
        account: &str,
        first: Timestamp,
        last: Timestamp,
    ) -> Result<AccountWindow, StoreError> {
        let account = account.to_owned();
        self.run(move |connection| {
            let action = "reading counters";
            let mut statement = connection
                .prepare_cached(
                    "SELECT bucket, stream, sends, deliveries, hard_bounces, soft_bounces, complaints
                     FROM counters WHERE account = ?1 AND bucket BETWEEN ?2 AND ?3
                     ORDER BY bucket, stream",
                )
                .map_err(unavailable(action))?;
            let rows = statement
                .query_map(params![account, first.as_millis(), last.as_millis()], |row| {
                    let mut values = [0_u64; 5];
                    for (i, value) in values.iter_mut().enumerate() {
                        *value = u64::try_from(row.get::<_, i64>(i + 2)?).unwrap_or(0);
                    }
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, Counts::from_values(values)))
                })
                .map_err(unavailable(action))?;
            let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
            for row in rows {
                let (start, stream, counts) = row.map_err(unavailable(action))?;
                let bucket = buckets.entry(start).or_insert_with(|| Bucket {
                    start: Timestamp::from_millis(start),
                    ..Bucket::default()
                });
                if stream == TOTAL {
                    bucket.total = counts;
                } else {
                    bucket.streams.insert(stream, counts);
                }
            }
            drop(statement);
            let state = read_state(connection, &account)?;
            Ok(AccountWindow {
                buckets: buckets.into_values().collect(),
                state,
            })
        })
        .await
    }

    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError> {
        self.run(|connection| {
            let action = "listing unconfigured accounts";
            let mut statement = connection
                .prepare_cached("SELECT name FROM unconfigured_accounts ORDER BY name")
                .map_err(unavailable(action))?;
            let names = statement
                .query_map([], |row| row.get(0))
                .map_err(unavailable(action))?
                .collect::<Result<Vec<String>, _>>()
                .map_err(unavailable(action))?;
            Ok(names)
        })
        .await
    }
}

fn corrupt_state(account: &str, error: &serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "account state",
        detail: format!("{account}: {error}"),
    }
}

fn read_state(connection: &Connection, account: &str) -> Result<AccountState, StoreError> {
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

fn corrupt_policy(error: &serde_json::Error) -> StoreError {
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

#[async_trait]
impl MessageLedger for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO claims (key, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE claims.expires_at <= ?3",
                    params![key, expires_at.as_millis(), now.as_millis()],
                )
                .map(|changed| changed == 1)
                .map_err(unavailable("claiming a message"))
        })
        .await
    }

    async fn release(&self, keys: &[String]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.run(move |connection| {
            let action = "releasing message claims";
            let tx = connection.transaction().map_err(unavailable(action))?;
            for key in keys {
                tx.execute("DELETE FROM claims WHERE key = ?1", [key])
                    .map_err(unavailable(action))?;
            }
            tx.commit().map_err(unavailable(action))
        })
        .await
    }

    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT 1 FROM claims WHERE key = ?1 AND expires_at > ?2",
                    params![key, now.as_millis()],
                    |_| Ok(()),
                )
                .optional()
                .map(|row| row.is_some())
                .map_err(unavailable("reading a message claim"))
        })
        .await
    }

    async fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT OR REPLACE INTO claims (key, expires_at) VALUES (?1, ?2)",
                    params![key, expires_at.as_millis()],
                )
                .map(|_| ())
                .map_err(unavailable("writing a message claim"))
        })
        .await
    }
}

fn corrupt_rate(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "rate state",
        detail: e.to_string(),
    }
}

/// The account's rate record, read inside the caller's transaction.
fn read_rate(connection: &Connection, account: &str) -> Result<RateRecord, StoreError> {
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
    })
}

fn write_rate_state(
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

#[async_trait]
impl GateRead for SqliteStore {
    /// One call on the connection's thread.
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
    ) -> Result<GateView, StoreError> {
        let (recipients, accounts) = (recipients.to_vec(), accounts.to_vec());
        self.run(move |connection| {
            let mut states = HashMap::new();
            let mut rates = HashMap::new();
            for account in accounts {
                states.insert(account.clone(), read_state(connection, &account)?);
                rates.insert(account.clone(), read_rate(connection, &account)?);
            }
            Ok(GateView {
                policy: read_policy(connection)?,
                suppressed: read_suppressed(connection, recipients)?,
                states,
                rates,
            })
        })
        .await
    }
}

/// Which of `emails` are suppressed, and why.
fn read_suppressed(
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

/// The template policy (empty when never written).
fn read_policy(connection: &Connection) -> Result<TemplatePolicy, StoreError> {
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

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, entry: &AuditEntry, expires_at: Timestamp) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt {
            what: "audit entry",
            detail: e.to_string(),
        })?;
        let at = entry.at;
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO audit (at, entry, expires_at) VALUES (?1, ?2, ?3)",
                    params![at.as_millis(), json, expires_at.as_millis()],
                )
                .map(|_| ())
                .map_err(unavailable("writing the audit log"))
        })
        .await
    }

    async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let action = "reading the audit log";
            let mut statement = connection
                .prepare_cached("SELECT entry FROM audit ORDER BY at DESC, seq DESC LIMIT ?1")
                .map_err(unavailable(action))?;
            let rows = statement
                .query_map([limit], |row| row.get::<_, String>(0))
                .map_err(unavailable(action))?;
            let mut entries = Vec::new();
            for json in rows {
                let json = json.map_err(unavailable(action))?;
                entries.push(
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        what: "audit entry",
                        detail: e.to_string(),
                    })?,
                );
            }
            Ok(entries)
        })
        .await
    }
}
