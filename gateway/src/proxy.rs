//! Forwarding one request to one replica.

use std::sync::Arc;

use http::header::HeaderValue;
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Request, Response, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::body::{Checkout, InFlight, ProxyBody};
use crate::error::ProxyError;
use crate::forwarded::{set_forwarded, strip_hop_by_hop};
use crate::host::request_host;
use crate::metrics::GatewayMetrics;
use crate::pool::Pool;
use crate::route_table::RoutingTable;

/// Attempts at sending one request when pooled connections turn out closed; only
/// requests that never left the gateway are sent again.
const SEND_ATTEMPTS: usize = 3;

/// Bodies up to this size, with a Content-Length, are read whole before answering.
const SMALL_BODY: u64 = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Proxy {
    table: Arc<RoutingTable>,
    pool: Arc<Pool>,
    pub(crate) metrics: Arc<GatewayMetrics>,
}

impl Proxy {
    pub(crate) fn new(table: Arc<RoutingTable>, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            table,
            pool: Pool::new(),
            metrics,
        }
    }

    /// The request's journey; failures become answers here and nowhere else.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        client: Option<HeaderValue>,
    ) -> Response<ProxyBody> {
        let resp = match self.forward(req, client).await {
            Ok(resp) => resp,
            Err(e) => {
                match &e {
                    ProxyError::UnknownHost { .. } | ProxyError::NoHost => {
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

    async fn forward(
        &self,
        req: Request<Incoming>,
        client: Option<HeaderValue>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let route = {
            let host = request_host(&req).ok_or(ProxyError::NoHost)?;
            self.table
                .route(&host)
                .ok_or_else(|| ProxyError::UnknownHost {
                    host: host.into_owned(),
                })?
        };
        let revision = route
            .pick_revision()
            .ok_or_else(|| ProxyError::NoReadyReplica {
                revision: route.name.clone(),
            })?
            .clone();
        let endpoint = revision.pick().ok_or_else(|| ProxyError::NoReadyReplica {
            revision: revision.key.to_string(),
        })?;
        let guard = InFlight::start(endpoint.clone(), revision.clone());

        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        set_forwarded(&mut parts.headers, client);
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(endpoint.authority.clone());
        uri.path_and_query = Some(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        parts.uri = Uri::from_parts(uri).unwrap_or_default();
        parts.version = Version::HTTP_11;

        let timeout = revision.timeout();
        let addr = endpoint.addr;
        let exchange = async {
            let mut req = Request::from_parts(parts, body);
            let mut attempt = 1;
            loop {
                let mut sender =
                    self.pool
                        .checkout(addr)
                        .await
                        .map_err(|source| ProxyError::Connect {
                            revision: revision.key.to_string(),
                            addr,
                            source,
                        })?;
                match sender.try_send_request(req).await {
                    Ok(resp) => return Ok((resp, sender)),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if attempt < SEND_ATTEMPTS => {
                            req = unsent;
                            attempt += 1;
                        }
                        _ => {
                            return Err(ProxyError::Upstream {
                                revision: revision.key.to_string(),
                                addr,
                                source: e.into_error(),
                            })
                        }
                    },
                }
            }
        };
        let (resp, sender) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProxyError::Timeout {
                revision: revision.key.to_string(),
                secs: timeout.as_secs(),
            })??;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);

        // A small body of known length is read whole before answering, so that head and
        // body leave in one write and the connection is free for the next request at
        // once. Anything larger, or of unknown length, streams.
        if body.size_hint().exact().is_some_and(|n| n <= SMALL_BODY) {
            let bytes = tokio::time::timeout(timeout, body.collect())
                .await
                .map_err(|_| ProxyError::Timeout {
                    revision: revision.key.to_string(),
                    secs: timeout.as_secs(),
                })?
                .map_err(|source| ProxyError::Upstream {
                    revision: revision.key.to_string(),
                    addr,
                    source,
                })?
                .to_bytes();
            self.pool.checkin(addr, sender);
            drop(guard);
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
            ProxyBody::upstream(body, guard, checkout),
        ))
    }
}
