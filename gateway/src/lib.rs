//! The ingress proxy. A request's journey: find the route for its Host in the
//! [`RoutingTable`] (swapped whole, read without locks), pick a revision by the traffic
//! split, take a permit on its least-loaded ready replica from the activator (waiting,
//! and waking the revision from zero, when there is none), forward with the hop-by-hop
//! headers removed and X-Forwarded-* set, and stream the answer back. What a client
//! may hold of the gateway (connections, time to send a request head, header sizes,
//! ingress bodies) is bounded by [`GatewayLimits`].

mod accept;
mod body;
mod budget;
mod error;
mod forwarded;
mod handler;
mod host;
mod limits;
pub mod metrics;
mod pool;
mod proxy;
pub mod route_table;
mod server;

pub use error::ProxyError;
pub use handler::{BodyTimeout, HandlerBody, HandlerFuture, HostHandler};
pub use limits::GatewayLimits;
pub use pool::ConnectError;
pub use route_table::{Route, RoutingTable, WeightedRevision};
pub use server::{BoundGateway, Gateway};
