//! Kubernetes' CrashLoopBackOff for a revision whose replicas cannot start or keep
//! exiting: the next start waits 10 s, then 20 s, 40 s... up to 5 min; a replica that
//! ran for 10 min before its crash starts the count again. Pure: time is passed in.

use std::time::Duration;

use tokio::time::Instant;

pub const FIRST_DELAY: Duration = Duration::from_secs(10);
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A crash this long after the previous one is a first crash again (as the kubelet
/// forgets a back-off after twice its cap).
pub const STABLE_RUN: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashBackoff {
    /// Crashes in a row, counted since the last stable run.
    pub crashes: u32,
    last_crash: Option<Instant>,
    not_before: Option<Instant>,
}

impl CrashBackoff {
    /// A replica crashed (exited, failed to start, never became ready) at `now`: the
    /// delay before the next start.
    pub fn crashed(&mut self, now: Instant) -> Duration {
        if self
            .last_crash
            .is_some_and(|last| now.saturating_duration_since(last) >= STABLE_RUN)
        {
            self.crashes = 0;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << self.crashes.min(16))
            .min(MAX_DELAY);
        self.crashes = self.crashes.saturating_add(1);
        self.last_crash = Some(now);
        self.not_before = Some(now + delay);
        delay
    }

    /// Whether a replica may be started at `now`.
    pub fn may_start(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// When the next start may happen, while it is still ahead.
    pub fn next_start(&self, now: Instant) -> Option<Instant> {
        self.not_before.filter(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let mut now = Instant::now();
        let mut b = CrashBackoff::default();
        assert!(b.may_start(now));
        let mut delays = vec![];
        for _ in 0..8 {
            let d = b.crashed(now);
            assert!(!b.may_start(now + d - Duration::from_millis(1)));
            assert_eq!(b.next_start(now), Some(now + d));
            now += d;
            assert!(b.may_start(now));
            assert_eq!(b.next_start(now), None);
            delays.push(d.as_secs());
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.crashes, 8);
    }

    #[test]
    fn a_crash_after_a_stable_run_starts_the_count_again() {
        let now = Instant::now();
        let mut b = CrashBackoff::default();
        for _ in 0..4 {
            b.crashed(now);
        }
        let later = now + STABLE_RUN - Duration::from_secs(1);
        assert_eq!(b.crashed(later), Duration::from_secs(160));
        let much_later = later + STABLE_RUN;
        assert_eq!(b.crashed(much_later), FIRST_DELAY);
        assert_eq!(b.crashes, 1);
    }
}
