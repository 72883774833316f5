//! Readiness probing: which replicas are due (pure), probing them (the only I/O here),
//! and what the results mean (pure).
//!
//! New replicas are probed every millisecond, then every 50 ms, until ready (a fast
//! start matters more than a few wasted probes); ready ones at the probe's period.

use std::net::SocketAddr;
use std::time::Duration;

use paas_runtime::probe::{is_ready, ReadinessCheck};
use tokio::time::Instant;

use super::plan::{publish, Action, FleetState, StopReason, REPLACE_GRACE};

/// How often a replica that is not ready yet is probed: very often right after it
/// starts (most apps listen within milliseconds and a cold request is waiting), then
/// every 50 ms.
pub(super) const EAGER_PROBE_INTERVAL: Duration = Duration::from_millis(1);
pub(super) const EAGER_PROBING_FOR: Duration = Duration::from_millis(250);
pub(super) const STARTUP_PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// One probe to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) uid: String,
    pub(super) id: String,
    pub(super) addr: SocketAddr,
    pub(super) check: ReadinessCheck,
}

/// A probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probed {
    pub(super) uid: String,
    pub(super) id: String,
    pub(super) ok: bool,
}

/// Whether a tracked replica is probed at all: it serves (not frozen) and has an
/// address to probe.
fn probed(t: &super::plan::Tracked) -> bool {
    t.serving() && t.addr.is_some()
}

/// The probes due at `now`.
pub(super) fn due(state: &FleetState, now: Instant) -> Vec<Probe> {
    let mut due = Vec::new();
    for (uid, s) in &state.revisions {
        let Some(d) = s.desired.as_ref() else {
            continue;
        };
        for t in s
            .replicas
            .iter()
            .filter(|t| probed(t) && t.next_probe <= now)
        {
            if let Some(addr) = t.addr {
                due.push(Probe {
                    uid: uid.clone(),
                    id: t.id.clone(),
                    addr,
                    check: d.check.clone(),
                });
            }
        }
    }
    due
}

/// When the next probe is due, if any replica is probed at all. A replica without an
/// address is never probed, so it sets no time: else the fleet would wake at once,
/// again and again, until the sync replaced it.
pub(super) fn next_due(state: &FleetState) -> Option<Instant> {
    state
        .revisions
        .values()
        .filter(|s| s.desired.is_some())
        .flat_map(|s| {
            s.replicas
                .iter()
                .filter(|t| probed(t))
                .map(|t| t.next_probe)
        })
        .min()
}

/// Probe side by side.
pub(super) async fn run(due: Vec<Probe>) -> Vec<Probed> {
    let tasks: Vec<_> = due
        .into_iter()
        .map(|p| {
            tokio::spawn(async move {
                let ok = is_ready(p.addr, &p.check).await;
                Probed {
                    uid: p.uid,
                    id: p.id,
                    ok,
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(r) = task.await {
            results.push(r);
        }
    }
    results
}

/// Apply probe results at `now`: the next probe of each replica, who is ready, and the
/// replicas that failed too many probes in a row, to stop (and replace).
pub(super) fn record(state: &mut FleetState, results: Vec<Probed>, now: Instant) -> Vec<Action> {
    let mut actions = Vec::new();
    for Probed { uid, id, ok } in results {
        let Some(rev) = state.revisions.get_mut(&uid) else {
            continue;
        };
        let Some(d) = rev.desired.as_ref() else {
            continue;
        };
        let Some(t) = rev.replicas.iter_mut().find(|t| t.id == id) else {
            continue;
        };
        if ok {
            t.failures = 0;
            if !t.ready {
                actions.push(Action::Ready {
                    key: d.key.clone(),
                    id: id.clone(),
                    after: now.duration_since(t.started),
                });
            }
            t.ready = true;
            t.ever_ready = true;
            t.next_probe = now + d.period;
        } else if t.ever_ready {
            t.failures += 1;
            t.ready = t.failures < d.failure_threshold;
            t.next_probe = now + d.period.min(Duration::from_secs(1));
            if t.failures >= d.failure_threshold {
                rev.observed.failure = Some(format!(
                    "replica {} failed {} readiness probes in a row",
                    paas_runtime::short(&id),
                    t.failures
                ));
                rev.replicas.retain(|t| t.id != id);
                actions.push(Action::Stop {
                    id,
                    grace: REPLACE_GRACE,
                    why: StopReason::FailsReadiness,
                });
            }
        } else if now.duration_since(t.started) < EAGER_PROBING_FOR {
            t.next_probe = now + EAGER_PROBE_INTERVAL;
        } else {
            t.next_probe = now + STARTUP_PROBE_INTERVAL;
        }
    }
    publish(&mut state.revisions, &state.live, &mut actions);
    actions
}
