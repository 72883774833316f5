//! The activator: the capacity of each revision, and the place requests wait when there
//! is none. A request takes a [`Permit`] on the ready replica with the fewest requests
//! in flight, within `containerConcurrency` (a hard limit: requests wait for a slot,
//! they do not fail). When a revision has no ready replica the request waits in a
//! bounded queue and the autoscaler is poked to scale it from zero at once.

use std::fmt;

use paas_api::RevisionKey;

mod capacity;
mod outcomes;

pub use capacity::{AcquireError, Capacity, Endpoint, Permit, DEFAULT_QUEUE_LIMIT};
pub use outcomes::{OutcomeSnapshot, Outcomes, LATENCY_BUCKETS_MS};

/// Tells the autoscaler that `revision` has requests waiting and no replica.
pub trait Poke: Send + Sync + fmt::Debug + 'static {
    fn poke(&self, revision: &RevisionKey);
}

/// A poke that goes nowhere, for a platform without an autoscaler.
#[derive(Debug, Default)]
pub struct NoPoke;

impl Poke for NoPoke {
    fn poke(&self, _: &RevisionKey) {}
}
