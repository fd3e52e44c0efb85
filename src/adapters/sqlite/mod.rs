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
use crate::domain::reputation::counters::{Bucket, Counts, ProviderCounts};
use crate::domain::reputation::history::HistoryEntry;
use crate::domain::reputation::state::AccountState;
use crate::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits, RateState};
use crate::domain::sending::send_record::{SendKey, SendRecord, SendState};
use crate::domain::sending::template_policy::TemplatePolicy;
use crate::ports::{
    AccountWindow, ApplyError, AuditEntry, AuditLog, CounterWindow, FeedbackLedger, GateRead,
    GateView, GuardLedger, ManualSuppression, MessageLedger, Page, PolicyStore, RateLedger,
    RateRecord, SendClaim, SendLedger, StoreError, SuppressionAdmin, SuppressionList,
};

mod audit;
mod changes;
mod domains;
mod gate;
mod guard_state;
mod jobs;
mod messages;
mod rate_bucket;
mod sends;
mod suppressions;
mod templates;
mod window;
use changes::*;
use guard_state::*;
use rate_bucket::*;
use suppressions::*;
use templates::*;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS suppressions (
    email TEXT PRIMARY KEY,
    reason TEXT,
    bounce_type TEXT,
    bounce_subtype TEXT,
    status TEXT,
    diagnostic_code TEXT,
    complaint_feedback_type TEXT,
    bounce_reason TEXT,
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
CREATE TABLE IF NOT EXISTS content_claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sends (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    sent_until INTEGER NOT NULL
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
CREATE TABLE IF NOT EXISTS provider_counters (
    account TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    provider TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    address_bounces INTEGER NOT NULL DEFAULT 0,
    temporary_bounces INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    authentication INTEGER NOT NULL DEFAULT 0,
    policy INTEGER NOT NULL DEFAULT 0,
    complaints INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account, bucket, provider)
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
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    progress TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    domain TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    source TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS prevented (
    day TEXT NOT NULL,
    stream TEXT NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, stream, reason, action)
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
    connection.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA}"))?;
    let migrated = migrate(connection);
    let end = if migrated.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    connection.execute_batch(end)?;
    migrated
}

/// Columns added since a file may have been created, added where missing (inside the
/// schema's transaction, so two processes opening an old file add each once).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("suppressions", "bounce_reason", "TEXT")];

fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    for (table, column, kind) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// The stream name under which a bucket's all-streams total is stored.
const TOTAL: &str = "";

const SUPPRESSION_COLUMNS: &str = "email, reason, bounce_type, bounce_subtype, status, \
     diagnostic_code, complaint_feedback_type, count, first_seen, last_seen, message_id, feedback_id, \
     bounce_reason";

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
