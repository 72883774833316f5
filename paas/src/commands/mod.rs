//! One file per command.

mod apply;
mod delete;
mod deploy;
mod describe;
mod event;
mod get;
mod logs;
mod rollback;
mod traffic;

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::{Cli, Command};
use crate::client::ApiClient;
use crate::config::default_data_dir;

pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = cli.global.data_dir.clone().unwrap_or_else(default_data_dir);
    if let Command::Up(args) = cli.command {
        crate::up::up(args, &data_dir, cli.global.token.clone()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = ApiClient::from_global(&cli.global)?;
    match cli.command {
        Command::Up(_) => unreachable!("handled above"),
        Command::Deploy(a) => deploy::deploy(&client, a).await,
        Command::Apply(a) => apply::apply(&client, a).await,
        Command::Get(a) => get::get(&client, a).await,
        Command::Describe(a) => describe::describe(&client, a).await,
        Command::Delete(a) => delete::delete(&client, a).await,
        Command::Logs(a) => logs::logs(&client, a).await,
        Command::Rollback(a) => rollback::rollback(&client, a).await,
        Command::Event(crate::cli::EventCommand::Send(a)) => event::send(&client, a).await,
    }
}

/// The plural of a kind a user typed, with Knative's short names.
pub(crate) fn plural(kind: &str) -> Result<&'static str> {
    match paas_api::object::plural_for(kind) {
        Some(p) => Ok(p),
        None => bail!("unknown resource type {kind:?}: use services (ksvc), revisions (rev), routes (rt), configurations (config), brokers, triggers, sequences, parallels, pingsources or kafkasources"),
    }
}
