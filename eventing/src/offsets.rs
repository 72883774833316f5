//! Which offset a consumer may commit when events finish out of order: only up to the
//! lowest one still in flight, so that a crash never skips an event that was not
//! delivered (at least once).

use std::collections::BTreeSet;

#[derive(Debug, Clone, Default)]
pub struct OffsetTracker {
    in_flight: BTreeSet<i64>,
    /// The highest offset handed out so far.
    highest: Option<i64>,
    /// The first offset handed out: nothing below it is this tracker's to commit.
    first: Option<i64>,
    /// The last offset reported as committable.
    committed: Option<i64>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// An event at `offset` starts its delivery. Offsets arrive in increasing order.
    pub fn start(&mut self, offset: i64) {
        self.in_flight.insert(offset);
        self.first.get_or_insert(offset);
        self.highest = Some(self.highest.map_or(offset, |h| h.max(offset)));
    }

    /// The highest offset handed out so far.
    pub fn highest(&self) -> Option<i64> {
        self.highest
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The event at `offset` is done (delivered or dead-lettered). Returns the offset
    /// that may now be committed (everything up to and including it is done), if that
    /// moved forward.
    pub fn complete(&mut self, offset: i64) -> Option<i64> {
        self.in_flight.remove(&offset);
        let committable = match self.in_flight.first() {
            Some(lowest) => lowest - 1,
            None => self.highest?,
        };
        if self.committed.is_some_and(|c| c >= committable) {
            return None;
        }
        // Nothing below the first event handed out is ours to commit.
        if self.first.is_none_or(|f| committable < f) {
            return None;
        }
        self.committed = Some(committable);
        Some(committable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_done_prefix() {
        let mut t = OffsetTracker::new();
        for o in 10..15 {
            t.start(o);
        }
        // 10 and 11 are still in flight: nothing to commit yet.
        assert_eq!(t.complete(12), None);
        assert_eq!(t.complete(11), None);
        assert_eq!(t.complete(10), Some(12));
        assert_eq!(t.complete(14), None);
        assert_eq!(t.complete(13), Some(14));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn in_order_completion_commits_each() {
        let mut t = OffsetTracker::new();
        t.start(0);
        t.start(1);
        assert_eq!(t.complete(0), Some(0));
        assert_eq!(t.complete(1), Some(1));
    }

    #[test]
    fn an_event_stuck_in_flight_holds_the_commit_back() {
        let mut t = OffsetTracker::new();
        for o in 0..100 {
            t.start(o);
        }
        for o in 1..100 {
            assert_eq!(t.complete(o), None, "offset {o}");
        }
        assert_eq!(t.complete(0), Some(99));
    }
}
