//! What each trigger's dispatcher did, for Prometheus.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::delivery::Outcome;

/// The last event a dispatcher finished with, for a person asking what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastOutcome {
    /// `delivered`, `dead_lettered` or `dropped`, as the counters name them.
    pub outcome: &'static str,
    /// The subscriber's last status, or why the event was dropped.
    pub detail: Option<String>,
    pub event_id: String,
    pub at: DateTime<Utc>,
}

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
    /// Replies put back into the broker (or on to the next hop).
    pub replies: AtomicU64,
    /// Attempts to store a reply in the log that failed; each was tried again, or its
    /// event dead-lettered.
    pub reply_failures: AtomicU64,
    /// Events held uncommitted now because the log refused their reply through a
    /// whole round of retries and no dead-letter sink took them.
    pub replies_waiting: AtomicU64,
    /// Records that were not CloudEvents, skipped.
    pub malformed: AtomicU64,
    /// Time from reading an event to its final outcome, summed, in microseconds.
    latency_micros: AtomicU64,
    finished: AtomicU64,
    last: Mutex<Option<LastOutcome>>,
}

impl TriggerMetrics {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, outcome: &Outcome, took: Duration, event_id: &str) {
        self.finished_because(outcome, None, took, event_id);
    }

    /// As [`TriggerMetrics::finished`], with why it ended so when the outcome does not
    /// say (an event dead-lettered because its reply could not be stored).
    pub fn finished_because(
        &self,
        outcome: &Outcome,
        why: Option<String>,
        took: Duration,
        event_id: &str,
    ) {
        let (counter, name, detail) = match outcome {
            Outcome::Delivered { reply } => (
                &self.delivered,
                "delivered",
                reply.as_ref().map(|_| "with a reply".to_owned()),
            ),
            Outcome::DeadLettered { status } => (
                &self.dead_lettered,
                "dead_lettered",
                status.map(|s| format!("the subscriber answered {s}")),
            ),
            Outcome::Dropped { reason } => (&self.dropped, "dropped", Some(reason.clone())),
        };
        let detail = why.or(detail);
        self.count(counter);
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastOutcome {
            outcome: name,
            detail,
            event_id: event_id.to_owned(),
            at: Utc::now(),
        });
    }

    /// Every count of events by what became of them, by the name Prometheus and
    /// `paas describe` give it.
    pub fn counts(&self) -> [(&'static str, u64); 7] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("received", get(&self.received)),
            ("filtered", get(&self.filtered)),
            ("delivered", get(&self.delivered)),
            ("dead_lettered", get(&self.dead_lettered)),
            ("dropped", get(&self.dropped)),
            ("replied", get(&self.replies)),
            ("malformed", get(&self.malformed)),
        ]
    }

    pub fn last(&self) -> Option<LastOutcome> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        for (outcome, count) in m.counts() {
            let _ = writeln!(
                out,
                "paas_trigger_events_total{{trigger=\"{trigger}\",outcome=\"{outcome}\"}} {count}"
            );
        }
    }
    gauge_or_counter(
        out,
        &triggers,
        "paas_trigger_reply_failures_total counter",
        "Attempts to store a reply in the event log that failed (each retried, or its event dead-lettered).",
        |m| get(&m.reply_failures),
    );
    gauge_or_counter(
        out,
        &triggers,
        "paas_trigger_replies_waiting gauge",
        "Events held uncommitted until the event log takes their reply.",
        |m| get(&m.replies_waiting),
    );
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

/// One metric family with a value per trigger; `name_type` is `NAME TYPE`.
fn gauge_or_counter(
    out: &mut String,
    triggers: &[(&str, &TriggerMetrics)],
    name_type: &str,
    help: &str,
    value: impl Fn(&TriggerMetrics) -> u64,
) {
    let name = name_type.split(' ').next().unwrap_or(name_type);
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name_type}");
    for (trigger, m) in triggers {
        let _ = writeln!(out, "{name}{{trigger=\"{trigger}\"}} {}", value(m));
    }
}
