//! The gateway's listeners: one thread per core, each with its own single-threaded
//! runtime, its own SO_REUSEPORT listener and its own pool of replica connections, as
//! nginx runs one worker per core. A request and its upstream connection then never
//! hop between threads; only the routing table and the counters are shared.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use paas_activator::Poke;
use tokio::net::{TcpListener, TcpSocket};

use crate::accept::accept_loop;
use crate::handler::HostHandler;
use crate::limits::{GatewayLimits, HYPER_MAX_HEADERS};
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
    limits: GatewayLimits,
}

impl Gateway {
    pub fn new(table: Arc<RoutingTable>, poke: Arc<dyn Poke>) -> Self {
        Self {
            table,
            metrics: Arc::new(GatewayMetrics::default()),
            poke,
            handlers: Arc::new(HashMap::new()),
            limits: GatewayLimits::default(),
        }
    }

    /// Serve under `limits` rather than the defaults. Call it before cloning or
    /// binding: it starts the gateway's counters afresh, and earlier clones keep the old.
    pub fn with_limits(mut self, limits: GatewayLimits) -> Self {
        self.metrics = Arc::new(GatewayMetrics::new(&limits));
        self.limits = limits;
        self
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
    /// a port in use is reported before anything runs: an error of kind `AddrInUse` when
    /// anything else listens on the port, another gateway included.
    pub fn bind(self, addr: SocketAddr, workers: usize) -> io::Result<BoundGateway> {
        let workers = workers.max(1);
        let mut listeners = Vec::with_capacity(workers);
        // Port 0 picks a port for the first socket; the others take the same one.
        let mut addr = addr;
        for i in 0..workers {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // Lets a restarted gateway bind while its old connections are in TIME_WAIT;
            // Linux still refuses a port that some socket listens on.
            socket.set_reuseaddr(true)?;
            socket.set_nodelay(true)?;
            if i == 0 {
                // The first socket binds without SO_REUSEPORT, so the bind fails if
                // anything holds the port, even a socket that has SO_REUSEPORT (another
                // gateway): with it, a second `paas up` would share the port and take
                // every other connection. Set once bound, it lets this gateway's other
                // workers bind beside it; a socket without it still cannot.
                socket.bind(addr)?;
                socket.set_reuseport(true)?;
                addr = socket.local_addr()?;
            } else {
                socket.set_reuseport(true)?;
                socket.bind(addr)?;
            }
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
    /// The address the gateway listens on (with the port chosen, if it was 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners
            .first()
            .ok_or_else(|| io::Error::other("the gateway has no listener"))?
            .local_addr()
    }

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
            &gateway.limits,
        ));
        accept_loop(listener, http_server(&gateway.limits), proxy).await;
    });
}

/// How every client connection is served: HTTP/1.1 with keep-alive, with the limits
/// on how long and how large a request head may be.
fn http_server(limits: &GatewayLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // Without a timer hyper has no header-read timeout at all.
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_MAX_HEADERS {
        builder.max_headers(limits.max_headers);
    }
    builder
}
