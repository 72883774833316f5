//! A quantity the gateway hands out up to a limit (open connections, body bytes held):
//! taken without a lock, given back when the share is dropped. What is taken now is
//! also the gauge /metrics shows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// `n` more, if they fit under the limit.
    pub(crate) fn try_take(self: &Arc<Self>, n: usize) -> Option<Share> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .ok()
            .map(|_| Share {
                budget: self.clone(),
                n,
            })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// What one holder took; returned when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    budget: Arc<Budget>,
    n: usize,
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_fit_under_the_limit_and_come_back_when_dropped() {
        let b = Budget::new(3);
        let two = b.try_take(2).unwrap();
        assert!(b.try_take(2).is_none(), "2 + 2 is over 3");
        let one = b.try_take(1).unwrap();
        assert_eq!(b.used(), 3);
        assert!(b.try_take(1).is_none());
        drop(two);
        assert_eq!(b.used(), 1);
        assert!(b.try_take(2).is_some());
        drop(one);
        assert_eq!(b.used(), 0);
        assert!(b.try_take(usize::MAX).is_none(), "no overflow");
    }
}
