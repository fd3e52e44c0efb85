//! The `admin` Lambda function: the operations API behind a function URL.

use lambda_http::{Error, Request, service_fn};
use sesguard::handlers::admin::{AdminDeps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let state = AdminDeps::from_env().await?;
    lambda_http::run(service_fn(|request: Request| handle(&state, request))).await
}
