//! What the gateway's integration tests share: replicas, a gateway in front of them
//! with an in-process host, raw HTTP/1.1 exchanges, and the gateway's metrics.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paas_activator::NoPoke;
use paas_api::RevisionKey;
use paas_gateway::{
    Gateway, GatewayLimits, HandlerBody, HandlerFuture, HostHandler, Route, RoutingTable,
    WeightedRevision,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A replica that echoes what it got: the request's headers as `h-NAME` response
/// headers, and the body (or `/big` answers 1 MiB; `/slow` waits 3 s).
pub(crate) async fn replica() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let mut resp =
                        Response::builder().header("x-request-target", req.uri().to_string());
                    for (name, value) in req.headers() {
                        resp = resp.header(format!("h-{name}"), value);
                    }
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let body = match path.as_str() {
                        "/big" => Bytes::from(vec![b'x'; 1 << 20]),
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            Bytes::from_static(b"late")
                        }
                        _ => body,
                    };
                    Ok::<_, std::convert::Infallible>(
                        resp.header("connection", "keep-alive")
                            .body(Full::new(body))
                            .unwrap(),
                    )
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An in-process host, as the broker ingress: reads the body, counts the request as
/// arrived, and answers once the test lets it go (200 with the body's length, or 413
/// when the gateway cut the body off).
#[derive(Debug)]
pub(crate) struct HeldIngress {
    pub(crate) arrived: AtomicUsize,
    pub(crate) release: tokio::sync::Semaphore,
}

impl Default for HeldIngress {
    fn default() -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            release: tokio::sync::Semaphore::new(0),
        }
    }
}

impl HostHandler for HeldIngress {
    fn handle(&self, req: Request<HandlerBody>) -> HandlerFuture<'_> {
        Box::pin(async move {
            let body = req.into_body().collect().await;
            self.arrived.fetch_add(1, Ordering::SeqCst);
            self.release.acquire().await.unwrap().forget();
            let (status, text) = match body {
                Ok(b) => (200, b.to_bytes().len().to_string()),
                Err(e) if e.is::<LengthLimitError>() => (413, e.to_string()),
                Err(e) => (400, e.to_string()),
            };
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::from(text)))
                .unwrap()
        })
    }
}

pub(crate) fn key() -> RevisionKey {
    RevisionKey {
        namespace: "default".into(),
        name: "echo-00001".into(),
    }
}

pub(crate) struct Setup {
    pub(crate) port: u16,
    pub(crate) table: Arc<RoutingTable>,
    pub(crate) gateway: Gateway,
    pub(crate) ingress: Arc<HeldIngress>,
}

pub(crate) async fn gateway_to(replica: Option<SocketAddr>) -> Setup {
    gateway_with(replica, GatewayLimits::default()).await
}

pub(crate) async fn gateway_with(replica: Option<SocketAddr>, limits: GatewayLimits) -> Setup {
    let table = RoutingTable::new();
    let capacity = table.revision(&key());
    if let Some(addr) = replica {
        capacity.set_ready(&[addr]);
    }
    capacity.set_timeout(Duration::from_secs(1));
    let mut routes = HashMap::new();
    routes.insert(
        "echo.default.localhost".to_owned(),
        Arc::new(Route::new(
            "default/echo".into(),
            vec![WeightedRevision {
                percent: 100,
                revision: capacity,
            }],
        )),
    );
    table.set_routes(routes);
    let ingress = Arc::new(HeldIngress::default());
    let gateway = Gateway::new(table.clone(), Arc::new(NoPoke))
        .with_limits(limits)
        .with_handler("ingress.localhost", ingress.clone());
    let bound = gateway
        .clone()
        .bind("127.0.0.1:0".parse().unwrap(), 1)
        .unwrap();
    let port = bound.local_addr().unwrap().port();
    bound.start().unwrap();
    Setup {
        port,
        table,
        gateway,
        ingress,
    }
}

/// The figure of one unlabelled series on the gateway's /metrics.
pub(crate) fn metric(gateway: &Gateway, name: &str) -> u64 {
    let mut out = String::new();
    gateway.render_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{out}"))
}

/// Wait (at most 10 s) until the gateway's counters show `cond`.
pub(crate) async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One raw HTTP/1.1 exchange; returns the head and the body.
pub(crate) async fn exchange(port: u16, request: &[u8]) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let raw = read_until_closed(&mut s).await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    )
}

/// What the peer sent until it closed the connection. A reset counts as closing: a
/// server that answers before reading the whole request resets the connection.
pub(crate) async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

pub(crate) const GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\n\r\n";
