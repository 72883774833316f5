//! Forwarding one request to one replica.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Method, Request, Response, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use paas_activator::{AcquireError, Capacity, Poke};
use tokio::time::{timeout_at, Instant};

use crate::body::{Checkout, ProxyBody};
use crate::error::ProxyError;
use crate::forwarded::{set_forwarded, strip_hop_by_hop};
use crate::handler::{HandlerBody, HostHandler};
use crate::host::request_host;
use crate::limits::GatewayLimits;
use crate::metrics::GatewayMetrics;
use crate::pool::{Pool, UpstreamBody};
use crate::route_table::RoutingTable;

/// Attempts at one request when replicas refuse connections or pooled connections turn
/// out closed; these requests never reached a replica, so any may be sent again.
const SEND_ATTEMPTS: usize = 3;

/// Bodies up to this size, with a Content-Length, are read whole before answering.
const SMALL_BODY: u64 = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Proxy {
    table: Arc<RoutingTable>,
    pool: Arc<Pool>,
    poke: Arc<dyn Poke>,
    handlers: Arc<HashMap<String, Arc<dyn HostHandler>>>,
    pub(crate) metrics: Arc<GatewayMetrics>,
    /// Body bytes one request to a handler may hold, and how long it may take to come.
    ingress_request_bytes: usize,
    ingress_body_timeout: Duration,
}

impl Proxy {
    pub(crate) fn new(
        table: Arc<RoutingTable>,
        metrics: Arc<GatewayMetrics>,
        poke: Arc<dyn Poke>,
        handlers: Arc<HashMap<String, Arc<dyn HostHandler>>>,
        limits: &GatewayLimits,
    ) -> Self {
        Self {
            table,
            pool: Pool::new(),
            poke,
            handlers,
            metrics,
            ingress_request_bytes: limits.ingress_request_bytes,
            ingress_body_timeout: limits.ingress_body_timeout,
        }
    }

    /// The request's journey; failures become answers here and nowhere else.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        client: Option<HeaderValue>,
    ) -> Response<ProxyBody> {
        if !self.handlers.is_empty() {
            // A request without one clear host is refused by `forward` below.
            let handler = request_host(&req)
                .ok()
                .and_then(|h| self.handlers.get(h.as_ref()).cloned());
            if let Some(handler) = handler {
                let resp = match self.answer_locally(&*handler, req).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        tracing::debug!(error = %e, "request refused");
                        e.into_response()
                    }
                };
                self.metrics.count_response(resp.status());
                return resp.map(ProxyBody::Local);
            }
        }
        let resp = match self.forward(req, client).await {
            Ok(resp) => resp,
            Err(e) => {
                match &e {
                    ProxyError::UnknownHost { .. } | ProxyError::NoHost | ProxyError::TwoHosts => {
                        tracing::debug!(error = %e, "request refused")
                    }
                    _ => tracing::warn!(error = %e, "request failed"),
                }
                e.into_response().map(ProxyBody::Local)
            }
        };
        self.metrics.count_response(resp.status());
        resp
    }

    /// Hand the request to an in-process host, once the body bytes it may hold fit in
    /// the ingress budget: its Content-Length, or the most one request may hold when
    /// the length is unknown (chunked).
    async fn answer_locally(
        &self,
        handler: &dyn HostHandler,
        req: Request<Incoming>,
    ) -> Result<Response<Full<bytes::Bytes>>, ProxyError> {
        let most = self.ingress_request_bytes;
        let share = req
            .body()
            .size_hint()
            .exact()
            .map_or(most, |n| usize::try_from(n).unwrap_or(most).min(most));
        let budget = &self.metrics.ingress_bytes;
        let Some(held) = budget.try_take(share) else {
            self.metrics.ingress_refused.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::IngressFull {
                limit: budget.limit(),
            });
        };
        let resp = handler
            .handle(req.map(|body| HandlerBody::new(body, most, self.ingress_body_timeout)))
            .await;
        drop(held);
        Ok(resp)
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        client: Option<HeaderValue>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let route = {
            let host = request_host(&req)?;
            self.table
                .route(&host)
                .ok_or_else(|| ProxyError::UnknownHost {
                    host: host.into_owned(),
                })?
        };
        let Some(revision) = route.pick_revision().cloned() else {
            return Err(match &route.unavailable {
                Some(why) => ProxyError::NotReady {
                    service: route.name.clone(),
                    why: why.clone(),
                },
                None => ProxyError::UnknownHost {
                    host: route.name.clone(),
                },
            });
        };
        let started = Instant::now();
        let result = self.forward_to(&revision, req, client).await;
        let status = match &result {
            Ok(resp) => resp.status(),
            Err(e) => e.status(),
        };
        revision.outcomes.record(status.as_u16(), started.elapsed());
        result
    }

    /// Send the request to a replica of `revision`, waiting for one if need be.
    async fn forward_to(
        &self,
        revision: &Arc<Capacity>,
        req: Request<Incoming>,
        client: Option<HeaderValue>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let timeout = revision.timeout();
        // timeoutSeconds covers waiting for a replica as well as its answer.
        let deadline = Instant::now() + timeout;
        let timed_out = || ProxyError::Timeout {
            revision: revision.key.to_string(),
            secs: timeout.as_secs(),
        };

        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        set_forwarded(&mut parts.headers, client);
        parts.version = Version::HTTP_11;
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // A request that changes nothing and carries no body may be sent again when its
        // replica fails it before answering (a crash mid-request), as Knative's
        // activator does; it is rebuilt from a copy of its head, since hyper keeps a
        // request it sent.
        let replay = (may_resend(&parts.method) && body.is_end_stream())
            .then(|| (parts.method.clone(), parts.headers.clone()));
        let body: UpstreamBody = if replay.is_some() {
            Either::Right(Empty::new())
        } else {
            Either::Left(body)
        };
        let mut req = Request::from_parts(parts, body);

        let mut attempt = 1;
        let mut replayed = false;
        let (resp, sender, permit) = loop {
            let permit = revision
                .acquire(deadline, &*self.poke)
                .await
                .map_err(|e| acquire_error(&e, revision, timeout))?;
            let endpoint = permit.endpoint().clone();
            // Origin form: the connection already says where; replicas route on the path.
            *req.uri_mut() = Uri::from(path.clone());
            let mut sender = match timeout_at(deadline, self.pool.checkout(endpoint.addr)).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(s)) => s,
                Ok(Err(source)) => {
                    // Nothing was sent: another replica can take the request.
                    endpoint.mark_failed();
                    if attempt < SEND_ATTEMPTS {
                        attempt += 1;
                        continue;
                    }
                    return Err(ProxyError::Connect {
                        revision: revision.key.to_string(),
                        addr: endpoint.addr,
                        source,
                    });
                }
            };
            match timeout_at(deadline, sender.try_send_request(req)).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(resp)) => break (resp, sender, permit),
                Ok(Err(mut e)) => {
                    if let Some(unsent) = e.take_message().filter(|_| attempt < SEND_ATTEMPTS) {
                        req = unsent;
                        attempt += 1;
                        continue;
                    }
                    let source = e.into_error();
                    match &replay {
                        Some((method, headers)) if !replayed && connection_failed(&source) => {
                            tracing::debug!(revision = %revision.key, replica = %endpoint.addr, error = %source, "replica failed a request before answering; sending it again");
                            // Route around the replica until the fleet sees what became of it.
                            endpoint.mark_failed();
                            replayed = true;
                            req = rebuild(method, headers);
                        }
                        _ => {
                            return Err(ProxyError::Upstream {
                                revision: revision.key.to_string(),
                                addr: endpoint.addr,
                                source,
                            })
                        }
                    }
                }
            }
        };
        let addr = permit.endpoint().addr;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);

        // A small body of known length is read whole before answering, so that head and
        // body leave in one write and the connection is free for the next request at
        // once. Anything larger, or of unknown length, streams.
        if body.size_hint().exact().is_some_and(|n| n <= SMALL_BODY) {
            let bytes = timeout_at(deadline, body.collect())
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| ProxyError::Upstream {
                    revision: revision.key.to_string(),
                    addr,
                    source,
                })?
                .to_bytes();
            self.pool.checkin(addr, sender);
            drop(permit);
            return Ok(Response::from_parts(
                parts,
                ProxyBody::Local(Full::new(bytes)),
            ));
        }
        let checkout = Checkout {
            pool: self.pool.clone(),
            addr,
            sender,
        };
        Ok(Response::from_parts(
            parts,
            ProxyBody::upstream(body, permit, checkout),
        ))
    }
}

/// Requests the gateway may send twice: those of safe methods (RFC 9110 §9.2.1), which
/// a replica does not act on. PUT and DELETE are idempotent too, but a replica that
/// failed mid-request may have done half of one.
fn may_resend(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The connection to the replica broke before an answer came: closed, reset or
/// cancelled, rather than an answer the gateway could not read.
fn connection_failed(e: &hyper::Error) -> bool {
    e.is_incomplete_message()
        || e.is_closed()
        || e.is_canceled()
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// A bodiless request again, from a copy of its head; the URI is set per attempt.
fn rebuild(method: &Method, headers: &HeaderMap) -> Request<UpstreamBody> {
    let mut req = Request::new(Either::Right(Empty::new()));
    *req.method_mut() = method.clone();
    *req.headers_mut() = headers.clone();
    *req.version_mut() = Version::HTTP_11;
    req
}

fn acquire_error(
    e: &AcquireError,
    revision: &Capacity,
    timeout: std::time::Duration,
) -> ProxyError {
    match e {
        AcquireError::QueueFull { waiting, .. } => ProxyError::Overloaded {
            revision: revision.key.to_string(),
            waiting: *waiting,
        },
        AcquireError::Timeout { .. } => ProxyError::NoCapacity {
            revision: revision.key.to_string(),
            secs: timeout.as_secs(),
        },
    }
}
