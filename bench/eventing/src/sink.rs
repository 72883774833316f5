//! The subscriber every path delivers to: an HTTP server that notes when each event
//! (by the number in its `ce-id`, `N`) first arrived, and answers 202 at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Arrival times of events `0..n`, as nanoseconds since `epoch` (0 = not yet).
#[derive(Debug, Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub arrived: Arc<Vec<AtomicU64>>,
    pub count: Arc<AtomicUsize>,
    /// Woken at every first arrival, for senders that wait for their event.
    pub arrival: Arc<Notify>,
}

impl Sink {
    /// Wait until event `n` has arrived.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.arrival.notified();
            if self
                .arrived
                .get(n)
                .is_none_or(|a| a.load(Ordering::Relaxed) != 0)
            {
                return;
            }
            notified.await;
        }
    }
}

pub async fn start(n: usize, epoch: Instant) -> anyhow::Result<Sink> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let arrived: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let count = Arc::new(AtomicUsize::new(0));
    let arrival = Arc::new(Notify::new());
    let (a, c, w) = (arrived.clone(), count.clone(), arrival.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (a, c, w) = (a.clone(), c.clone(), w.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (a, c, w) = (a.clone(), c.clone(), w.clone());
                    async move {
                        let at = epoch.elapsed().as_nanos() as u64;
                        let n = req
                            .headers()
                            .get("ce-id")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<usize>().ok());
                        let _ = req.into_body().collect().await;
                        if let Some(slot) = n.and_then(|n| a.get(n)) {
                            if slot
                                .compare_exchange(
                                    0,
                                    at.max(1),
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                )
                                .is_ok()
                            {
                                c.fetch_add(1, Ordering::Relaxed);
                                w.notify_waiters();
                            }
                        }
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = StatusCode::ACCEPTED;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Sink {
        addr,
        arrived,
        count,
        arrival,
    })
}
