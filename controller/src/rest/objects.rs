//! Every kind of the table of kinds on the REST API, by its apiVersion and plural.
//!
//! ```text
//! GET    /apis/{apiVersion}/{plural}                                    all namespaces
//! GET    /apis/{apiVersion}/namespaces/{ns}/{plural}[/{name}]
//! POST   /apis/{apiVersion}/namespaces/{ns}/{plural}[?dryRun=All]       create
//! PUT    /apis/{apiVersion}/namespaces/{ns}/{plural}/{name}[?dryRun=All] replace
//! DELETE /apis/{apiVersion}/namespaces/{ns}/{plural}/{name}[?dryRun=All]
//! GET    /apis/{apiVersion}/namespaces/{ns}/{plural}/{name}/logs?tail=N      has_logs
//! GET    /apis/{apiVersion}/namespaces/{ns}/{plural}/{name}/autoscaler       has_autoscaler
//! GET    /apis/{apiVersion}/namespaces/{ns}/{plural}/{name}/deliveries       has_deliveries
//! ```
//!
//! Writes are for the kinds clients write (`KindInfo::writes`); the others are read
//! only. `?dryRun=All` (Kubernetes' parameter) makes every check of the write,
//! existence and resourceVersion included, and stores nothing: `paas apply` sends every
//! document so before it writes any, so that one the server refuses leaves the others
//! unapplied.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use paas_api::kinds::{self, english_list, KindVisitor, Writes, KINDS};
use paas_api::Object;
use serde_json::json;

use super::admission::admit;
use super::{json_response, read_object, to_json, ApiError, ApiState};
use crate::store::{key_of, ObjectKey, StoreError, StoreExt};

type Answer = Result<Response<Full<Bytes>>, ApiError>;

/// Serve `parts`, the path after `/apis/{api_version}/`.
pub(super) async fn route(
    state: &ApiState,
    req: Request<Incoming>,
    api_version: &'static str,
    parts: &[&str],
) -> Answer {
    let method = req.method().clone();
    let not_allowed = || ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/apis/{api_version}/{}", parts.join("/")),
    };
    let at = match parts {
        [plural] => At::new(None, plural, None, None),
        ["namespaces", ns, plural] => At::new(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => At::new(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => At::new(Some(ns), plural, Some(name), Some(sub)),
        _ => return Err(not_allowed()),
    };
    let Some(kind) = kinds::by_plural(api_version, at.plural) else {
        let plurals: Vec<&str> = KINDS
            .iter()
            .filter(|k| k.api_version == api_version)
            .map(|k| k.plural)
            .collect();
        return Err(ApiError::NotFound(format!(
            "no {} in {api_version}: it has {}",
            at.plural,
            english_list(&plurals, "and")
        )));
    };
    let query = req.uri().query().unwrap_or("").to_owned();
    kind.visit(Handle {
        state,
        req,
        at,
        query,
    })
    .await
    .map_err(|e| match e {
        ApiError::MethodNotAllowed { .. } => not_allowed(),
        e => e,
    })
}

/// What a path under an apiVersion names: a kind's collection (in a namespace or all),
/// one object, or one of an object's views (`logs`, `autoscaler`, `deliveries`).
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    ns: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    view: Option<&'a str>,
}

impl<'a> At<'a> {
    fn new(
        ns: Option<&'a str>,
        plural: &'a str,
        name: Option<&'a str>,
        view: Option<&'a str>,
    ) -> Self {
        Self {
            ns,
            plural,
            name,
            view,
        }
    }
}

/// A request for the kind the visit finds.
struct Handle<'a> {
    state: &'a ApiState,
    req: Request<Incoming>,
    at: At<'a>,
    query: String,
}

impl<'a> KindVisitor for Handle<'a> {
    type Output = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

    fn visit<T: Object>(self) -> Self::Output {
        Box::pin(handle::<T>(self.state, self.req, self.at, self.query))
    }
}

/// One kind's calls: list (all or one namespace), get, create, replace, delete, and
/// the views it has.
async fn handle<T: Object>(
    state: &ApiState,
    req: Request<Incoming>,
    at: At<'_>,
    query: String,
) -> Answer {
    let method = req.method().clone();
    let not_allowed = || ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: String::new(),
    };
    let info = T::INFO;
    if let Some(view) = at.view {
        let (&Method::GET, Some(ns), Some(name)) = (&method, at.ns, at.name) else {
            return Err(not_allowed());
        };
        return match view {
            "deliveries" if info.has_deliveries => {
                super::deliveries::deliveries::<T>(state, ns, name).await
            }
            "logs" if info.has_logs => {
                let tail = param(&query, "tail")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(100);
                super::logs::logs(state, info.plural, ns, name, tail).await
            }
            "autoscaler" if info.has_autoscaler => super::autoscaler_view(state, ns, name),
            _ => Err(not_allowed()),
        };
    }
    let writable = info.writable();
    match (&method, at.ns, at.name) {
        (&Method::GET, ns, None) => list::<T>(state, ns).await,
        (&Method::GET, Some(ns), Some(name)) => get::<T>(state, ns, name).await,
        (&Method::POST, Some(ns), None) if writable => {
            let dry = dry_run(&query)?;
            create::<T>(state, read(req, ns, None).await?, dry).await
        }
        (&Method::PUT, Some(ns), Some(name)) if writable => {
            let dry = dry_run(&query)?;
            replace::<T>(state, read(req, ns, Some(name)).await?, dry).await
        }
        (&Method::DELETE, Some(ns), Some(name)) if writable => {
            delete::<T>(state, ns, name, dry_run(&query)?).await
        }
        _ => Err(not_allowed()),
    }
}

/// A query parameter's value.
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Whether a write is only to be checked: `dryRun=All`, as Kubernetes says it.
fn dry_run(query: &str) -> Result<bool, ApiError> {
    match param(query, "dryRun") {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "dryRun={other} is not a dry-run mode: use dryRun=All, or leave it out to write"
        ))),
    }
}

async fn list<T: Object>(state: &ApiState, ns: Option<&str>) -> Answer {
    let items: Vec<_> = state
        .ctx
        .store
        .list::<T>(ns)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
        &[],
    ))
}

async fn get<T: Object>(state: &ApiState, ns: &str, name: &str) -> Answer {
    match state.ctx.store.get::<T>(ns, name).await? {
        Some(o) => Ok(json_response(StatusCode::OK, &to_json(&o), &[])),
        None => Err(not_found::<T>(ns, name, "")),
    }
}

fn not_found<T: Object>(ns: &str, name: &str, next: &str) -> ApiError {
    ApiError::NotFound(format!("{} {ns}/{name} not found{next}", T::PLURAL))
}

/// A body as the kind's object, in the path's namespace and under its name, made ready
/// to write (see `Object::prepare_write`).
async fn read<T: Object>(
    req: Request<Incoming>,
    ns: &str,
    name: Option<&str>,
) -> Result<T, ApiError> {
    let mut o: T = read_object(req, ns, name).await?;
    o.prepare_write();
    Ok(o)
}

/// The kind's own validation and the platform's rules; the warnings to answer with.
async fn check<T: Object>(state: &ApiState, o: &T) -> Result<Vec<String>, ApiError> {
    let report = o.validate();
    let mut causes: Vec<(String, String)> = report
        .errors
        .iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect();
    admit(state, o, &mut causes).await?;
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            kind: T::KIND,
            name: o.name().to_owned(),
            causes,
        });
    }
    Ok(report.warnings.iter().map(ToString::to_string).collect())
}

async fn create<T: Object>(state: &ApiState, o: T, dry: bool) -> Answer {
    let warnings = check(state, &o).await?;
    let store = &state.ctx.store;
    let created = if dry {
        if store.get::<T>(o.namespace(), o.name()).await?.is_some() {
            return Err(StoreError::AlreadyExists {
                key: key_of::<T>(o.namespace(), o.name()),
            }
            .into());
        }
        o
    } else {
        let created = store.create(&o).await?;
        tracing::info!(kind = T::KIND, name = %created.name(), namespace = %created.namespace(), "created");
        created
    };
    Ok(json_response(
        StatusCode::CREATED,
        &to_json(&created),
        &warnings,
    ))
}

async fn replace<T: Object>(state: &ApiState, o: T, dry: bool) -> Answer {
    let warnings = check(state, &o).await?;
    let store = &state.ctx.store;
    let Some(mut stored) = store.get::<T>(o.namespace(), o.name()).await? else {
        return Err(not_found::<T>(o.namespace(), o.name(), ": create it first"));
    };
    let stored_version = stored.meta().resource_version.clone();
    let next = match T::INFO.writes {
        Writes::SpecAndLabels => {
            stored.take_spec_and_labels(o);
            stored
        }
        Writes::Object | Writes::Derived => o,
    };
    if dry {
        // The store's own refusal: a resourceVersion the client read must still be
        // the stored one.
        if let Some(expected) = &next.meta().resource_version {
            if Some(expected) != stored_version.as_ref() {
                return Err(StoreError::Conflict {
                    key: key_of::<T>(next.namespace(), next.name()),
                    expected: expected.clone(),
                }
                .into());
            }
        }
        return Ok(json_response(StatusCode::OK, &to_json(&next), &warnings));
    }
    let updated = store.update(&next).await?;
    Ok(json_response(StatusCode::OK, &to_json(&updated), &warnings))
}

/// Delete an object, and the objects of the kinds it owns that carry its name.
async fn delete<T: Object>(state: &ApiState, ns: &str, name: &str, dry: bool) -> Answer {
    let store = &state.ctx.store;
    let found = if dry {
        store.get::<T>(ns, name).await?.is_some()
    } else {
        store.delete::<T>(ns, name).await?
    };
    if !found {
        return Err(not_found::<T>(ns, name, ""));
    }
    if !dry {
        // Owned objects go with their owner, as Kubernetes' garbage collector would do.
        for owned in T::INFO.owned() {
            let Some(owner) = owned.owner else { continue };
            for o in store.list_raw(owned.kind, Some(ns)).await? {
                if o["metadata"]["labels"][owner.label] != name {
                    continue;
                }
                let key = ObjectKey {
                    kind: owned.kind,
                    namespace: ns.to_owned(),
                    name: o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                store.delete_raw(&key).await?;
            }
        }
        tracing::info!(kind = T::KIND, %name, namespace = %ns, "deleted");
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "details": {"name": name, "kind": T::PLURAL}}),
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_is_all_or_nothing_else() {
        assert!(!dry_run("").unwrap());
        assert!(!dry_run("tail=5").unwrap());
        assert!(dry_run("dryRun=All").unwrap());
        assert!(dry_run("x=1&dryRun=All").unwrap());
        let e = dry_run("dryRun=true").unwrap_err();
        assert!(e.to_string().contains("use dryRun=All"), "{e}");
        assert_eq!(param("tail=5&dryRun=All", "tail"), Some("5"));
        assert_eq!(param("tailx=5", "tail"), None);
    }
}
