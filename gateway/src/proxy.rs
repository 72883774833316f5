//! Forwarding one request to one replica.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::{CountedBody, InFlight};
use crate::error::ProxyError;
use crate::forwarded::{set_forwarded, strip_hop_by_hop};
use crate::host::request_host;
use crate::metrics::GatewayMetrics;
use crate::route_table::RoutingTable;

pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

#[derive(Debug)]
pub(crate) struct Proxy {
    table: Arc<RoutingTable>,
    client: Client<HttpConnector, Incoming>,
    pub(crate) metrics: Arc<GatewayMetrics>,
}

impl Proxy {
    pub(crate) fn new(table: Arc<RoutingTable>, metrics: Arc<GatewayMetrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(true);
        // Keep-alive connections to replicas are pooled and reused across requests.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self {
            table,
            client,
            metrics,
        }
    }

    /// The request's journey; failures become answers here and nowhere else.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
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
                e.into_response()
                    .map(|b| b.map_err(|never| match never {}).boxed_unsync())
            }
        };
        self.metrics.count_response(resp.status());
        resp
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let host = request_host(&req).ok_or(ProxyError::NoHost)?;
        let route = self
            .table
            .route(&host)
            .ok_or(ProxyError::UnknownHost { host })?;
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
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(endpoint.addr.to_string())
            .path_and_query(path)
            .build()
            .unwrap_or_default();
        parts.version = Version::HTTP_11;

        let timeout = revision.timeout();
        let sent = self.client.request(Request::from_parts(parts, body));
        let resp = tokio::time::timeout(timeout, sent)
            .await
            .map_err(|_| ProxyError::Timeout {
                revision: revision.key.to_string(),
                secs: timeout.as_secs(),
            })?
            .map_err(|source| ProxyError::Upstream {
                revision: revision.key.to_string(),
                addr: endpoint.addr,
                source,
            })?;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            CountedBody::new(body, guard).boxed_unsync(),
        ))
    }
}
