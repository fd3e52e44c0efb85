//! The `ingest` Lambda function: SES feedback from SQS or SNS into the suppression list and
//! the account counters.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use sesguard::{lambda::ingest, wiring::Wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let function = Wiring::from_env().await?.ingest().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        ingest::handle(&function, event)
    }))
    .await
}
