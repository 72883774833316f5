//! The gateway against real sockets: routing, headers, streaming, timeouts, dead replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    exchange, gateway_to, gateway_with, key, metric, read_until_closed, replica, wait_for, GET,
};
use paas_activator::NoPoke;
use paas_gateway::{Gateway, GatewayLimits, RoutingTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A replica that crashes on every request: it reads the request's head, then closes
/// the connection without answering. Counts the requests it got.
async fn crashing_replica() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let counter = got.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, got)
}

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
async fn a_service_that_is_not_ready_gets_a_503_saying_why() {
    let g = gateway_to(None).await;
    let mut routes = std::collections::HashMap::new();
    routes.insert(
        "broken.default.localhost".to_owned(),
        Arc::new(paas_gateway::Route::unavailable(
            "default/broken".into(),
            "revision broken-00001: replica exited with code 3".into(),
        )),
    );
    g.table.set_routes(routes);
    let (head, body) = exchange(
        g.port,
        b"GET / HTTP/1.1\r\nHost: broken.default.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("default/broken is not ready") && body.contains("exited with code 3"),
        "{body}"
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

#[tokio::test]
async fn two_host_headers_are_a_400_and_reach_no_replica() {
    let (replica, got) = crashing_replica().await;
    let g = gateway_to(Some(replica)).await;
    let (head, body) = exchange(
        g.port,
        b"GET / HTTP/1.1\r\nHost: echo.default.localhost\r\nHost: other.default.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("more than one Host header"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(got.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_get_whose_replica_crashes_is_sent_again_to_another() {
    let (crashing, got) = crashing_replica().await;
    let live = replica().await;
    let g = gateway_to(None).await;
    // The crashing replica is listed first, so the first request goes to it.
    g.table.revision(&key()).set_ready(&[crashing, live]);
    for _ in 0..5 {
        let (head, _) = exchange(g.port, GET).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    assert_eq!(
        got.load(Ordering::SeqCst),
        1,
        "the first GET went to the crashing replica"
    );
}

#[tokio::test]
async fn a_post_whose_replica_crashes_is_not_sent_again() {
    let (crashing, got) = crashing_replica().await;
    let live = replica().await;
    let g = gateway_to(None).await;
    g.table.revision(&key()).set_ready(&[crashing, live]);
    let (head, _) = exchange(
        g.port,
        b"POST / HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(got.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_port_anything_listens_on_is_refused_as_in_use() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Gateway::new(RoutingTable::new(), Arc::new(NoPoke))
        .bind(other.local_addr().unwrap(), 2)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}

#[tokio::test]
async fn a_second_gateway_on_the_same_port_is_refused_and_the_first_serves_on() {
    let replica = replica().await;
    let first = gateway_with(Some(replica), GatewayLimits::default()).await;
    let addr: SocketAddr = ([127, 0, 0, 1], first.port).into();
    let err = Gateway::new(RoutingTable::new(), Arc::new(NoPoke))
        .bind(addr, 2)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");

    // A gateway's own workers share its port.
    let two = Gateway::new(first.table.clone(), Arc::new(NoPoke))
        .bind("127.0.0.1:0".parse().unwrap(), 2)
        .unwrap();
    let port = two.local_addr().unwrap().port();
    two.start().unwrap();
    for port in [first.port, port] {
        for _ in 0..4 {
            let (head, _) = exchange(port, GET).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
    }
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_a_431() {
    let g = gateway_to(Some(replica().await)).await;
    let mut many =
        String::from("GET / HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\n");
    for i in 0..GatewayLimits::default().max_headers {
        many.push_str(&format!("x-h{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    let (head, _) = exchange(g.port, many.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    let large = format!(
        "GET / HTTP/1.1\r\nHost: echo.default.localhost\r\nConnection: close\r\nx-big: {}\r\n\r\n",
        "a".repeat(GatewayLimits::default().max_header_bytes)
    );
    let (head, _) = exchange(g.port, large.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
}

#[tokio::test]
async fn idle_and_silent_connections_are_closed_after_the_header_read_timeout() {
    let limits = GatewayLimits {
        header_read_timeout: Duration::from_secs(1),
        ..GatewayLimits::default()
    };
    let g = gateway_with(Some(replica().await), limits).await;
    // One request, then idle on a kept-alive connection.
    let mut idle = TcpStream::connect(("127.0.0.1", g.port)).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: echo.default.localhost\r\n\r\n")
        .await
        .unwrap();
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(("127.0.0.1", g.port)).await.unwrap();
    let started = std::time::Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut idle))
        .await
        .expect("the idle keep-alive connection was not closed within 10 s");
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(answered.matches("HTTP/1.1").count(), 1, "{answered}");
    tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut silent))
        .await
        .expect("the silent connection was not closed within 10 s");
    println!(
        "idle and silent connections closed {} ms after they opened (header_read_timeout 1 s)",
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_503_and_are_counted() {
    let limits = GatewayLimits {
        max_connections: 2,
        ..GatewayLimits::default()
    };
    let g = gateway_with(Some(replica().await), limits).await;
    let first = TcpStream::connect(("127.0.0.1", g.port)).await.unwrap();
    let _second = TcpStream::connect(("127.0.0.1", g.port)).await.unwrap();
    wait_for("two connections open", || {
        metric(&g.gateway, "paas_gateway_connections_open") == 2
    })
    .await;

    let (head, body) = exchange(g.port, GET).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("maximum"));
    assert_eq!(
        metric(&g.gateway, "paas_gateway_connections_refused_total"),
        1
    );

    drop(first);
    wait_for("one connection open", || {
        metric(&g.gateway, "paas_gateway_connections_open") == 1
    })
    .await;
    let (head, _) = exchange(g.port, GET).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

fn ingress_post(body: usize) -> Vec<u8> {
    let mut req = format!(
        "POST /default/default HTTP/1.1\r\nHost: ingress.localhost\r\nConnection: close\r\nContent-Length: {body}\r\n\r\n"
    )
    .into_bytes();
    req.extend(std::iter::repeat_n(b'e', body));
    req
}

#[tokio::test]
async fn ingress_bytes_in_flight_are_capped_with_a_503() {
    let limits = GatewayLimits {
        ingress_request_bytes: 1000,
        ingress_bytes_in_flight: 2000,
        ..GatewayLimits::default()
    };
    let g = gateway_with(None, limits).await;
    let port = g.port;
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { exchange(port, &ingress_post(1000)).await }))
        .collect();
    wait_for("two ingress requests held", || {
        g.ingress.arrived.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(
        metric(&g.gateway, "paas_gateway_ingress_bytes_in_flight"),
        2000
    );

    let (head, body) = exchange(port, &ingress_post(10)).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("retry later"));
    assert_eq!(metric(&g.gateway, "paas_gateway_ingress_refused_total"), 1);
    assert_eq!(
        g.ingress.arrived.load(Ordering::SeqCst),
        2,
        "the refused one never reached the handler"
    );

    g.ingress.release.add_permits(100);
    for h in held {
        let (head, body) = h.await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"1000");
    }

    // A body of unknown length holds one request's most, and is cut off there.
    let mut chunked = b"POST /default/default HTTP/1.1\r\nHost: ingress.localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n".to_vec();
    chunked.extend(std::iter::repeat_n(b'e', 0x5dc));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (head, _) = exchange(port, &chunked).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    wait_for("no ingress bytes held", || {
        metric(&g.gateway, "paas_gateway_ingress_bytes_in_flight") == 0
    })
    .await;
}

#[tokio::test]
async fn an_ingress_body_that_stops_arriving_fails_and_gives_back_its_bytes() {
    let limits = GatewayLimits {
        ingress_body_timeout: Duration::from_secs(1),
        ..GatewayLimits::default()
    };
    let g = gateway_with(None, limits).await;
    g.ingress.release.add_permits(1);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).await.unwrap();
    // 10 of the 100 bytes it declares, then nothing more.
    let mut req = ingress_post(100);
    req.truncate(req.len() - 90);
    s.write_all(&req).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut s))
        .await
        .expect("a stalled ingress body was still held after 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert_eq!(
        metric(&g.gateway, "paas_gateway_ingress_bytes_in_flight"),
        0
    );
}
