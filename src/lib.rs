//! sesguard guards the sender reputation of Amazon SES accounts: it records bounces and
//! complaints in a suppression list, tracks every account's rolling bounce and complaint
//! rates, and gates every send.
//!
//! The tree is the architecture; dependencies point down, never up:
//!
//! ```text
//! bin/, lambda/, cli/     entry points: decode, call, encode
//!        │
//!     wiring              the composition root: deployed or local parts, chosen once
//!        │
//!       app/              use cases over the ports
//!        │
//!      ports/  ◀── adapters/   narrow traits ◀── DynamoDB, SQLite, SESv2, SQS, SNS, outbox
//!        │
//!     domain/             pure rules; config/ holds the typed settings every layer reads
//! ```

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod lambda;
pub mod ports;
pub mod telemetry;
pub mod wiring;
