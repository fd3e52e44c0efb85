//! The windows of calm accounts as one ingest instance last read them, reused by the guard's
//! review for a few seconds instead of read after every batch. A leaf: the context holds one,
//! the review uses it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::domain::common::timestamp::Timestamp;
use crate::ports::AccountWindow;

/// The windows of calm accounts ([`is_calm`](crate::domain::reputation::evidence::is_calm)) as one ingest instance last read them.
/// At 1,000 sends a second ingest stores a batch every few milliseconds, and each review read
/// the account's whole window — every shard of every bucket of the day, tens of read units —
/// more than the account's partition serves. A calm account's window is reused for
/// `guard.window_cache` (5 s) by batches that bring it no hard bounce and no complaint (the
/// ingestor forgets it on those, [`crate::app::review::Guard::bad_news`]): a calm account changes state only on
/// bad feedback, so a review on that read decides as a fresh one would. What the read misses
/// is the window sliding on — old mail leaving it — seen at most that much later.
#[derive(Debug, Default)]
pub struct WindowCache {
    windows: Mutex<HashMap<String, (Timestamp, AccountWindow)>>,
}

impl WindowCache {
    pub(crate) fn fresh(
        &self,
        account: &str,
        now: Timestamp,
        keep: Duration,
    ) -> Option<AccountWindow> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, window) = windows.get(account)?;
        (now.since(*read_at) < keep && *read_at <= now).then(|| window.clone())
    }

    pub(crate) fn keep(&self, account: &str, read_at: Timestamp, window: AccountWindow) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_owned(), (read_at, window));
    }

    pub(crate) fn forget(&self, account: &str) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(account);
    }
}
