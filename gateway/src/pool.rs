//! Keep-alive connections to replicas, one pool per gateway worker.
//!
//! A connection goes back to the pool when the replica's response body has been
//! streamed to the end, not when headers arrive: HTTP/1.1 cannot start the next
//! request before. Being per worker thread, the lock is never contended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept per replica; more are closed when returned.
const MAX_IDLE_PER_REPLICA: usize = 512;

/// What goes to a replica: the client's body, or none for a request the gateway may
/// send again (hyper's `Incoming` cannot be made anew).
pub(crate) type UpstreamBody = Either<Incoming, Empty<Bytes>>;

pub(crate) type Sender = SendRequest<UpstreamBody>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Sender>>>,
}

impl Pool {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An idle connection to `addr` that is ready for a request, else a new one.
    pub(crate) async fn checkout(&self, addr: SocketAddr) -> Result<Sender, ConnectError> {
        loop {
            let idle = self.lock().get_mut(&addr).and_then(Vec::pop);
            let Some(mut sender) = idle else {
                return connect(addr).await;
            };
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
    }

    /// Return a connection whose last response was read to the end.
    pub(crate) fn checkin(&self, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_REPLICA {
            list.push(sender);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Sender>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn connect(addr: SocketAddr) -> Result<Sender, ConnectError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(replica = %addr, error = %e, "replica connection ended with an error");
        }
    });
    Ok(sender)
}
