//! Host → route → weighted revisions → ready endpoints.
//!
//! Two levels change at different rates: routes change when a service is deployed,
//! endpoints whenever a replica becomes ready or goes away. Each is an `ArcSwap`,
//! replaced whole by the controller and read lock-free by every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use paas_api::RevisionKey;

/// One ready replica and the requests it is serving now.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The address as a URI authority, built once rather than per request.
    pub authority: http::uri::Authority,
    pub in_flight: AtomicUsize,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        let authority = http::uri::Authority::try_from(addr.to_string().as_str())
            // Invariant: a socket address always prints as a valid authority.
            .unwrap_or_else(|_| http::uri::Authority::from_static("127.0.0.1"));
        Arc::new(Self {
            addr,
            authority,
            in_flight: AtomicUsize::new(0),
        })
    }
}

/// The ready replicas of one revision, and its request counters.
#[derive(Debug)]
pub struct RevisionEndpoints {
    pub key: RevisionKey,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    timeout: ArcSwap<Duration>,
    next: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub requests: AtomicU64,
}

impl RevisionEndpoints {
    fn new(key: RevisionKey) -> Self {
        Self {
            key,
            endpoints: ArcSwap::from_pointee(Vec::new()),
            timeout: ArcSwap::from_pointee(Duration::from_secs(300)),
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// Replace the ready set. Endpoints that stay keep their in-flight counts.
    pub fn set_ready(&self, addrs: &[SocketAddr]) {
        let current = self.endpoints.load();
        if current.len() == addrs.len() && current.iter().all(|e| addrs.contains(&e.addr)) {
            return;
        }
        let next: Vec<Arc<Endpoint>> = addrs
            .iter()
            .map(|a| {
                current
                    .iter()
                    .find(|e| e.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| Endpoint::new(*a))
            })
            .collect();
        self.endpoints.store(Arc::new(next));
    }

    pub fn ready(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    pub fn set_timeout(&self, t: Duration) {
        if **self.timeout.load() != t {
            self.timeout.store(Arc::new(t));
        }
    }

    pub fn timeout(&self) -> Duration {
        **self.timeout.load()
    }

    /// The ready endpoint with the fewest requests in flight. Scanning starts at a
    /// rotating index so that ties spread over replicas instead of piling on the first.
    pub fn pick(&self) -> Option<Arc<Endpoint>> {
        let eps = self.endpoints.load();
        if eps.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = eps.len();
        (0..n)
            .map(|i| &eps[(start + i) % n])
            .min_by_key(|e| e.in_flight.load(Ordering::Relaxed))
            .cloned()
    }
}

/// A share of a route's traffic.
#[derive(Debug, Clone)]
pub struct WeightedRevision {
    pub percent: u32,
    pub revision: Arc<RevisionEndpoints>,
}

/// Where one host's requests go.
#[derive(Debug)]
pub struct Route {
    /// `namespace/service`, for logs.
    pub name: String,
    pub targets: Vec<WeightedRevision>,
    counter: AtomicU64,
}

impl Route {
    pub fn new(name: String, targets: Vec<WeightedRevision>) -> Self {
        Self {
            name,
            targets,
            counter: AtomicU64::new(0),
        }
    }

    /// Weighted round robin over 100 slots: exact percentages over every 100 requests,
    /// with no randomness to make splits drift.
    pub fn pick_revision(&self) -> Option<&Arc<RevisionEndpoints>> {
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
    revisions: Mutex<HashMap<RevisionKey, Arc<RevisionEndpoints>>>,
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
    pub fn revision(&self, key: &RevisionKey) -> Arc<RevisionEndpoints> {
        let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions
            .entry(key.clone())
            .or_insert_with(|| Arc::new(RevisionEndpoints::new(key.clone())))
            .clone()
    }

    pub fn forget_revision(&self, key: &RevisionKey) {
        let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions.remove(key);
    }

    /// Every known revision, for metrics.
    pub fn revisions(&self) -> Vec<Arc<RevisionEndpoints>> {
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
    fn least_in_flight_wins() {
        let table = RoutingTable::new();
        let rev = table.revision(&key("a-00001"));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        rev.set_ready(&[a, b]);
        let first = rev.pick().unwrap();
        first.in_flight.fetch_add(1, Ordering::Relaxed);
        let second = rev.pick().unwrap();
        assert_ne!(first.addr, second.addr);
    }

    #[test]
    fn endpoints_that_stay_keep_their_counts() {
        let table = RoutingTable::new();
        let rev = table.revision(&key("a-00001"));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        rev.set_ready(&[a]);
        rev.pick()
            .unwrap()
            .in_flight
            .fetch_add(3, Ordering::Relaxed);
        rev.set_ready(&[a, b]);
        let ea = rev.ready().iter().find(|e| e.addr == a).cloned().unwrap();
        assert_eq!(ea.in_flight.load(Ordering::Relaxed), 3);
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
    fn no_ready_endpoint_picks_none() {
        let table = RoutingTable::new();
        assert!(table.revision(&key("x")).pick().is_none());
    }
}
