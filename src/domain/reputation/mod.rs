//! Sender reputation: per-account counters in time buckets, rolling rates over them, and the
//! guard's thresholds, states and the transitions it decides.

pub mod confidence;
pub mod counters;
pub mod evidence;
pub mod guard;
pub mod history;
#[cfg(test)]
mod invariant;
pub mod probation;
pub mod providers;
pub mod rules;
pub mod ses_view;
pub mod state;
pub mod thresholds;
