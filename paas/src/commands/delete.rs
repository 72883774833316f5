//! `paas delete`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use http::{Method, StatusCode};

use super::kind;
use crate::cli::DeleteArgs;
use crate::client::{status_message, ApiClient};

pub(crate) async fn delete(client: &ApiClient, a: DeleteArgs) -> Result<ExitCode> {
    let kind = kind(&a.kind)?;
    if let Some(owner) = kind.owner {
        let owned: Vec<&str> = paas_api::kinds::by_kind(kind.api_version, owner.kind)
            .map(|o| o.owned().map(|k| k.plural).collect())
            .unwrap_or_default();
        bail!(
            "{} cannot be deleted on their own: delete their {} (its {} go with it)",
            kind.plural,
            owner.kind.to_ascii_lowercase(),
            paas_api::kinds::english_list(&owned, "and")
        );
    }
    let what = kind.singular;
    let mut code = ExitCode::SUCCESS;
    for name in &a.names {
        let path = ApiClient::path(Some(&a.namespace), kind, Some(name));
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
