//! The activator: requests for a revision without ready capacity wait here (bounded,
//! per revision) while the autoscaler is poked to scale it from zero, and are
//! forwarded as soon as a replica passes readiness.
//!
//! Its seam toward the autoscaler is [`Poke`]: the first request to a revision at
//! zero must reach the autoscaler at once, not at its next tick.

use std::fmt;

use paas_api::RevisionKey;

/// Tells the autoscaler that `revision` has requests waiting.
pub trait Poke: Send + Sync + fmt::Debug + 'static {
    fn poke(&self, revision: &RevisionKey, waiting: usize);
}
