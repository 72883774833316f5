//! The REST API on 127.0.0.1:7070: Knative-shaped resource paths for every kind of the
//! table of kinds (see `objects`), every call but `/healthz` authenticated with the
//! bearer token.
//!
//! ```text
//! *      /healthz                                                     the store's health
//! *      /metrics                                                     Prometheus
//! *      /apis/{apiVersion}/...                                       objects.rs
//! ```

mod admission;
mod auth;
mod deliveries;
mod error;
mod limit;
mod logs;
mod objects;
pub mod token;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use axum::routing::any;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use paas_api::{Object, TypeMeta};
use paas_gateway::Gateway;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::reconcile::Context;

#[derive(Debug, Clone)]
pub struct ApiState {
    pub ctx: Arc<Context>,
    pub token: Arc<str>,
    pub gateway: Gateway,
    pub ingress: Arc<paas_eventing::ingress::BrokerIngress>,
    /// The channel ingress of flows.
    pub channels: Arc<paas_eventing::ingress::BrokerIngress>,
}

/// What one client may hold of the API.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// A request head must arrive within this long (also how long an idle keep-alive
    /// connection stays): a client trickling header bytes must not hold a task for ever.
    pub header_read_timeout: std::time::Duration,
    /// Connections open at once; beyond, new ones are closed. The API is for operators
    /// and their tools, not the public.
    pub max_connections: usize,
    /// Bytes of one request head.
    pub max_header_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
        }
    }
}

pub async fn serve(listener: TcpListener, state: ApiState) {
    serve_with(listener, state, ApiLimits::default()).await;
}

/// Serve the API on `listener`. The connections are hyper's own rather than
/// `axum::serve`'s, which has no header-read timeout, head size limit or cap on
/// connections (`ApiLimits`).
pub async fn serve_with(listener: TcpListener, state: ApiState, limits: ApiLimits) {
    let app = ServiceBuilder::new()
        .map_request(objects::normalize_path)
        .service(router(Arc::new(state)));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut failures = 0u32;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                failures = failures.saturating_add(1);
                let pause = std::time::Duration::from_millis(5 << failures.min(8));
                tracing::warn!(error = %e, ?pause, "the API could not accept a connection");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = limits.max_connections,
                "the API has too many connections open; closing a new one"
            );
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| app.clone().oneshot(req));
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

/// The API's routes and layers. A request meets, in order: its span (whose method and
/// path the log lines of the call carry, errors included), then, on every path but
/// `/healthz`, the bearer token's check and the body limit, then its route.
fn router(state: Arc<ApiState>) -> Router {
    objects::routes()
        .route("/metrics", any(metrics))
        .fallback(objects::unrouted)
        .layer(limit::layer())
        .layer(auth::layer(state.token.clone()))
        .route("/healthz", any(healthz))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    tracing::info_span!("api", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                // ApiError's response logs a failure, with its message.
                .on_failure(()),
        )
        .with_state(state)
}

/// Up means able to serve: a store that no longer reads is not up.
async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    match state.ctx.store.health().await {
        Ok(()) => text(StatusCode::OK, "ok\n".into()),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")),
    }
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let mut out = String::new();
    state.gateway.render_metrics(&mut out);
    state.ctx.autoscaler.render_metrics(&mut out);
    state.ingress.render_metrics(&mut out);
    state.channels.render_metrics(&mut out);
    state.ctx.dispatchers.render_metrics(&mut out);
    text(StatusCode::OK, out)
}

/// `GET .../revisions/{name}/autoscaler`: what the autoscaler sees and decides.
async fn autoscaler_view(
    State(state): objects::Api,
    objects::At((ns, name)): objects::At<(String, String)>,
) -> Result<Response, ApiError> {
    let key = paas_api::RevisionKey {
        namespace: ns.clone(),
        name: name.clone(),
    };
    let Some(v) = state.ctx.autoscaler.view(&key) else {
        return Err(ApiError::NotFound(format!(
            "the autoscaler does not know revision {ns}/{name}"
        )));
    };
    Ok(Json(json!({
        "metric": v.metric,
        "target": v.target,
        "desired": v.desired,
        "ready": v.ready,
        "stable": v.stable,
        "panic": v.panic,
        "mode": if v.panicking { "panic" } else { "stable" },
        "excessBurstCapacity": v.excess_burst_capacity,
    }))
    .into_response())
}

/// Prometheus' text format (also `/healthz`'s answer).
fn text(status: StatusCode, body: String) -> Response {
    const PLAIN: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    (status, [(header::CONTENT_TYPE, PLAIN)], body).into_response()
}

/// The warnings of a write, as Kubernetes answers them: a `Warning: 299 - "text"`
/// header each.
#[derive(Debug)]
struct Warnings(Vec<String>);

impl IntoResponseParts for Warnings {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for w in self.0 {
            let value = format!("299 - {:?}", w.replace('"', "'"));
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().append(header::WARNING, v);
            }
        }
        Ok(res)
    }
}

pub(crate) fn to_json<T: Object>(o: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    v["apiVersion"] = T::API_VERSION.into();
    v["kind"] = T::KIND.into();
    v
}

/// Refuse a body whose apiVersion or kind is not the one the path serves (a Deployment
/// sent to .../services), naming both; one that leaves them out takes the path's.
fn check_type<T: Object>(body: &[u8]) -> Result<(), ApiError> {
    let Ok(said) = serde_json::from_slice::<TypeMeta>(body) else {
        // Not even apiVersion and kind as strings: parsing as T says what is wrong.
        return Ok(());
    };
    let differs = |given: &str, expected: &str| !given.is_empty() && given != expected;
    if differs(&said.api_version, T::API_VERSION) || differs(&said.kind, T::KIND) {
        let shown = |s: &str| {
            if s.is_empty() {
                "(none)".to_owned()
            } else {
                s.to_owned()
            }
        };
        return Err(ApiError::BadRequest(format!(
            "this path takes {} (apiVersion: {}, kind: {}), but the body is apiVersion: {}, kind: {}: send it to its own kind's path, or fix apiVersion and kind",
            T::PLURAL,
            T::API_VERSION,
            T::KIND,
            shown(&said.api_version),
            shown(&said.kind),
        )));
    }
    Ok(())
}

/// Parse a request body as `T` (unknown fields name their path) and place it in the
/// namespace and under the name the path gives, refusing a body that says otherwise.
pub(crate) fn read_object<T: Object>(
    body: &[u8],
    ns: &str,
    name: Option<&str>,
) -> Result<T, ApiError> {
    check_type::<T>(body)?;
    let de = &mut serde_json::Deserializer::from_slice(body);
    let mut o: T = serde_path_to_error::deserialize(de)
        .map_err(|e| ApiError::BadRequest(format!("{}: {}", e.path(), e.inner())))?;
    let meta = o.meta_mut();
    match meta.namespace.as_deref() {
        None => meta.namespace = Some(ns.to_owned()),
        Some(n) if n != ns => {
            return Err(ApiError::BadRequest(format!(
                "metadata.namespace {n:?} does not match the namespace in the path {ns:?}"
            )))
        }
        _ => {}
    }
    if let Some(name) = name {
        if meta.name.is_empty() {
            meta.name = name.to_owned();
        } else if meta.name != name {
            return Err(ApiError::BadRequest(format!(
                "metadata.name {:?} does not match the name in the path {name:?}",
                meta.name
            )));
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paas_api::Service;

    #[test]
    fn a_body_of_another_kind_names_both() {
        let e = check_type::<Service>(br#"{"apiVersion": "apps/v1", "kind": "Deployment"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "this path takes services (apiVersion: serving.knative.dev/v1, kind: Service), but the body is apiVersion: apps/v1, kind: Deployment: send it to its own kind's path, or fix apiVersion and kind"
        );
        let e = check_type::<Service>(br#"{"kind": "Route"}"#).unwrap_err();
        assert!(
            e.to_string().contains("apiVersion: (none), kind: Route"),
            "{e}"
        );
        assert!(check_type::<Service>(br#"{"metadata": {"name": "x"}}"#).is_ok());
        assert!(check_type::<Service>(b"not json").is_ok());
    }
}
