//! Adapters: the ports implemented over the outside world. Deployed: DynamoDB, SESv2, SQS,
//! SNS and CloudWatch (SES's reputation figures). Local: the embedded SQLite store, the file
//! outbox, log alerts and a file of SES's figures. Which ones run is decided in one place only,
//! [`crate::wiring`].

pub mod account_sdk;
pub mod alerts;
pub mod cloudwatch;
pub mod dns;
pub mod dns_zone;
pub mod dynamodb;
pub mod outbox;
pub mod ses_figures_file;
pub mod sesv2;
pub mod sns_https;
pub mod sqlite;
pub mod sqs;
pub mod store_url;
