//! `datapact`: the licensing gateway and its operator commands.

mod admin_token;
mod billing;
mod canaries;
mod checkpoints;
mod cli;
mod commands;
mod dashboard;
mod demo;
mod ledger;
mod migrate;
mod report;
mod secret;
mod trace;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the gateway allocates many small, short-lived objects across worker threads, where
/// glibc's malloc spent a quarter of server CPU in profiles (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
