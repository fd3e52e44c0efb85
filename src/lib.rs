//! sesguard guards the sender reputation of Amazon SES accounts: it records bounces and
//! complaints in a suppression list and tracks every account's rolling bounce and complaint
//! rates. The pure rules live in [`domain`], the store interfaces in [`ports`], their
//! implementations in [`store`], and each Lambda function's handler in [`handlers`].

pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod deps;
pub mod domain;
pub mod guard;
pub mod handlers;
pub mod ingest;
pub mod outbox;
pub mod ports;
pub mod queue;
pub mod routing;
pub mod sender;
pub mod ses;
pub mod sns_http;
pub mod sns_signature;
pub mod store;
pub mod telemetry;
pub mod webhook;
