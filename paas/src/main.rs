//! `paas`: the command line, and `paas up`, which wires every component into one process.

mod cli;
mod client;
mod commands;
mod config;
mod data_dir;
mod ingress;
mod output;
mod shutdown;
mod up;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Blocking work still running (a store write, a container removal) gets a moment,
    // not a say in when paas ends.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
