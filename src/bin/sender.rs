//! The `sender` Lambda function: every send request gated before SES sees it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use sesguard::{lambda::sender::handle, wiring::Wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let function = Wiring::from_env().await?.sender().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&function, event)
    }))
    .await
}
