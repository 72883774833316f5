//! The ingress proxy. A request's journey: find the route for its Host in the
//! [`RoutingTable`] (swapped whole, read without locks), pick a revision by the traffic
//! split, pick the ready replica with the fewest requests in flight, forward with the
//! hop-by-hop headers removed and X-Forwarded-* set, and stream the answer back.

mod body;
mod error;
mod forwarded;
mod host;
pub mod metrics;
mod pool;
mod proxy;
pub mod route_table;
mod server;

pub use error::ProxyError;
pub use pool::ConnectError;
pub use route_table::{
    Endpoint, RevisionEndpoints, RevisionKey, Route, RoutingTable, WeightedRevision,
};
pub use server::{BoundGateway, Gateway};
