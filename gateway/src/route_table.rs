//! Host → route → weighted revisions → their capacity (ready endpoints).
//!
//! Two levels change at different rates: routes change when a service is deployed,
//! endpoints whenever a replica becomes ready or goes away. Each is an `ArcSwap`,
//! replaced whole by the controller and read lock-free by every request.
//!
//! Hosts are split over [`SHARDS`] maps by hash, and the controller publishes one
//! route's hosts at a time: a change copies one shard, not every host, so deploying
//! the thousandth service costs what the first did.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use paas_activator::Capacity;
use paas_api::RevisionKey;

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

    /// Whether `other` sends requests to the same revisions with the same shares, or
    /// refuses them for the same reason: publishing it again changes nothing (and
    /// would restart the round robin).
    pub fn same_as(&self, other: &Route) -> bool {
        self.name == other.name
            && self.unavailable == other.unavailable
            && self.targets.len() == other.targets.len()
            && self
                .targets
                .iter()
                .zip(&other.targets)
                .all(|(a, b)| a.percent == b.percent && Arc::ptr_eq(&a.revision, &b.revision))
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

/// How many maps the hosts are spread over.
pub const SHARDS: usize = 32;

type Shard = ArcSwap<HashMap<String, Arc<Route>>>;

/// Every route by host, plus every revision's endpoints.
#[derive(Debug)]
pub struct RoutingTable {
    shards: [Shard; SHARDS],
    hasher: RandomState,
    /// The hosts each owner (a route, `namespace/name`) publishes, and who publishes
    /// each host; writers hold it while they change the shards, readers never take it.
    owners: Mutex<Owners>,
    revisions: Mutex<HashMap<RevisionKey, Arc<Capacity>>>,
}

#[derive(Debug, Default)]
struct Owners {
    hosts_of: HashMap<String, Vec<String>>,
    owner_of: HashMap<String, String>,
}

impl Default for RoutingTable {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Shard::default()),
            hasher: RandomState::new(),
            owners: Mutex::new(Owners::default()),
            revisions: Mutex::new(HashMap::new()),
        }
    }
}

impl RoutingTable {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn shard(&self, host: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(host) % SHARDS as u64) as usize]
    }

    /// The route for a host (already lower-cased and without port).
    pub fn route(&self, host: &str) -> Option<Arc<Route>> {
        self.shard(host).load().get(host).cloned()
    }

    /// Replace every route at once.
    pub fn set_routes(&self, routes: HashMap<String, Arc<Route>>) {
        let mut owners = self.lock_owners();
        *owners = Owners::default();
        let mut shards: Vec<HashMap<String, Arc<Route>>> = vec![HashMap::new(); SHARDS];
        for (host, route) in routes {
            let i = (self.hasher.hash_one(host.as_str()) % SHARDS as u64) as usize;
            shards[i].insert(host, route);
        }
        for (shard, hosts) in self.shards.iter().zip(shards) {
            shard.store(Arc::new(hosts));
        }
    }

    /// Publish the hosts of one owner (a route, `namespace/name`): each host in
    /// `hosts` points at its route, and the hosts the owner published before but not
    /// now are removed. Only the shards whose hosts change are copied, and a host whose
    /// route is [`Route::same_as`] the one published is left as it is.
    pub fn set_owner_routes(&self, owner: &str, hosts: Vec<(String, Arc<Route>)>) {
        let mut owners = self.lock_owners();
        let before = owners.hosts_of.remove(owner).unwrap_or_default();
        for host in before {
            if !hosts.iter().any(|(h, _)| *h == host) {
                self.remove_host(&mut owners, owner, &host);
            }
        }
        let mut published = Vec::with_capacity(hosts.len());
        for (host, route) in hosts {
            let shard = self.shard(&host);
            let unchanged = shard.load().get(&host).is_some_and(|r| r.same_as(&route));
            if !unchanged {
                let mut next = HashMap::clone(&shard.load());
                next.insert(host.clone(), route);
                shard.store(Arc::new(next));
            }
            owners.owner_of.insert(host.clone(), owner.to_owned());
            published.push(host);
        }
        if !published.is_empty() {
            owners.hosts_of.insert(owner.to_owned(), published);
        }
    }

    /// Remove every host an owner published (its route is gone).
    pub fn remove_owner(&self, owner: &str) {
        self.set_owner_routes(owner, Vec::new());
    }

    /// Remove `host` if `owner` is who published it last.
    fn remove_host(&self, owners: &mut Owners, owner: &str, host: &str) {
        if owners.owner_of.get(host).map(String::as_str) != Some(owner) {
            return;
        }
        owners.owner_of.remove(host);
        let shard = self.shard(host);
        let mut next = HashMap::clone(&shard.load());
        next.remove(host);
        shard.store(Arc::new(next));
    }

    /// Every host with a route, for tests and diagnostics.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| s.load().keys().cloned().collect::<Vec<_>>())
            .collect();
        hosts.sort();
        hosts
    }

    fn lock_owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        // Both maps are whole after any panic: keep going.
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoints record of a revision, created on first use. Not on the request path.
    pub fn revision(&self, key: &RevisionKey) -> Arc<Capacity> {
        let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Capacity::new(key.clone())))
            .clone()
    }

    /// The endpoints record of a revision if it has one; creates none, so that what is
    /// told of a deleted revision does not bring back the record forgotten with it.
    pub fn known_revision(&self, key: &RevisionKey) -> Option<Arc<Capacity>> {
        let revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions.get(key).cloned()
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
    fn a_known_revision_is_one_created_and_not_forgotten_and_asking_creates_none() {
        let table = RoutingTable::new();
        assert!(table.known_revision(&key("a-00001")).is_none());
        assert!(
            table.known_revision(&key("a-00001")).is_none(),
            "still none"
        );
        let a = table.revision(&key("a-00001"));
        let known = table.known_revision(&key("a-00001"));
        assert!(known.is_some_and(|k| Arc::ptr_eq(&k, &a)));
        table.forget_revision(&key("a-00001"));
        assert!(table.known_revision(&key("a-00001")).is_none());
        assert!(table.revisions().is_empty());
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

    fn route_to(table: &RoutingTable, name: &str, revision: &str) -> Arc<Route> {
        Arc::new(Route::new(
            name.into(),
            vec![WeightedRevision {
                percent: 100,
                revision: table.revision(&key(revision)),
            }],
        ))
    }

    #[test]
    fn publishing_one_owner_leaves_the_other_routes_as_they_are() {
        let table = RoutingTable::new();
        for i in 0..100 {
            let name = format!("svc-{i}");
            table.set_owner_routes(
                &format!("default/{name}"),
                vec![(
                    format!("{name}.default.localhost"),
                    route_to(&table, &format!("default/{name}"), &format!("{name}-00001")),
                )],
            );
        }
        let others: Vec<Arc<Route>> = (1..100)
            .map(|i| table.route(&format!("svc-{i}.default.localhost")).unwrap())
            .collect();
        // svc-0 gets a tag and moves to a new revision.
        table.set_owner_routes(
            "default/svc-0",
            vec![
                (
                    "svc-0.default.localhost".into(),
                    route_to(&table, "default/svc-0", "svc-0-00002"),
                ),
                (
                    "old-svc-0.default.localhost".into(),
                    route_to(&table, "default/svc-0 tag old", "svc-0-00001"),
                ),
            ],
        );
        let svc0 = table.route("svc-0.default.localhost").unwrap();
        assert_eq!(svc0.targets[0].revision.key.name, "svc-0-00002");
        assert!(table.route("old-svc-0.default.localhost").is_some());
        for (i, before) in (1..100).zip(&others) {
            let now = table.route(&format!("svc-{i}.default.localhost")).unwrap();
            assert!(Arc::ptr_eq(before, &now), "svc-{i} was published again");
        }
        // The tag goes: its host goes with it, and only that owner's hosts change.
        table.set_owner_routes(
            "default/svc-0",
            vec![(
                "svc-0.default.localhost".into(),
                route_to(&table, "default/svc-0", "svc-0-00002"),
            )],
        );
        assert!(table.route("old-svc-0.default.localhost").is_none());
        table.remove_owner("default/svc-1");
        assert!(table.route("svc-1.default.localhost").is_none());
        assert_eq!(table.hosts().len(), 99);
    }

    #[test]
    fn republishing_the_same_route_keeps_its_round_robin() {
        let table = RoutingTable::new();
        let first = route_to(&table, "default/a", "a-00001");
        table.set_owner_routes("default/a", vec![("a.default.localhost".into(), first)]);
        let published = table.route("a.default.localhost").unwrap();
        let again = route_to(&table, "default/a", "a-00001");
        table.set_owner_routes("default/a", vec![("a.default.localhost".into(), again)]);
        assert!(Arc::ptr_eq(
            &published,
            &table.route("a.default.localhost").unwrap()
        ));
    }

    #[test]
    fn a_host_taken_over_by_another_owner_is_not_removed_by_the_first() {
        let table = RoutingTable::new();
        let host = "x-a.default.localhost".to_owned();
        table.set_owner_routes(
            "default/a",
            vec![(host.clone(), route_to(&table, "default/a tag x", "a-00001"))],
        );
        table.set_owner_routes(
            "default/x-a",
            vec![(host.clone(), route_to(&table, "default/x-a", "x-a-00001"))],
        );
        table.remove_owner("default/a");
        assert_eq!(table.route(&host).unwrap().name, "default/x-a");
    }

    #[test]
    fn a_revision_has_one_capacity() {
        let table = RoutingTable::new();
        let a = table.revision(&key("x"));
        let b = table.revision(&key("x"));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
