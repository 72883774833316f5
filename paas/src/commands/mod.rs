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
use paas_api::{KindInfo, KINDS};

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

/// The kind a user typed, by plural, singular or short name (Knative's among them).
pub(crate) fn kind(name: &str) -> Result<&'static KindInfo> {
    match paas_api::kinds::by_name(name) {
        Some(k) => Ok(k),
        None => {
            let known: Vec<String> = KINDS
                .iter()
                .map(|k| match k.short_names.first() {
                    Some(short) => format!("{} ({short})", k.plural),
                    None => k.plural.to_owned(),
                })
                .collect();
            bail!(
                "unknown resource type {name:?}: use {}",
                paas_api::kinds::english_list(&known, "or")
            )
        }
    }
}
