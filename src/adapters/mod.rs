//! Adapters: the ports implemented over the outside world. Deployed: DynamoDB, SESv2, SQS and
//! SNS. Local: the embedded SQLite store, the file outbox and log alerts. Which ones run is
//! decided in one place only, [`crate::wiring`].

pub mod alerts;
pub mod dynamodb;
pub mod outbox;
pub mod sesv2;
pub mod sns_https;
pub mod sqlite;
pub mod sqs;
pub mod store_url;
