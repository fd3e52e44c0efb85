//! The `sesguard` operations CLI.

use std::process::ExitCode;

use clap::Parser;
use sesguard::cli::{Cli, run};
use sesguard::telemetry::error_chain;

#[tokio::main]
async fn main() -> ExitCode {
    sesguard::telemetry::init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
