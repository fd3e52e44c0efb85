//! The `sender` Lambda function: every send request gated before SES sees it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use sesguard::handlers::sender::{SenderDeps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let state = SenderDeps::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&state, event)
    }))
    .await
}
