//! What became of a revision's requests, as the gateway saw them: answers, server
//! errors and a latency histogram. Cumulative; a reader takes snapshots and compares
//! two (the canary checks compare a step's end with its start).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in milliseconds; the last catches the rest.
pub const LATENCY_BUCKETS_MS: [u64; 16] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    u64::MAX,
];

#[derive(Debug, Default)]
pub struct Outcomes {
    responses: AtomicU64,
    /// Answers of 500 and above, the gateway's own (502, 503, 504) included.
    errors: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
}

/// The counters at one moment, or the difference between two moments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeSnapshot {
    pub responses: u64,
    pub errors: u64,
    pub buckets: Vec<u64>,
}

impl Outcomes {
    pub fn record(&self, status: u16, latency: Duration) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let ms = latency.as_millis() as u64;
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> OutcomeSnapshot {
        OutcomeSnapshot {
            responses: self.responses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

impl OutcomeSnapshot {
    /// What happened after `earlier`; `None` when the counters went backwards (the
    /// process restarted since), so that the caller starts measuring again.
    pub fn since(&self, earlier: &OutcomeSnapshot) -> Option<OutcomeSnapshot> {
        if self.responses < earlier.responses || self.buckets.len() != earlier.buckets.len() {
            return None;
        }
        Some(OutcomeSnapshot {
            responses: self.responses - earlier.responses,
            errors: self.errors.checked_sub(earlier.errors)?,
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(a, b)| a.checked_sub(*b))
                .collect::<Option<_>>()?,
        })
    }

    /// Share of answers below 500, in percent (100 with no answers).
    pub fn success_percent(&self) -> f64 {
        if self.responses == 0 {
            return 100.0;
        }
        100.0 * (self.responses - self.errors) as f64 / self.responses as f64
    }

    /// The 99th percentile's bucket bound, in milliseconds (`None` without answers or
    /// when it is beyond the last bound).
    pub fn p99_ms(&self) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = total - total / 100;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BUCKETS_MS
                    .get(i)
                    .copied()
                    .filter(|b| *b != u64::MAX);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_between_two_snapshots() {
        let o = Outcomes::default();
        for _ in 0..50 {
            o.record(200, Duration::from_millis(3));
        }
        let start = o.snapshot();
        for i in 0..100 {
            o.record(
                if i % 2 == 0 { 500 } else { 200 },
                Duration::from_millis(40),
            );
        }
        let window = o.snapshot().since(&start).unwrap();
        assert_eq!(window.responses, 100);
        assert_eq!(window.errors, 50);
        assert_eq!(window.success_percent(), 50.0);
        assert_eq!(window.p99_ms(), Some(50));
        // A restart (counters from zero) is no window.
        assert_eq!(Outcomes::default().snapshot().since(&start), None);
    }

    #[test]
    fn p99_is_the_bucket_holding_the_slowest_percent() {
        let o = Outcomes::default();
        for _ in 0..990 {
            o.record(200, Duration::from_millis(1));
        }
        for _ in 0..10 {
            o.record(200, Duration::from_millis(700));
        }
        assert_eq!(o.snapshot().p99_ms(), Some(1));
        o.record(200, Duration::from_millis(700));
        assert_eq!(o.snapshot().p99_ms(), Some(1_000));
    }
}
