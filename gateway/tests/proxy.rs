//! The gateway against real sockets: routing, headers, streaming, timeouts, dead replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paas_activator::NoPoke;
use paas_gateway::{Gateway, RevisionKey, Route, RoutingTable, WeightedRevision};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A replica that echoes what it got: the request's headers as `h-NAME` response
/// headers, and the body (or `/big` answers 1 MiB; `/slow` waits 3 s).
async fn replica() -> SocketAddr {
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

fn key() -> RevisionKey {
    RevisionKey {
        namespace: "default".into(),
        name: "echo-00001".into(),
    }
}

struct Setup {
    port: u16,
    table: Arc<RoutingTable>,
}

async fn gateway_to(replica: Option<SocketAddr>) -> Setup {
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
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    Gateway::new(table.clone(), Arc::new(NoPoke))
        .bind(addr, 1)
        .unwrap()
        .start()
        .unwrap();
    Setup {
        port: addr.port(),
        table,
    }
}

/// One raw HTTP/1.1 exchange; returns the head and the body.
async fn exchange(port: u16, request: &[u8]) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    )
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn unknown_hosts_get_a_404_naming_only_that_host() {
    let g = gateway_to(None).await;
    let (head, body) = exchange(
        g.port,
        b"GET / HTTP/1.1\r\nHost: nope.default.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("nope.default.localhost"));
    assert!(
        !body.contains("echo"),
        "must not list other services: {body}"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_and_forwarded_headers_set() {
    let g = gateway_to(Some(replica().await)).await;
    let (head, body) = exchange(
        g.port,
        b"POST /x HTTP/1.1\r\nHost: echo.default.localhost:8080\r\nConnection: close, x-secret\r\nx-secret: 1\r\nKeep-Alive: timeout=5\r\nx-app: kept\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    // Replicas get the origin form, as from any client.
    assert!(lower.contains("x-request-target: /x\r\n"), "{head}");
    assert!(lower.contains("h-x-app: kept"));
    assert!(!lower.contains("h-x-secret"), "{head}");
    assert!(!lower.contains("h-keep-alive"), "{head}");
    assert!(lower.contains("h-x-forwarded-for: 127.0.0.1"), "{head}");
    assert!(lower.contains("h-x-forwarded-proto: http"), "{head}");
    assert!(
        lower.contains("h-x-forwarded-host: echo.default.localhost:8080"),
        "{head}"
    );
    // The replica's own hop-by-hop headers do not reach the client either.
    assert!(!lower.contains("\r\nconnection: keep-alive"), "{head}");
    assert_eq!(body, b"hello");
    let in_flight = g
        .table
        .revision(&key())
        .in_flight
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(in_flight, 0);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let g = gateway_to(Some(replica().await)).await;
    let (head, body) = exchange(
        g.port,
        b"GET /big HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), 1 << 20);

    let upload = vec![b'y'; 3 << 20];
    let mut req = format!(
        "POST /up HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        upload.len()
    )
    .into_bytes();
    req.extend_from_slice(&upload);
    let (head, body) = exchange(g.port, &req).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), upload.len());
}

#[tokio::test]
async fn a_slow_replica_gets_a_504_after_timeout_seconds() {
    let g = gateway_to(Some(replica().await)).await;
    let (head, body) = exchange(
        g.port,
        b"GET /slow HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("timeoutSeconds"));
}

#[tokio::test]
async fn no_replica_within_the_timeout_is_a_504_that_says_so() {
    let g = gateway_to(None).await;
    let (head, body) = exchange(g.port, GET).await;
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("no replica"), "{body}");
}

#[tokio::test]
async fn a_dead_replica_is_routed_around() {
    let live = replica().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let g = gateway_to(None).await;
    g.table.revision(&key()).set_ready(&[dead, live]);
    for _ in 0..10 {
        let (head, _) = exchange(g.port, GET).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
}
