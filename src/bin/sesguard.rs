//! The `sesguard` operations CLI.

use std::process::ExitCode;

use clap::Parser;
use sesguard::cli::{Cli, LogFormat, run};
use sesguard::telemetry::error_chain;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sesguard::telemetry::init_cli(cli.verbose, cli.log_format == LogFormat::Json);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
