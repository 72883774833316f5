//! Per-revision capacity: ready endpoints, their in-flight counts, the concurrency
//! limit, and the bounded queue of requests waiting for a slot.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use paas_api::RevisionKey;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Poke;

/// Requests that may wait for one revision; beyond, they are refused with a 503.
pub const DEFAULT_QUEUE_LIMIT: usize = 10_000;

/// An endpoint that refused a connection is skipped this long, so that requests go to
/// the others until the fleet notices the replica is gone.
const SUSPECT_FOR: Duration = Duration::from_secs(1);

/// One ready replica.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The address as a URI authority, built once rather than per request.
    pub authority: http::uri::Authority,
    pub in_flight: AtomicUsize,
    /// Milliseconds since [`epoch`] when a connection to it last failed; 0 if never.
    failed_at: AtomicU64,
}

/// A fixed origin for the millisecond stamps kept in atomics.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_now() -> u64 {
    // +1 so that a failure in the very first millisecond is not read as "never".
    Instant::now()
        .saturating_duration_since(epoch())
        .as_millis() as u64
        + 1
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
            failed_at: AtomicU64::new(0),
        })
    }

    /// A connection to it failed: route around it for a moment.
    pub fn mark_failed(&self) {
        self.failed_at.store(millis_now(), Ordering::Relaxed);
    }

    fn suspect(&self) -> bool {
        let at = self.failed_at.load(Ordering::Relaxed);
        at != 0 && millis_now().saturating_sub(at) < SUSPECT_FOR.as_millis() as u64
    }
}

/// Why a request got no replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    #[error("{revision} has {waiting} requests waiting already")]
    QueueFull {
        revision: RevisionKey,
        waiting: usize,
    },
    #[error("{revision} had no free replica within the request's timeout")]
    Timeout { revision: RevisionKey },
}

/// The capacity of one revision.
#[derive(Debug)]
pub struct Capacity {
    pub key: RevisionKey,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    timeout_ms: AtomicU64,
    /// Requests one replica may serve at once; 0 is unlimited.
    container_concurrency: AtomicU32,
    queue_limit: usize,
    next: AtomicUsize,
    /// Requests holding a permit.
    pub in_flight: AtomicUsize,
    /// Requests waiting for one.
    pub waiting: AtomicUsize,
    /// Requests that arrived, served or not.
    pub requests: AtomicU64,
    /// What the answers were, for checks on this revision alone (canaries).
    pub outcomes: crate::Outcomes,
    freed: Notify,
}

impl Capacity {
    pub fn new(key: RevisionKey) -> Self {
        Self {
            key,
            endpoints: ArcSwap::from_pointee(Vec::new()),
            timeout_ms: AtomicU64::new(300_000),
            container_concurrency: AtomicU32::new(0),
            queue_limit: DEFAULT_QUEUE_LIMIT,
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            outcomes: crate::Outcomes::default(),
            freed: Notify::new(),
        }
    }

    /// Replace the ready set. Endpoints that stay keep their in-flight counts; waiting
    /// requests look again.
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
        self.freed.notify_waiters();
    }

    pub fn ready(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    pub fn set_timeout(&self, t: Duration) {
        self.timeout_ms
            .store(t.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    pub fn set_container_concurrency(&self, limit: u32) {
        if self.container_concurrency.swap(limit, Ordering::Relaxed) != limit {
            self.freed.notify_waiters();
        }
    }

    /// A permit on the least-loaded ready endpoint with a free slot, if there is one.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let limit = self.container_concurrency.load(Ordering::Relaxed) as usize;
        let eps = self.endpoints.load();
        let n = eps.len();
        if n == 0 {
            return None;
        }
        // A few rounds: another request may take the slot between choice and claim.
        for _ in 0..4 {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let candidates = (0..n).map(|i| &eps[(start + i) % n]);
            let healthy = candidates.clone().filter(|e| !e.suspect());
            // If every endpoint is suspect, try them anyway rather than wait.
            let best = healthy
                .min_by_key(|e| e.in_flight.load(Ordering::Relaxed))
                .or_else(|| candidates.min_by_key(|e| e.in_flight.load(Ordering::Relaxed)))?;
            let claimed = best
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| {
                    (limit == 0 || c < limit).then_some(c + 1)
                })
                .is_ok();
            if claimed {
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                return Some(Permit {
                    endpoint: best.clone(),
                    capacity: self.clone(),
                });
            }
            if limit != 0
                && eps
                    .iter()
                    .all(|e| e.in_flight.load(Ordering::Relaxed) >= limit)
            {
                return None;
            }
        }
        None
    }

    /// A permit, waiting for one until `deadline`. A revision with no ready replica at
    /// all pokes the autoscaler so that it scales from zero now.
    pub async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        poke: &dyn Poke,
    ) -> Result<Permit, AcquireError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.try_acquire() {
            return Ok(p);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = WaitingGuard(self);
        if waiting >= self.queue_limit {
            return Err(AcquireError::QueueFull {
                revision: self.key.clone(),
                waiting,
            });
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a slot freed in between is not missed.
            freed.as_mut().enable();
            if let Some(p) = self.try_acquire() {
                return Ok(p);
            }
            if self.endpoints.load().is_empty() {
                poke.poke(&self.key);
            }
            tokio::select! {
                _ = &mut freed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return self.try_acquire().ok_or_else(|| AcquireError::Timeout { revision: self.key.clone() });
                }
            }
        }
    }
}

struct WaitingGuard<'a>(&'a Capacity);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request's claim on one endpoint's slot; released when dropped.
#[derive(Debug)]
pub struct Permit {
    endpoint: Arc<Endpoint>,
    capacity: Arc<Capacity>,
}

impl Permit {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    pub fn capacity(&self) -> &Arc<Capacity> {
        &self.capacity
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.capacity.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.capacity.waiting.load(Ordering::Acquire) > 0 {
            self.capacity.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoPoke;
    use std::sync::Mutex;

    fn capacity() -> Arc<Capacity> {
        Arc::new(Capacity::new(RevisionKey {
            namespace: "default".into(),
            name: "hello-00001".into(),
        }))
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[derive(Debug, Default)]
    struct CountPokes(Mutex<u32>);

    impl Poke for CountPokes {
        fn poke(&self, _: &RevisionKey) {
            *self.0.lock().unwrap() += 1;
        }
    }

    #[test]
    fn least_in_flight_wins() {
        let c = capacity();
        c.set_ready(&[addr(1), addr(2)]);
        let first = c.try_acquire().unwrap();
        let second = c.try_acquire().unwrap();
        assert_ne!(first.endpoint().addr, second.endpoint().addr);
        assert_eq!(c.in_flight.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!(c.in_flight.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn container_concurrency_is_a_hard_limit() {
        let c = capacity();
        c.set_container_concurrency(2);
        c.set_ready(&[addr(1)]);
        let a = c.try_acquire().unwrap();
        let _b = c.try_acquire().unwrap();
        assert!(c.try_acquire().is_none());
        drop(a);
        assert!(c.try_acquire().is_some());
    }

    #[test]
    fn a_suspect_endpoint_is_avoided() {
        let c = capacity();
        c.set_ready(&[addr(1), addr(2)]);
        c.ready()[0].mark_failed();
        for _ in 0..5 {
            assert_eq!(c.try_acquire().unwrap().endpoint().addr, addr(2));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_a_replica_and_pokes_the_autoscaler() {
        let c = capacity();
        let pokes = Arc::new(CountPokes::default());
        let waiter = {
            let c = c.clone();
            let pokes = pokes.clone();
            tokio::spawn(async move {
                c.acquire(Instant::now() + Duration::from_secs(10), &*pokes)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(c.waiting.load(Ordering::Relaxed), 1);
        assert!(*pokes.0.lock().unwrap() >= 1);
        c.set_ready(&[addr(7)]);
        let permit = waiter.await.unwrap().unwrap();
        assert_eq!(permit.endpoint().addr, addr(7));
        assert_eq!(c.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_ends_when_one_frees() {
        let c = capacity();
        c.set_container_concurrency(1);
        c.set_ready(&[addr(1)]);
        let held = c.try_acquire().unwrap();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move {
                c.acquire(Instant::now() + Duration::from_secs(10), &NoPoke)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_at_the_deadline() {
        let c = capacity();
        let r = c
            .acquire(Instant::now() + Duration::from_secs(2), &NoPoke)
            .await;
        assert!(matches!(r, Err(AcquireError::Timeout { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded() {
        let c = Arc::new(Capacity {
            queue_limit: 2,
            ..Capacity::new(RevisionKey {
                namespace: "default".into(),
                name: "x".into(),
            })
        });
        let mut waiters = Vec::new();
        for _ in 0..2 {
            let c = c.clone();
            waiters.push(tokio::spawn(async move {
                c.acquire(Instant::now() + Duration::from_secs(10), &NoPoke)
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = c
            .acquire(Instant::now() + Duration::from_secs(10), &NoPoke)
            .await;
        assert!(matches!(r, Err(AcquireError::QueueFull { .. })));
        c.set_ready(&[addr(1)]);
        for w in waiters {
            assert!(w.await.unwrap().is_ok());
        }
    }
}
