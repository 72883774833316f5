//! `paas delete`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use http::{Method, StatusCode};

use super::plural;
use crate::cli::DeleteArgs;
use crate::client::{status_message, ApiClient};

pub(crate) async fn delete(client: &ApiClient, a: DeleteArgs) -> Result<ExitCode> {
    let plural = plural(&a.kind)?;
    if !matches!(
        plural,
        "services"
            | "brokers"
            | "triggers"
            | "sequences"
            | "parallels"
            | "pingsources"
            | "kafkasources"
    ) {
        bail!("{plural} cannot be deleted on their own: delete their service (its configuration, revisions and route go with it)");
    }
    let what = plural.strip_suffix('s').unwrap_or(plural);
    let mut code = ExitCode::SUCCESS;
    for name in &a.names {
        let path = ApiClient::path(Some(&a.namespace), plural, Some(name));
        let answer = client.call(Method::DELETE, &path, None).await?;
        match answer.status {
            s if s.is_success() => {
                println!("{what} {name:?} deleted in namespace {:?}.", a.namespace)
            }
            StatusCode::NOT_FOUND => {
                eprintln!(
                    "error: {what} {name:?} not found in namespace {:?}",
                    a.namespace
                );
                code = ExitCode::FAILURE;
            }
            _ => {
                eprintln!("error: {}", status_message(&answer));
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
