//! Every way the proxy fails a request, and the one place that turns them into answers.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no Host header: send the request to http://NAME.NAMESPACE.localhost:PORT/")]
    NoHost,
    #[error("more than one Host header: send exactly one, naming the service (NAME.NAMESPACE.localhost)")]
    TwoHosts,
    #[error("the ingress has no room for this request's body: it holds {limit} bytes of requests at most; retry later")]
    IngressFull { limit: usize },
    #[error("no service at host {host}: check the name and namespace (paas get services -A), or deploy one with `paas deploy NAME --image IMAGE`")]
    UnknownHost { host: String },
    #[error("service {service} is not ready: {why}; see `paas describe ksvc` for its revisions")]
    NotReady { service: String, why: String },
    #[error("{revision} has {waiting} requests waiting for a replica already; retry later")]
    Overloaded { revision: String, waiting: usize },
    #[error("{revision} did not answer within {secs} s (timeoutSeconds)")]
    Timeout { revision: String, secs: u64 },
    #[error("no replica of {revision} was free within {secs} s (timeoutSeconds); it may be scaling from zero or at its concurrency limit")]
    NoCapacity { revision: String, secs: u64 },
    #[error("{revision} replica at {addr} cannot be reached: {source}")]
    Connect {
        revision: String,
        addr: std::net::SocketAddr,
        #[source]
        source: crate::pool::ConnectError,
    },
    #[error("{revision} replica at {addr} failed: {source}")]
    Upstream {
        revision: String,
        addr: std::net::SocketAddr,
        #[source]
        source: hyper::Error,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoHost | ProxyError::TwoHosts => StatusCode::BAD_REQUEST,
            ProxyError::UnknownHost { .. } => StatusCode::NOT_FOUND,
            ProxyError::Overloaded { .. }
            | ProxyError::IngressFull { .. }
            | ProxyError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout { .. } | ProxyError::NoCapacity { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The answer the client gets: the status and one line saying what happened.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut resp = Response::new(Full::new(Bytes::from(format!("{self}\n"))));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}
