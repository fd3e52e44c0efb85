//! The `webhook` Lambda function: SNS HTTPS deliveries, verified, into the ingest path.

use lambda_http::{Error, Request, service_fn};
use sesguard::{lambda::webhook::handle, wiring::Wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let function = Wiring::from_env().await?.webhook().await?;
    lambda_http::run(service_fn(|request: Request| handle(&function, request))).await
}
