//! Every kind of the table of kinds on the REST API, by its apiVersion and plural: the
//! routes come from the table (`routes`), each kind's calls are generic over its type.
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

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use paas_api::kinds::{self, english_list, KindVisitor, Writes, KINDS};
use paas_api::Object;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::admission::admit;
use super::limit::Manifest;
use super::{read_object, to_json, ApiError, ApiState, Warnings};
use crate::store::{key_of, ObjectKey, StoreError, StoreExt};

type Answer = Result<Response, ApiError>;
type Routes = Router<Arc<ApiState>>;

/// Every kind's routes.
pub(super) fn routes() -> Routes {
    KINDS.iter().fold(Router::new(), |routes, kind| {
        routes.merge(kind.visit(KindRoutes))
    })
}

struct KindRoutes;

impl KindVisitor for KindRoutes {
    type Output = Routes;

    fn visit<T: Object>(self) -> Routes {
        kind_routes::<T>()
    }
}

/// One kind's calls: list (all or one namespace), get, create, replace, delete, and
/// the views it has.
fn kind_routes<T: Object>() -> Routes {
    let info = T::INFO;
    let apis = format!("/apis/{}", info.api_version);
    let collection = format!("{apis}/namespaces/{{ns}}/{}", info.plural);
    let object = format!("{collection}/{{name}}");
    let (mut in_namespace, mut one) = (get(list_in::<T>), get(get_one::<T>));
    if info.writable() {
        in_namespace = in_namespace.post(create::<T>);
        one = one.put(replace::<T>).delete(delete::<T>);
    }
    let mut routes = Router::new()
        .route(
            &format!("{apis}/{}", info.plural),
            get(list_all::<T>).fallback(not_allowed),
        )
        .route(&collection, in_namespace.fallback(not_allowed))
        .route(&object, one.fallback(not_allowed));
    let views = [
        ("logs", info.has_logs, get(super::logs::logs::<T>)),
        (
            "autoscaler",
            info.has_autoscaler,
            get(super::autoscaler_view),
        ),
        (
            "deliveries",
            info.has_deliveries,
            get(super::deliveries::deliveries::<T>),
        ),
    ];
    for (view, has, call) in views {
        if has {
            routes = routes.route(&format!("{object}/{view}"), call.fallback(not_allowed));
        }
    }
    routes
}

/// A method the path does not take.
async fn not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// What no route serves: a path under no apiVersion is 404; under one, a plural the
/// version does not have is 404 naming those it has, and any other path 405, as a
/// view the kind does not have is.
pub(super) async fn unrouted(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    let Some((api_version, rest)) = under_api_version(path) else {
        return ApiError::NotFound(format!("no API at {path}"));
    };
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let plural = match parts[..] {
        [plural] | ["namespaces", _, plural, ..] if parts.len() <= 5 => plural,
        _ => return not_allowed(method, uri).await,
    };
    if kinds::by_plural(api_version, plural).is_some() {
        return not_allowed(method, uri).await;
    }
    let plurals: Vec<&str> = KINDS
        .iter()
        .filter(|k| k.api_version == api_version)
        .map(|k| k.plural)
        .collect();
    ApiError::NotFound(format!(
        "no {plural} in {api_version}: it has {}",
        english_list(&plurals, "and")
    ))
}

/// The apiVersion a path is under, and the rest of the path after its `/`.
fn under_api_version(path: &str) -> Option<(&'static str, &str)> {
    kinds::api_versions()
        .into_iter()
        .find_map(|v| Some((v, path.strip_prefix(&format!("/apis/{v}/"))?)))
}

/// A path under an apiVersion without its empty segments (`.../services/` is
/// `.../services`), as clients have always been answered; done before routing, which
/// matches segments exactly.
pub(super) fn normalize_path<B>(mut req: Request<B>) -> Request<B> {
    let Some((api_version, rest)) = under_api_version(req.uri().path()) else {
        return req;
    };
    if rest.split('/').any(str::is_empty) {
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        // Made of a valid path's segments and query, it parses.
        if let Ok(uri) = format!("/apis/{api_version}/{}{query}", parts.join("/")).parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The path's captures (namespace, name), percent-decoded; one that is not UTF-8 once
/// decoded is refused in the API's words rather than axum's.
pub(super) struct At<T>(pub(super) T);

impl<T, S> FromRequestParts<S> for At<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Self(t)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Whether a write is only to be checked (see `dry_run`). Read before the body, so
/// that a wrong mode is said before a body over the limit.
struct DryRun(bool);

impl<S: Send + Sync> FromRequestParts<S> for DryRun {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        dry_run(&parts.uri).map(Self)
    }
}

/// `?dryRun=All`, as Kubernetes says it; no other mode.
fn dry_run(uri: &Uri) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "dryRun")]
        dry_run: Option<String>,
    }
    let Query(params) =
        Query::<Params>::try_from_uri(uri).map_err(|e| ApiError::BadRequest(e.body_text()))?;
    match params.dry_run.as_deref() {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "dryRun={other} is not a dry-run mode: use dryRun=All, or leave it out to write"
        ))),
    }
}

pub(super) type Api = State<Arc<ApiState>>;

async fn list_all<T: Object>(State(state): Api) -> Answer {
    list::<T>(&state, None).await
}

async fn list_in<T: Object>(State(state): Api, At(ns): At<String>) -> Answer {
    list::<T>(&state, Some(&ns)).await
}

async fn get_one<T: Object>(State(state): Api, At((ns, name)): At<(String, String)>) -> Answer {
    match state.ctx.store.get::<T>(&ns, &name).await? {
        Some(o) => Ok(Json(to_json(&o)).into_response()),
        None => Err(not_found::<T>(&ns, &name, "")),
    }
}

async fn create<T: Object>(
    State(state): Api,
    At(ns): At<String>,
    DryRun(dry): DryRun,
    Manifest(body): Manifest,
) -> Answer {
    let o: T = read(&body, &ns, None)?;
    let warnings = check(&state, &o).await?;
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
    Ok((
        StatusCode::CREATED,
        Warnings(warnings),
        Json(to_json(&created)),
    )
        .into_response())
}

async fn replace<T: Object>(
    State(state): Api,
    At((ns, name)): At<(String, String)>,
    DryRun(dry): DryRun,
    Manifest(body): Manifest,
) -> Answer {
    let o: T = read(&body, &ns, Some(&name))?;
    let warnings = check(&state, &o).await?;
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
    let answer = if dry {
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
        next
    } else {
        store.update(&next).await?
    };
    Ok((Warnings(warnings), Json(to_json(&answer))).into_response())
}

/// Delete an object, and the objects of the kinds it owns that carry its name.
async fn delete<T: Object>(
    State(state): Api,
    At((ns, name)): At<(String, String)>,
    DryRun(dry): DryRun,
) -> Answer {
    let store = &state.ctx.store;
    let found = if dry {
        store.get::<T>(&ns, &name).await?.is_some()
    } else {
        store.delete::<T>(&ns, &name).await?
    };
    if !found {
        return Err(not_found::<T>(&ns, &name, ""));
    }
    if !dry {
        // Owned objects go with their owner, as Kubernetes' garbage collector would do.
        for owned in T::INFO.owned() {
            let Some(owner) = owned.owner else { continue };
            for o in store.list_raw(owned.kind, Some(&ns)).await? {
                if o["metadata"]["labels"][owner.label] != name.as_str() {
                    continue;
                }
                let key = ObjectKey {
                    kind: owned.kind,
                    namespace: ns.clone(),
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
    Ok(Json(json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "details": {"name": name, "kind": T::PLURAL}})).into_response())
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
    Ok(Json(json!({"apiVersion": "v1", "kind": "List", "items": items})).into_response())
}

fn not_found<T: Object>(ns: &str, name: &str, next: &str) -> ApiError {
    ApiError::NotFound(format!("{} {ns}/{name} not found{next}", T::PLURAL))
}

/// A body as the kind's object, in the path's namespace and under its name, made ready
/// to write (see `Object::prepare_write`).
fn read<T: Object>(body: &[u8], ns: &str, name: Option<&str>) -> Result<T, ApiError> {
    let mut o: T = read_object(body, ns, name)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_is_all_or_nothing_else() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(!dry_run(&uri("/x")).unwrap());
        assert!(!dry_run(&uri("/x?tail=5")).unwrap());
        assert!(dry_run(&uri("/x?dryRun=All")).unwrap());
        assert!(dry_run(&uri("/x?x=1&dryRun=All")).unwrap());
        let e = dry_run(&uri("/x?dryRun=true")).unwrap_err();
        assert!(e.to_string().contains("use dryRun=All"), "{e}");
    }

    #[test]
    fn empty_segments_under_an_api_version_are_dropped_before_routing() {
        let normal = |path: &str| {
            let req = Request::get(path).body(()).unwrap();
            normalize_path(req).uri().to_string()
        };
        assert_eq!(
            normal("/apis/serving.knative.dev/v1/namespaces//default/services/?dryRun=All"),
            "/apis/serving.knative.dev/v1/namespaces/default/services?dryRun=All"
        );
        assert_eq!(
            normal("/apis/serving.knative.dev/v1/services"),
            "/apis/serving.knative.dev/v1/services"
        );
        // Elsewhere a path is left as it came: the 404 names it.
        assert_eq!(normal("//apis/x/"), "//apis/x/");
        assert_eq!(normal("/metrics/"), "/metrics/");
    }
}
