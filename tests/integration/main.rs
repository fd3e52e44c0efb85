//! Integration tests, compiled into one binary: the store contract (SQLite and DynamoDB on a
//! local server), the ingest paths through the Lambda handler, DynamoDB request budgets, SES's
//! reputation figures from the local server's CloudWatch, and the CLI.

mod admin;
mod bounce_reasons;
mod cli;
mod faults;
mod guard_paths;
mod helpers;
mod ingest_paths;
mod layout;
mod prevention;
mod recovery;
mod request_budget;
mod sender;
mod ses_account;
#[path = "../support/ses_event.rs"]
mod ses_event;
mod ses_line;
mod ses_reputation;
mod sns_alerts;
mod store_contract;
mod transport;
mod webhook;
#[path = "../support/wire.rs"]
mod wire;
mod world;
