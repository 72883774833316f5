//! The gateway's listeners: one thread per core, each with its own single-threaded
//! runtime, its own SO_REUSEPORT listener and its own pool of replica connections, as
//! nginx runs one worker per core. A request and its upstream connection then never
//! hop between threads; only the routing table and the counters are shared.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use paas_activator::Poke;
use tokio::net::{TcpListener, TcpSocket};

use crate::handler::HostHandler;
use crate::metrics::GatewayMetrics;
use crate::proxy::Proxy;
use crate::route_table::RoutingTable;

/// The gateway: its routing table and counters, shared with the controller.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub table: Arc<RoutingTable>,
    pub metrics: Arc<GatewayMetrics>,
    /// Who is told when requests wait for a revision with no replica.
    poke: Arc<dyn Poke>,
    /// Hosts answered in process rather than proxied.
    handlers: Arc<HashMap<String, Arc<dyn HostHandler>>>,
}

impl Gateway {
    pub fn new(table: Arc<RoutingTable>, poke: Arc<dyn Poke>) -> Self {
        Self {
            table,
            metrics: Arc::new(GatewayMetrics::default()),
            poke,
            handlers: Arc::new(HashMap::new()),
        }
    }

    /// Answer requests for `host` (lower case, no port) with `handler`.
    pub fn with_handler(mut self, host: &str, handler: Arc<dyn HostHandler>) -> Self {
        let mut handlers = (*self.handlers).clone();
        handlers.insert(host.to_ascii_lowercase(), handler);
        self.handlers = Arc::new(handlers);
        self
    }

    /// Prometheus text for the gateway's counters.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(&self.table, out);
    }

    /// Bind one listening socket per worker on `addr`. Binding happens here, so that
    /// a port in use is reported before anything runs.
    pub fn bind(self, addr: SocketAddr, workers: usize) -> io::Result<BoundGateway> {
        let workers = workers.max(1);
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.set_nodelay(true)?;
            socket.bind(addr)?;
            // Each worker registers its listener with its own runtime later.
            listeners.push(socket.listen(4096)?.into_std()?);
        }
        Ok(BoundGateway {
            gateway: self,
            listeners,
        })
    }
}

/// A gateway with its sockets bound, ready to serve.
#[derive(Debug)]
pub struct BoundGateway {
    gateway: Gateway,
    listeners: Vec<std::net::TcpListener>,
}

impl BoundGateway {
    /// Start the worker threads; they serve until the process exits.
    pub fn start(self) -> io::Result<()> {
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let gateway = self.gateway.clone();
            std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || worker(listener, gateway))?;
        }
        Ok(())
    }
}

fn worker(listener: std::net::TcpListener, gateway: Gateway) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "a gateway worker could not start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "a gateway worker could not use its listener");
                return;
            }
        };
        let proxy = Arc::new(Proxy::new(
            gateway.table.clone(),
            gateway.metrics.clone(),
            gateway.poke.clone(),
            gateway.handlers.clone(),
        ));
        accept_loop(listener, proxy).await;
    });
}

async fn accept_loop(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, proxy.clone()));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, proxy: Arc<Proxy>) {
    // The client's address goes into X-Forwarded-For on every request of the connection.
    let client = HeaderValue::from_str(&peer.ip().to_string()).ok();
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let client = client.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, client).await) }
    });
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
