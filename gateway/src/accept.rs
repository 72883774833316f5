//! Taking client connections: within the cap on connections open at once, pausing
//! (with backoff) when accepting fails, as it does when file descriptors run out.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::budget::Share;
use crate::proxy::Proxy;

/// The pause after a failed accept: doubles while accepting keeps failing, so that a
/// worker out of file descriptors neither spins nor floods the log, and comes back at
/// once after a success.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// How long to pause after this failure.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(Self::MAX);
        pause
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Failures of one connection that went away before it was accepted; the listener is
/// fine, so the next accept goes ahead at once.
fn connection_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

pub(crate) async fn accept_loop(listener: TcpListener, server: http1::Builder, proxy: Arc<Proxy>) {
    let mut backoff = AcceptBackoff::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                proxy.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                if connection_gone(&e) {
                    continue;
                }
                let pause = backoff.failed();
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accepting a client connection failed; if out of file descriptors, raise the open-files limit (ulimit -n)");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        backoff.succeeded();
        let Some(open) = proxy.metrics.connections.try_take(1) else {
            proxy
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            refuse(stream, proxy.metrics.connections.limit());
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(&server, stream, peer, proxy.clone(), open));
    }
}

/// Serve one client connection; it counts as open until `open` is dropped with it.
fn serve_connection(
    server: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    open: Share,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // The client's address goes into X-Forwarded-For on every request of the connection.
    let client = HeaderValue::from_str(&peer.ip().to_string()).ok();
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let client = client.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, client).await) }
    });
    let connection = server.serve_connection(TokioIo::new(stream), service);
    async move {
        if let Err(e) = connection.await {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
        }
        drop(open);
    }
}

/// Answer a connection beyond the cap of `max` with a 503 and close it, without a
/// task: the answer is small enough for the empty send buffer of a new socket.
fn refuse(stream: TcpStream, max: usize) {
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    // Read what the client has sent already (the socket is non-blocking): a socket
    // closed with unread bytes is reset, which can destroy the answer in flight.
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(stream.read(&mut scratch), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = stream.write_all(refusal(max).as_bytes());
}

fn refusal(max: usize) -> String {
    let body = format!("the gateway has {max} connections open, its maximum; retry later\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets_on_success() {
        let mut b = AcceptBackoff::new();
        let pauses: Vec<u64> = (0..10).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(5));
    }

    #[test]
    fn a_refused_connection_gets_a_complete_503() {
        let answer = refusal(7);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nretry-after: 1"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        assert!(body.contains("7 connections"));
    }
}
