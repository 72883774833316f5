//! The control plane: the store, the reconcilers that turn Services into running
//! revisions and routes, the fleet that keeps replicas at their counts, and the REST API.

pub mod changed;
pub mod collector;
pub mod controller;
pub mod crash_backoff;
#[cfg(test)]
mod fake_runtime;
pub mod fleet;
mod kinds;
pub mod poke;
pub mod reconcile;
pub mod rest;
pub mod store;
pub mod work_queue;
