//! The `webhook` Lambda function: SNS HTTPS deliveries, verified, into the ingest path.

use lambda_http::{Error, Request, service_fn};
use sesguard::handlers::webhook::{WebhookDeps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let state = WebhookDeps::from_env().await?;
    lambda_http::run(service_fn(|request: Request| handle(&state, request))).await
}
