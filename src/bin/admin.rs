//! The `admin` Lambda function: the operations API behind a function URL.

use lambda_http::{Error, Request, service_fn};
use sesguard::{lambda::admin::handle, wiring::Wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sesguard::telemetry::init();
    let function = Wiring::from_env().await?.admin().await?;
    lambda_http::run(service_fn(|request: Request| handle(&function, request))).await
}
