//! The controller's work queue, as kube-runtime's: every key at most once, whether it
//! is due now or later; an event for a key that waits for a requeue makes it due now;
//! a key whose reconcile fails is retried later and later (per key, capped) until one
//! succeeds. Time is passed in, so the queue is tested without a clock.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The first retry of a failed key, doubled at each failure after it.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between retries of a key that keeps failing.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct WorkQueue<K> {
    ready: VecDeque<K>,
    in_ready: HashSet<K>,
    /// Keys due later, ordered by when (and a sequence number for equal instants).
    later: BTreeSet<(Instant, u64, K)>,
    due: HashMap<K, (Instant, u64)>,
    seq: u64,
    failures: HashMap<K, u32>,
}

impl<K> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            ready: VecDeque::new(),
            in_ready: HashSet::new(),
            later: BTreeSet::new(),
            due: HashMap::new(),
            seq: 0,
            failures: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// Due now.
    pub fn push(&mut self, key: K) {
        if let Some((at, seq)) = self.due.remove(&key) {
            self.later.remove(&(at, seq, key.clone()));
        }
        if self.in_ready.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Due at `at`, unless it is due sooner already.
    pub fn push_at(&mut self, key: K, at: Instant) {
        if self.in_ready.contains(&key) {
            return;
        }
        if let Some(&(current, seq)) = self.due.get(&key) {
            if current <= at {
                return;
            }
            self.later.remove(&(current, seq, key.clone()));
        }
        self.seq += 1;
        self.due.insert(key.clone(), (at, self.seq));
        self.later.insert((at, self.seq, key));
    }

    /// A reconcile of `key` failed at `now`: it is due again after its backoff, which is
    /// returned.
    pub fn retry_failed(&mut self, key: K, now: Instant) -> Duration {
        let failures = self.failures.entry(key.clone()).or_insert(0);
        let backoff = FIRST_RETRY
            .saturating_mul(1u32 << (*failures).min(16))
            .min(MAX_RETRY);
        *failures = failures.saturating_add(1);
        self.push_at(key, now + backoff);
        backoff
    }

    /// A reconcile of `key` succeeded: its next failure starts from the first retry.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Forget a key altogether (its object is gone).
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
        if let Some((at, seq)) = self.due.remove(key) {
            self.later.remove(&(at, seq, key.clone()));
        }
    }

    /// The next key due at `now`: first what was due already, then what has become due.
    pub fn pop(&mut self, now: Instant) -> Option<K> {
        while self.later.first().is_some_and(|(at, _, _)| *at <= now) {
            if let Some((_, _, key)) = self.later.pop_first() {
                self.due.remove(&key);
                if self.in_ready.insert(key.clone()) {
                    self.ready.push_back(key);
                }
            }
        }
        let key = self.ready.pop_front()?;
        self.in_ready.remove(&key);
        Some(key)
    }

    /// When the next key waiting for later is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.later.first().map(|(at, _, _)| *at)
    }

    /// Keys due now or later.
    pub fn len(&self) -> usize {
        self.ready.len() + self.later.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut WorkQueue<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| q.pop(now)).collect()
    }

    #[test]
    fn a_key_is_queued_once_however_often_it_is_pushed() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        for _ in 0..1000 {
            q.push("svc");
            q.push("rev");
        }
        q.push_at("svc", now + Duration::from_secs(5));
        assert_eq!(q.len(), 2);
        assert_eq!(drain(&mut q, now), ["svc", "rev"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_requeue_waits_until_due_and_an_event_makes_it_due_now() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        q.push_at("a", now + Duration::from_secs(10));
        q.push_at("a", now + Duration::from_secs(20));
        q.push_at("b", now + Duration::from_secs(5));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(5)));
        assert!(drain(&mut q, now).is_empty());
        assert_eq!(drain(&mut q, now + Duration::from_secs(5)), ["b"]);
        q.push("a");
        assert_eq!(q.next_due(), None);
        assert_eq!(drain(&mut q, now), ["a"]);
        assert!(q.is_empty());
    }

    #[test]
    fn failures_back_off_per_key_doubling_up_to_the_cap_and_reset_on_success() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        let waits: Vec<Duration> = (0..10)
            .map(|_| {
                let wait = q.retry_failed("broken", now);
                q.forget(&"nothing");
                assert_eq!(q.pop(now + wait - Duration::from_millis(1)), None);
                assert_eq!(q.pop(now + wait), Some("broken"));
                wait
            })
            .collect();
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(
            secs,
            [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
        );
        // Another key starts from the first retry.
        assert_eq!(q.retry_failed("other", now), FIRST_RETRY);
        q.succeeded(&"broken");
        assert_eq!(q.retry_failed("broken", now), FIRST_RETRY);
    }

    #[test]
    fn a_thousand_failing_keys_hold_one_entry_each() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        for round in 0..50 {
            for i in 0..1000u32 {
                q.retry_failed(i, now + Duration::from_secs(round));
            }
        }
        assert_eq!(q.len(), 1000);
    }
}
