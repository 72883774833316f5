//! The gateway's listener: HTTP/1.1 with keep-alive, one task per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::GatewayMetrics;
use crate::proxy::Proxy;
use crate::route_table::RoutingTable;

/// The gateway: its routing table and counters, shared with the controller.
#[derive(Debug, Clone)]
pub struct Gateway {
    proxy: Arc<Proxy>,
    pub table: Arc<RoutingTable>,
    pub metrics: Arc<GatewayMetrics>,
}

impl Gateway {
    pub fn new(table: Arc<RoutingTable>) -> Self {
        let metrics = Arc::new(GatewayMetrics::default());
        Self {
            proxy: Arc::new(Proxy::new(table.clone(), metrics.clone())),
            table,
            metrics,
        }
    }

    /// Prometheus text for the gateway's counters.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(&self.table, out);
    }
}

/// Serve requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, gateway: Gateway) {
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
        let proxy = gateway.proxy.clone();
        tokio::spawn(serve_connection(stream, peer, proxy));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, proxy: Arc<Proxy>) {
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, peer.ip()).await) }
    });
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
