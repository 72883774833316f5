//! Host → route → weighted revisions → their capacity (ready endpoints).
//!
//! Two levels change at different rates: routes change when a service is deployed,
//! endpoints whenever a replica becomes ready or goes away. Each is an `ArcSwap`,
//! replaced whole by the controller and read lock-free by every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
pub use paas_activator::{Capacity, Endpoint};

pub use paas_api::RevisionKey;

/// A share of a route's traffic.
#[derive(Debug, Clone)]
pub struct WeightedRevision {
    pub percent: u32,
    pub revision: Arc<Capacity>,
}

/// Where one host's requests go.
#[derive(Debug)]
pub struct Route {
    /// `namespace/service`, for logs.
    pub name: String,
    pub targets: Vec<WeightedRevision>,
    /// Why a route that exists has nothing to send requests to (its service is not
    /// ready): its requests get a 503 saying so, not a 404.
    pub unavailable: Option<String>,
    counter: AtomicU64,
}

impl Route {
    pub fn new(name: String, targets: Vec<WeightedRevision>) -> Self {
        Self {
            name,
            targets,
            unavailable: None,
            counter: AtomicU64::new(0),
        }
    }

    /// A route whose service exists but cannot serve yet, and why.
    pub fn unavailable(name: String, why: String) -> Self {
        Self {
            unavailable: Some(why),
            ..Self::new(name, Vec::new())
        }
    }

    /// Weighted round robin over 100 slots: exact percentages over every 100 requests,
    /// with no randomness to make splits drift.
    pub fn pick_revision(&self) -> Option<&Arc<Capacity>> {
        let total: u32 = self.targets.iter().map(|t| t.percent).sum();
        if total == 0 {
            return self.targets.first().map(|t| &t.revision);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Spread each block of `total` slots so a 90/10 split interleaves.
        let slot = (n.wrapping_mul(37) % u64::from(total)) as u32;
        let mut acc = 0;
        for t in &self.targets {
            acc += t.percent;
            if slot < acc {
                return Some(&t.revision);
            }
        }
        self.targets.last().map(|t| &t.revision)
    }
}

/// Every route by host, plus every revision's endpoints.
#[derive(Debug, Default)]
pub struct RoutingTable {
    hosts: ArcSwap<HashMap<String, Arc<Route>>>,
    revisions: Mutex<HashMap<RevisionKey, Arc<Capacity>>>,
}

impl RoutingTable {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The route for a host (already lower-cased and without port).
    pub fn route(&self, host: &str) -> Option<Arc<Route>> {
        self.hosts.load().get(host).cloned()
    }

    pub fn set_routes(&self, routes: HashMap<String, Arc<Route>>) {
        self.hosts.store(Arc::new(routes));
    }

    /// The endpoints record of a revision, created on first use. Not on the request path.
    pub fn revision(&self, key: &RevisionKey) -> Arc<Capacity> {
        let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Capacity::new(key.clone())))
            .clone()
    }

    pub fn forget_revision(&self, key: &RevisionKey) {
        let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions.remove(key);
    }

    /// Every known revision, for metrics.
    pub fn revisions(&self) -> Vec<Arc<Capacity>> {
        let revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> RevisionKey {
        RevisionKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn split_is_exact_over_each_hundred_requests() {
        let table = RoutingTable::new();
        let a = table.revision(&key("a-00001"));
        let b = table.revision(&key("a-00002"));
        let route = Route::new(
            "default/a".into(),
            vec![
                WeightedRevision {
                    percent: 90,
                    revision: a,
                },
                WeightedRevision {
                    percent: 10,
                    revision: b,
                },
            ],
        );
        let to_b = (0..10_000)
            .filter(|_| route.pick_revision().unwrap().key.name == "a-00002")
            .count();
        assert_eq!(to_b, 1000);
    }

    #[test]
    fn a_revision_has_one_capacity() {
        let table = RoutingTable::new();
        let a = table.revision(&key("x"));
        let b = table.revision(&key("x"));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
