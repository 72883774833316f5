//! Delivering events over HTTP in binary mode, through hyper-util's pooled client:
//! keep-alive connections per destination, closed once idle for [`IDLE_TIMEOUT`].
//! `*.localhost` names go to the loopback address, as browsers and curl resolve them,
//! so that subscriber URLs on the gateway work without DNS.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::cloudevent::{from_http, to_http_binary, CloudEvent};
use crate::delivery::{Attempt, Destination, Transport};

/// Answers larger than this are cut (a reply event is at most 1 MiB).
const MAX_RESPONSE: usize = 1 << 20;
/// Idle connections kept per destination.
const MAX_IDLE: usize = 256;
/// An idle connection is closed after this long: less than the gateway's keep-alive
/// limit (30 s, its `header_read_timeout`), so that the dispatcher ends an idle
/// connection before the gateway does and no event is sent on one it is closing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: Client<HttpConnector<LocalhostResolver>, Full<Bytes>>,
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpTransport {
    pub fn new() -> Self {
        Self::with_idle_timeout(IDLE_TIMEOUT)
    }

    fn with_idle_timeout(idle: Duration) -> Self {
        let mut connector = HttpConnector::new_with_resolver(LocalhostResolver(GaiResolver::new()));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .pool_max_idle_per_host(MAX_IDLE)
            .build(connector);
        Self { client }
    }

    async fn exchange(&self, to: &Destination, event: &CloudEvent) -> Result<Attempt, String> {
        let uri = to.uri()?.clone();
        let (headers, body) = to_http_binary(event);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        req.headers_mut().extend(headers);
        let resp = self.client.request(req).await.map_err(|e| {
            let why = causes(&e);
            if e.is_connect() {
                format!("connecting to {to}: {why}")
            } else {
                format!("sending to {to}: {why}")
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (parts, body) = resp.into_parts();
        // Read to its end, the connection goes back to the pool; cut short, it is closed.
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {to}: {e}"))?
            .to_bytes();
        // A 2xx carrying a CloudEvent is a reply; anything else in the body is not.
        let success = (200..300).contains(&status);
        let reply = if success && (!body.is_empty() || parts.headers.contains_key("ce-specversion"))
        {
            from_http(&parts.headers, body.clone())
                .ok()
                .and_then(|mut events| (events.len() == 1).then(|| events.remove(0)))
                .map(Box::new)
        } else {
            None
        };
        Ok(Attempt::Response {
            status,
            retry_after,
            body,
            reply,
        })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, to: &Destination, event: &CloudEvent, timeout: Duration) -> Attempt {
        match tokio::time::timeout(timeout, self.exchange(to, event)).await {
            Ok(Ok(attempt)) => attempt,
            Ok(Err(reason)) => Attempt::Failed { reason },
            Err(_) => Attempt::Failed {
                reason: format!("no answer from {to} within {} s", timeout.as_secs_f64()),
            },
        }
    }
}

/// An error and its causes, "what: why: why".
fn causes(error: &hyper_util::client::legacy::Error) -> String {
    // The client's own message ("client error (Connect)") says less than its causes.
    let mut parts = Vec::new();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// Resolves `localhost` and `*.localhost` to 127.0.0.1 (RFC 6761 lets them be), and
/// any other name with the system's resolver.
#[derive(Debug, Clone)]
struct LocalhostResolver(GaiResolver);

type Addresses = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for LocalhostResolver {
    type Response = Addresses;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addresses, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str();
        if host == "localhost" || host.ends_with(".localhost") {
            // The port is the URL's: the connector sets it.
            let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            return Box::pin(std::future::ready(Ok(vec![loopback].into_iter())));
        }
        let resolving = self.0.call(name);
        Box::pin(async move { Ok(resolving.await?.collect::<Vec<_>>().into_iter()) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// What a test subscriber saw.
    #[derive(Debug, Default)]
    struct Seen {
        connections: AtomicUsize,
        /// Connections the client closed.
        closed: AtomicUsize,
        hosts: Mutex<Vec<String>>,
    }

    /// A subscriber on 127.0.0.1 that answers `status`, counting the connections it
    /// accepted and recording each request's Host header.
    async fn subscriber(status: u16) -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let recorded = s.clone();
                    let service = service_fn(move |req: Request<Incoming>| {
                        let host = req.headers()[header::HOST].to_str().unwrap().to_owned();
                        recorded.hosts.lock().unwrap().push(host);
                        async move {
                            let _ = req.into_body().collect().await;
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"answer")))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    s.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (port, seen)
    }

    fn event() -> CloudEvent {
        CloudEvent::new("1", "/s", "t")
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_localhost_name_reaches_the_loopback_over_one_kept_alive_connection() {
        let (port, seen) = subscriber(202).await;
        let to = Destination::new(&format!("http://sub.ns.localhost:{port}/path"));
        let transport = HttpTransport::new();
        for _ in 0..5 {
            match transport.send(&to, &event(), TIMEOUT).await {
                Attempt::Response { status, body, .. } => {
                    assert_eq!((status, &body[..]), (202, &b"answer"[..]));
                }
                failed => panic!("{failed:?}"),
            }
        }
        assert_eq!(
            seen.connections.load(Ordering::SeqCst),
            1,
            "one connection, reused"
        );
        let hosts = seen.hosts.lock().unwrap();
        assert_eq!(hosts.len(), 5);
        assert!(
            hosts
                .iter()
                .all(|h| *h == format!("sub.ns.localhost:{port}")),
            "{hosts:?}"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let (port, seen) = subscriber(200).await;
        let to = Destination::new(&format!("http://127.0.0.1:{port}/"));
        let transport = HttpTransport::with_idle_timeout(Duration::from_millis(100));
        let sent = transport.send(&to, &event(), TIMEOUT).await;
        assert!(
            matches!(sent, Attempt::Response { status: 200, .. }),
            "{sent:?}"
        );
        // The transport lives on, unused: its pool, not its drop, closes the connection.
        for _ in 0..1_000 {
            if seen.closed.load(Ordering::SeqCst) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the idle connection was still open after 10 s");
    }

    #[tokio::test]
    async fn a_url_that_cannot_be_sent_to_fails_each_attempt_saying_why() {
        let transport = HttpTransport::new();
        for (url, says) in [
            ("not a url", "is not a URL"),
            (
                "https://example.com/",
                "only http:// destinations are supported",
            ),
            ("/relative", "only http:// destinations are supported"),
        ] {
            match transport
                .send(&Destination::new(url), &event(), TIMEOUT)
                .await
            {
                Attempt::Failed { reason } => assert!(reason.contains(says), "{url}: {reason}"),
                answered => panic!("{url}: {answered:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_failed_attempt_naming_the_destination() {
        // Bound but not listening: connections to it are refused.
        let bound = tokio::net::TcpSocket::new_v4().unwrap();
        bound.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = bound.local_addr().unwrap().port();
        let to = Destination::new(&format!("http://127.0.0.1:{port}/"));
        match HttpTransport::new().send(&to, &event(), TIMEOUT).await {
            Attempt::Failed { reason } => assert!(
                reason.starts_with(&format!("connecting to http://127.0.0.1:{port}/: ")),
                "{reason}"
            ),
            answered => panic!("{answered:?}"),
        }
    }
}
