//! What each trigger's dispatcher did, for Prometheus.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::delivery::Outcome;

/// Counters of one trigger; cheap to bump from every delivery task.
#[derive(Debug, Default)]
pub struct TriggerMetrics {
    /// Records read from the broker's topic.
    pub received: AtomicU64,
    /// Events the trigger's filter did not pass.
    pub filtered: AtomicU64,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dropped: AtomicU64,
    /// Replies put back into the broker.
    pub replies: AtomicU64,
    /// Records that were not CloudEvents, skipped.
    pub malformed: AtomicU64,
    /// Time from reading an event to its final outcome, summed, in microseconds.
    latency_micros: AtomicU64,
    finished: AtomicU64,
}

impl TriggerMetrics {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, outcome: &Outcome, took: Duration) {
        self.count(match outcome {
            Outcome::Delivered { .. } => &self.delivered,
            Outcome::DeadLettered { .. } => &self.dead_lettered,
            Outcome::Dropped { .. } => &self.dropped,
        });
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Prometheus text for every trigger, `trigger` being `namespace/name`.
pub(super) fn render<'a>(
    out: &mut String,
    triggers: impl Iterator<Item = (&'a str, &'a TriggerMetrics)>,
) {
    let triggers: Vec<_> = triggers.collect();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP paas_trigger_events_total Events a trigger's dispatcher read, by what became of them.\n# TYPE paas_trigger_events_total counter"
    );
    for (trigger, m) in &triggers {
        for (outcome, counter) in [
            ("received", &m.received),
            ("filtered", &m.filtered),
            ("delivered", &m.delivered),
            ("dead_lettered", &m.dead_lettered),
            ("dropped", &m.dropped),
            ("replied", &m.replies),
            ("malformed", &m.malformed),
        ] {
            let _ = writeln!(
                out,
                "paas_trigger_events_total{{trigger=\"{trigger}\",outcome=\"{outcome}\"}} {}",
                get(counter)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP paas_trigger_delivery_seconds Time from reading an event to its final outcome (retries included).\n# TYPE paas_trigger_delivery_seconds summary"
    );
    for (trigger, m) in &triggers {
        let _ = writeln!(
            out,
            "paas_trigger_delivery_seconds_sum{{trigger=\"{trigger}\"}} {:.6}\npaas_trigger_delivery_seconds_count{{trigger=\"{trigger}\"}} {}",
            get(&m.latency_micros) as f64 / 1e6,
            get(&m.finished)
        );
    }
}
