//! The ingress proxy. A request's journey: find the route for its Host in the
//! [`RoutingTable`] (swapped whole, read without locks), pick a revision by the traffic
//! split, take a permit on its least-loaded ready replica from the activator (waiting,
//! and waking the revision from zero, when there is none), forward with the hop-by-hop
//! headers removed and X-Forwarded-* set, and stream the answer back.

mod body;
mod error;
mod forwarded;
mod handler;
mod host;
pub mod metrics;
mod pool;
mod proxy;
pub mod route_table;
mod server;

pub use error::ProxyError;
pub use handler::{HandlerFuture, HostHandler};
pub use pool::ConnectError;
pub use route_table::{Capacity, Endpoint, RevisionKey, Route, RoutingTable, WeightedRevision};
pub use server::{BoundGateway, Gateway};
