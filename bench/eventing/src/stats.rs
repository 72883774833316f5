//! Throughput and latency percentiles of one measured batch.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub events_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub delivered: usize,
}

/// Events `range` were sent at `sent` and arrived at `arrived` (ns since the epoch).
pub fn figures(
    sent: &[AtomicU64],
    arrived: &[AtomicU64],
    range: std::ops::Range<usize>,
) -> Figures {
    let mut latencies = Vec::with_capacity(range.len());
    let (mut first_sent, mut last_arrived) = (u64::MAX, 0);
    for i in range {
        let (s, a) = (
            sent[i].load(Ordering::Relaxed),
            arrived[i].load(Ordering::Relaxed),
        );
        if s == 0 || a == 0 {
            continue;
        }
        first_sent = first_sent.min(s);
        last_arrived = last_arrived.max(a);
        latencies.push(a.saturating_sub(s));
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1e6
    };
    let span = last_arrived.saturating_sub(first_sent).max(1) as f64 / 1e9;
    Figures {
        events_per_s: latencies.len() as f64 / span,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        delivered: latencies.len(),
    }
}
