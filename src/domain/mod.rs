//! The pure core of sesguard, grouped by concern. No I/O, no AWS types, no clock reads — time
//! is passed in — so almost every rule is tested here, fast.
//!
//! - [`common`]: recipient addresses and timestamps, the vocabulary of every other module;
//! - [`feedback`]: SES notifications parsed, attributed to an account, planned into effects
//!   (suppressions, counters, de-duplication);
//! - [`sns`]: SNS deliveries as received, their signatures, and peeling them down to SES JSON;
//! - [`reputation`]: rolling counters and the guard's thresholds, states and transitions;
//! - [`sending`]: send requests, template policy, rate limits, routing and SES failures.

pub mod common;
pub mod feedback;
pub mod reputation;
pub mod sending;
pub mod sns;
