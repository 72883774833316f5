//! `paas delete`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use http::{Method, StatusCode};

use super::plural;
use crate::cli::DeleteArgs;
use crate::client::{status_message, ApiClient};

pub(crate) async fn delete(client: &ApiClient, a: DeleteArgs) -> Result<ExitCode> {
    if plural(&a.kind)? != "services" {
        bail!(
            "only services can be deleted; their configuration, revisions and route go with them"
        );
    }
    let mut code = ExitCode::SUCCESS;
    for name in &a.names {
        let answer = client
            .call(
                Method::DELETE,
                &ApiClient::path(Some(&a.namespace), "services", Some(name)),
                None,
            )
            .await?;
        match answer.status {
            s if s.is_success() => {
                println!("Service {name:?} deleted in namespace {:?}.", a.namespace)
            }
            StatusCode::NOT_FOUND => {
                eprintln!(
                    "error: service {name:?} not found in namespace {:?}",
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
