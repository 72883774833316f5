//! Replica logs of a service or revision.

use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paas_api::{keys, Object, Revision};
use serde::Deserialize;
use serde_json::json;

use super::objects::{Api, At};
use super::ApiError;
use crate::store::StoreExt;

/// `GET .../{plural}/{name}/logs?tail=N`: the last lines of each replica of a service
/// (all its revisions) or of a revision.
pub(super) async fn logs<T: Object>(
    State(state): Api,
    At((ns, name)): At<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (kind, ns, name) = (T::PLURAL, ns.as_str(), name.as_str());
    let last = tail(&uri);
    let store = &state.ctx.store;
    let revisions: Vec<Revision> = if kind == "services" {
        store
            .list::<Revision>(Some(ns))
            .await?
            .into_iter()
            .filter(|r| {
                r.metadata
                    .labels
                    .get(keys::SERVICE_LABEL)
                    .map(String::as_str)
                    == Some(name)
            })
            .collect()
    } else {
        store.get::<Revision>(ns, name).await?.into_iter().collect()
    };
    if revisions.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{kind} {ns}/{name} not found, or it has no revisions"
        )));
    }
    let runtime = state.ctx.fleet.runtime();
    let mut replicas = Vec::new();
    for rev in &revisions {
        let uid = rev.metadata.uid.clone().unwrap_or_default();
        for id in state.ctx.fleet.replica_ids(&uid) {
            let lines = runtime.logs(&id, last).await.unwrap_or_default();
            replicas.push(json!({
                "revision": rev.name(),
                "replica": paas_runtime::short(&id),
                "lines": lines,
            }));
        }
    }
    Ok(Json(json!({ "replicas": replicas })).into_response())
}

/// `?tail=N` of the logs view: how many lines of each replica, 100 when it is absent
/// or not a number.
fn tail(uri: &Uri) -> usize {
    #[derive(Deserialize)]
    struct Params {
        tail: Option<String>,
    }
    Query::<Params>::try_from_uri(uri)
        .ok()
        .and_then(|Query(p)| p.tail?.parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_100_unless_a_number_is_given() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(tail(&uri("/x?tail=5&dryRun=All")), 5);
        assert_eq!(tail(&uri("/x?tailx=5")), 100);
        assert_eq!(tail(&uri("/x?tail=many")), 100);
        assert_eq!(tail(&uri("/x")), 100);
    }
}
