//! Per-second buckets of one revision's load: average requests in flight, and
//! requests that arrived, over windows ending now.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    /// Whole seconds since the window's origin.
    second: u64,
    concurrency_sum: f64,
    samples: u32,
    requests: u64,
}

/// The recent past of one revision, one bucket per second.
#[derive(Debug, Clone)]
pub struct MetricWindow {
    origin: Instant,
    buckets: VecDeque<Bucket>,
    keep: Duration,
    /// The last time anything was in flight or arrived, for pod retention.
    last_active: Option<Instant>,
    first: Option<Instant>,
    /// Set while nobody samples the revision (it is at zero with no load, see
    /// [`MetricWindow::rest`]): the seconds since count as samples of nothing.
    resting_since: Option<Instant>,
}

/// The window's view at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averages {
    pub stable: f64,
    pub panic: f64,
}

impl MetricWindow {
    /// A window that keeps `keep` (the longest window asked of it) of history.
    pub fn new(origin: Instant, keep: Duration) -> Self {
        Self {
            origin,
            buckets: VecDeque::new(),
            keep,
            last_active: None,
            first: None,
            resting_since: None,
        }
    }

    /// Sampling stops at `at`: the revision is at zero and nothing arrives (a request
    /// for it wakes it through the activator), so samples of zero are not taken.
    pub fn rest(&mut self, at: Instant) {
        self.resting_since.get_or_insert(at);
    }

    pub fn is_resting(&self) -> bool {
        self.resting_since.is_some()
    }

    /// Sampling starts again at `at`: each second at rest becomes a bucket of one zero
    /// sample, so that the averages read as if zeros had been recorded all along.
    pub fn resume(&mut self, at: Instant) {
        let Some(since) = self.resting_since.take() else {
            return;
        };
        let now = self.second(at);
        // Older seconds would fall out at once.
        let from = (self.second(since) + 1).max(now.saturating_sub(self.keep.as_secs() + 1));
        for second in from..=now {
            if self.buckets.back().is_some_and(|b| b.second >= second) {
                continue;
            }
            self.buckets.push_back(Bucket {
                second,
                concurrency_sum: 0.0,
                samples: 1,
                requests: 0,
            });
        }
        self.prune(now);
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Record a sample taken at `at`: `in_flight` requests now, `arrived` since the last.
    pub fn record(&mut self, at: Instant, in_flight: f64, arrived: u64) {
        self.first.get_or_insert(at);
        let second = self.second(at);
        if in_flight > 0.0 || arrived > 0 {
            self.last_active = Some(at);
        }
        match self.buckets.back_mut() {
            Some(b) if b.second == second => {
                b.concurrency_sum += in_flight;
                b.samples += 1;
                b.requests += arrived;
            }
            _ => self.buckets.push_back(Bucket {
                second,
                concurrency_sum: in_flight,
                samples: 1,
                requests: arrived,
            }),
        }
        self.prune(second);
    }

    /// Drop the buckets older than what is kept at `second`.
    fn prune(&mut self, second: u64) {
        let oldest = second.saturating_sub(self.keep.as_secs() + 1);
        while self.buckets.front().is_some_and(|b| b.second < oldest) {
            self.buckets.pop_front();
        }
    }

    pub fn set_keep(&mut self, keep: Duration) {
        self.keep = keep;
    }

    /// When the first sample was recorded: before a full window of samples, the
    /// averages speak for less time than the window.
    pub fn first_sample(&self) -> Option<Instant> {
        self.first
    }

    pub fn last_active(&self) -> Option<Instant> {
        self.last_active
    }

    /// Whether any sample falls in the window ending at `now`.
    pub fn has_data(&self, now: Instant, window: Duration) -> bool {
        let from = self.second(now).saturating_sub(window.as_secs().max(1) - 1);
        self.buckets.iter().any(|b| b.second >= from)
    }

    /// Average in-flight requests over the `window` ending at `now`; seconds with no
    /// sample at all (before the revision was first seen) do not count.
    pub fn concurrency(&self, now: Instant, window: Duration) -> Option<f64> {
        let from = self.second(now).saturating_sub(window.as_secs().max(1) - 1);
        let (sum, n) = self
            .buckets
            .iter()
            .filter(|b| b.second >= from)
            .fold((0.0, 0u32), |(s, n), b| {
                (s + b.concurrency_sum / f64::from(b.samples.max(1)), n + 1)
            });
        (n > 0).then(|| sum / f64::from(n))
    }

    /// Requests per second over the `window` ending at `now`.
    pub fn rps(&self, now: Instant, window: Duration) -> Option<f64> {
        let from = self.second(now).saturating_sub(window.as_secs().max(1) - 1);
        let (sum, n) = self
            .buckets
            .iter()
            .filter(|b| b.second >= from)
            .fold((0u64, 0u32), |(s, n), b| (s + b.requests, n + 1));
        (n > 0).then(|| sum as f64 / f64::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn averages_per_second_over_the_window() {
        let origin = Instant::now();
        let mut w = MetricWindow::new(origin, Duration::from_secs(60));
        // Second 0: two samples, 10 and 20 in flight; second 1: 30.
        w.record(origin, 10.0, 5);
        w.record(origin + Duration::from_millis(500), 20.0, 5);
        w.record(origin + Duration::from_secs(1), 30.0, 20);
        let now = origin + Duration::from_secs(1);
        assert_eq!(w.concurrency(now, Duration::from_secs(60)), Some(22.5));
        assert_eq!(w.concurrency(now, Duration::from_secs(1)), Some(30.0));
        assert_eq!(w.rps(now, Duration::from_secs(60)), Some(15.0));
    }

    #[tokio::test(start_paused = true)]
    async fn old_buckets_fall_out() {
        let origin = Instant::now();
        let mut w = MetricWindow::new(origin, Duration::from_secs(6));
        w.record(origin, 100.0, 0);
        for s in 1..=10 {
            w.record(origin + Duration::from_secs(s), 0.0, 0);
        }
        let now = origin + Duration::from_secs(10);
        assert_eq!(w.concurrency(now, Duration::from_secs(6)), Some(0.0));
        assert!(w.buckets.len() <= 8);
        assert_eq!(w.last_active(), Some(origin));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rest_reads_as_zeros_recorded_all_along() {
        let origin = Instant::now();
        let keep = Duration::from_secs(60);
        let at = |tenth: u64| origin + Duration::from_millis(tenth * 100);
        let mut sampled = MetricWindow::new(origin, keep);
        let mut rested = MetricWindow::new(origin, keep);
        for w in [&mut sampled, &mut rested] {
            w.record(at(0), 4.0, 2);
            w.record(at(10), 2.0, 1);
            for tenth in 11..20 {
                w.record(at(tenth), 0.0, 0);
            }
        }
        rested.rest(at(19));
        assert!(rested.is_resting());
        // One is sampled every 100 ms for 19 s more, the other rests.
        for tenth in 20..=210 {
            sampled.record(at(tenth), 0.0, 0);
        }
        let woken = origin + Duration::from_millis(21_050);
        rested.resume(woken);
        assert!(!rested.is_resting());
        for w in [&mut sampled, &mut rested] {
            w.record(woken, 1.0, 1);
        }
        for window in [60, 6, 1].map(Duration::from_secs) {
            assert_eq!(rested.rps(woken, window), sampled.rps(woken, window));
            assert_eq!(
                rested.concurrency(woken, window),
                sampled.concurrency(woken, window)
            );
        }
        assert_eq!(rested.last_active(), sampled.last_active());
        assert_eq!(rested.first_sample(), sampled.first_sample());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rest_longer_than_the_window_keeps_only_the_window() {
        let origin = Instant::now();
        let mut w = MetricWindow::new(origin, Duration::from_secs(6));
        w.record(origin, 10.0, 5);
        w.rest(origin);
        let woken = origin + Duration::from_secs(3600);
        w.resume(woken);
        assert!(w.buckets.len() <= 8, "{}", w.buckets.len());
        assert_eq!(w.concurrency(woken, Duration::from_secs(6)), Some(0.0));
        assert_eq!(w.rps(woken, Duration::from_secs(6)), Some(0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn no_data_is_none() {
        let origin = Instant::now();
        let w = MetricWindow::new(origin, Duration::from_secs(60));
        assert_eq!(w.concurrency(origin, Duration::from_secs(60)), None);
        assert!(!w.has_data(origin, Duration::from_secs(6)));
    }
}
