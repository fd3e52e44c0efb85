//! One way to set up a test's world: a store (a fresh SQLite file unless the test gives one),
//! the example configuration as the test changes it, a clock the test sets, alerts kept in
//! memory, and the context the local composition builds over them.
//!
//! ```ignore
//! let world = World::builder().configure(|c| c.guard.min_volume = 10).at("2026-11-20T10:00:00Z").build();
//! ```

use std::sync::Arc;

use sesguard::app::Context;
use sesguard::config::Config;
use sesguard::ports::Store;

use crate::helpers::{FixedClock, RecordedAlerts, SAMPLE_NOW, example_config, sqlite};

/// A test's store, clock, alerts and context.
pub struct World {
    /// The context every use case is built from.
    pub deps: Context,
    /// The clock, for the test to move.
    pub clock: Arc<FixedClock>,
    /// What was alerted.
    pub alerts: RecordedAlerts,
    /// The SQLite file's folder, while the world lives.
    pub dir: Option<tempfile::TempDir>,
}

/// How a [`World`] is made.
pub struct WorldBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    at: String,
}

impl World {
    /// The example configuration over a fresh SQLite store at [`SAMPLE_NOW`], unless told
    /// otherwise.
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            config: example_config(),
            store: None,
            at: SAMPLE_NOW.to_owned(),
        }
    }
}

impl WorldBuilder {
    /// The configuration, changed by `change`.
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// This configuration instead of the example's.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// This store instead of a fresh SQLite file (DynamoDB, or a store with faults).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock's start (RFC 3339).
    pub fn at(mut self, rfc3339: &str) -> Self {
        self.at = rfc3339.to_owned();
        self
    }

    /// The world.
    pub fn build(self) -> World {
        let (dir, store) = match self.store {
            Some(store) => (None, store),
            None => {
                let (dir, store) = sqlite();
                (Some(dir), Arc::new(store) as Arc<dyn Store>)
            }
        };
        let clock = FixedClock::at(&self.at);
        let alerts = RecordedAlerts::default();
        let deps = sesguard::wiring::local(self.config, store, clock.clone())
            .with_alerts(Arc::new(alerts.clone()));
        World {
            deps,
            clock,
            alerts,
            dir,
        }
    }
}
