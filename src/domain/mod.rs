//! The pure core of sesguard: SES notifications, recipient addresses, the suppression policy,
//! account attribution and rolling counters. No I/O, no AWS types, no clock reads — time is
//! passed in — so almost every rule is tested here, fast.

pub mod address;
pub mod attribution;
pub mod counters;
pub mod envelope;
pub mod guard;
pub mod notification;
pub mod plan;
pub mod policy;
pub mod rate;
pub mod routing;
pub mod send;
pub mod ses_failure;
pub mod sns;
pub mod suppression;
pub mod timestamp;
