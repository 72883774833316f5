//! The REST API on 127.0.0.1:7070: Knative-shaped resource paths for every kind of the
//! table of kinds (see `objects`), every call but `/healthz` authenticated with the
//! bearer token.
//!
//! ```text
//! GET    /healthz                                                     the store's health
//! GET    /metrics                                                     Prometheus
//! *      /apis/{apiVersion}/...                                       objects.rs
//! ```

mod admission;
mod deliveries;
mod error;
mod logs;
mod objects;
pub mod token;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use paas_api::{Object, TypeMeta};
use paas_gateway::Gateway;
use serde_json::json;
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::reconcile::Context;

/// Requests larger than this are refused: manifests are small.
pub(crate) const MAX_BODY: usize = 4 << 20;

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

pub async fn serve_with(listener: TcpListener, state: ApiState, limits: ApiLimits) {
    let state = Arc::new(state);
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
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
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

async fn handle(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = route(state, req).await;
    match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(%method, %path, error = %e, "API call refused");
            e.into_response()
        }
    }
}

fn authorized(state: &ApiState, req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(token::bearer)
        .is_some_and(|t| token::matches(&state.token, t))
}

async fn route(
    state: &ApiState,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        // Up means able to serve: a store that no longer reads is not up.
        return Ok(match state.ctx.store.health().await {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")),
        });
    }
    if !authorized(state, &req) {
        return Err(ApiError::Unauthorized);
    }
    if path == "/metrics" {
        let mut out = String::new();
        state.gateway.render_metrics(&mut out);
        state.ctx.autoscaler.render_metrics(&mut out);
        state.ingress.render_metrics(&mut out);
        state.channels.render_metrics(&mut out);
        state.ctx.dispatchers.render_metrics(&mut out);
        return Ok(text(StatusCode::OK, out));
    }
    let Some((api_version, rest)) = paas_api::kinds::api_versions()
        .into_iter()
        .find_map(|v| Some((v, path.strip_prefix(&format!("/apis/{v}/"))?)))
    else {
        return Err(ApiError::NotFound(format!("no API at {path}")));
    };
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    objects::route(state, req, api_version, &parts).await
}

/// `GET .../revisions/{name}/autoscaler`: what the autoscaler sees and decides.
fn autoscaler_view(
    state: &ApiState,
    ns: &str,
    name: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let key = paas_api::RevisionKey {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    };
    let Some(v) = state.ctx.autoscaler.view(&key) else {
        return Err(ApiError::NotFound(format!(
            "the autoscaler does not know revision {ns}/{name}"
        )));
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "metric": v.metric,
            "target": v.target,
            "desired": v.desired,
            "ready": v.ready,
            "stable": v.stable,
            "panic": v.panic,
            "mode": if v.panicking { "panic" } else { "stable" },
            "excessBurstCapacity": v.excess_burst_capacity,
        }),
        &[],
    ))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

pub(crate) fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    warnings: &[String],
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        // The Kubernetes convention: `Warning: 299 - "text"`.
        let value = format!("299 - {:?}", w.replace('"', "'"));
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

pub(crate) fn to_json<T: Object>(o: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    v["apiVersion"] = T::API_VERSION.into();
    v["kind"] = T::KIND.into();
    v
}

/// A request's body, refused with 413 once it is over `limit`: at once when its
/// Content-Length says so, else when that many bytes have come.
async fn read_body<B>(req: Request<B>, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(e) => Err(ApiError::BadRequest(format!("reading the body: {e}"))),
    }
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
pub(crate) async fn read_object<T: Object>(
    req: Request<Incoming>,
    ns: &str,
    name: Option<&str>,
) -> Result<T, ApiError> {
    let body = read_body(req, MAX_BODY).await?;
    check_type::<T>(&body)?;
    let de = &mut serde_json::Deserializer::from_slice(&body);
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

    #[tokio::test]
    async fn a_body_without_a_length_is_refused_with_413_once_over_the_limit() {
        let body = |n: usize| Request::new(Full::new(Bytes::from(vec![b'x'; n])));
        assert!(matches!(
            read_body(body(11), 10).await,
            Err(ApiError::PayloadTooLarge { limit: 10 })
        ));
        assert_eq!(read_body(body(10), 10).await.unwrap().len(), 10);
    }

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
