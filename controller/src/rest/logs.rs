//! Replica logs of a service or revision.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use paas_api::{keys, Object, Revision};
use serde_json::json;

use super::{json_response, ApiError, ApiState};
use crate::store::StoreExt;

pub(super) async fn logs(
    state: &ApiState,
    kind: &str,
    ns: &str,
    name: &str,
    tail: usize,
) -> Result<Response<Full<Bytes>>, ApiError> {
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
            let lines = runtime.logs(&id, tail).await.unwrap_or_default();
            replicas.push(json!({
                "revision": rev.name(),
                "replica": paas_runtime::short(&id),
                "lines": lines,
            }));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "replicas": replicas }),
        &[],
    ))
}
