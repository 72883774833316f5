//! What one client may hold of the gateway: the port is public-facing, so every
//! connection, header and in-process body is bounded in time or size.

use std::time::Duration;

/// hyper's own cap on the headers of a request; above it, hyper keeps them on the heap
/// for every request, so the builder is only told about a different figure.
pub(crate) const HYPER_MAX_HEADERS: usize = 100;

/// The gateway's limits. `Default` holds the figures `paas up` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLimits {
    /// A request head not complete within this long closes the connection. hyper starts
    /// this clock whenever the connection waits for a head, including between keep-alive
    /// requests, so it is also how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Client connections open at once on the gateway's port (all workers together);
    /// beyond it a connection is answered 503 with Retry-After and closed.
    pub max_connections: usize,
    /// Bytes of one request head (request line and headers); beyond, 431.
    pub max_header_bytes: usize,
    /// Headers of one request; beyond, 431.
    pub max_headers: usize,
    /// Body bytes one request to an in-process host (the broker and channel ingress)
    /// may hold; a body beyond it fails to read. The broker ingress refuses larger
    /// events with 413 at the same figure (eventing's `DEFAULT_MAX_BYTES`).
    pub ingress_request_bytes: usize,
    /// Body bytes all requests to in-process hosts may hold at once; a request whose
    /// share does not fit is answered 503 with Retry-After.
    pub ingress_bytes_in_flight: usize,
    /// How long the body of a request to an in-process host may take to arrive, from
    /// the end of its head; a slower one fails to read (the ingress answers 400), so
    /// that its share of the bytes in flight is not held for ever.
    pub ingress_body_timeout: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            max_headers: HYPER_MAX_HEADERS,
            ingress_request_bytes: 1 << 20,
            ingress_bytes_in_flight: 64 << 20,
            ingress_body_timeout: Duration::from_secs(60),
        }
    }
}
