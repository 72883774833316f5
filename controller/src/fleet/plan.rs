//! The fleet's decisions, free of I/O: from what the fleet tracks, what the runtime
//! lists and the time, which replicas to start, stop, drain, freeze, thaw and adopt.
//! No clock is read, nothing is spawned and nothing is asked of the runtime here, so
//! that every decision is tested from plain values (see the tests below); `execute.rs`
//! carries the actions out.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Timelike as _;
use paas_api::RevisionKey;
use paas_runtime::{Replica, ReplicaSpec, ReplicaState};
use tokio::time::Instant;

use super::{Desired, IdlePolicy, Observed};
use crate::crash_backoff::CrashBackoff;

/// How long a replica may take to become ready before it is replaced.
pub(super) const STARTUP_DEADLINE: Duration = Duration::from_secs(120);
/// Time a stopped replica gets to finish before it is killed.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);
/// Time given to a replica that exited or fails its probes: it serves nothing to finish.
pub(super) const REPLACE_GRACE: Duration = Duration::from_secs(1);

/// The time, read once by the caller: the monotonic clock for every decision, and the
/// wall clock only for the next start shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    pub(crate) at: Instant,
    pub(crate) utc: chrono::DateTime<chrono::Utc>,
}

impl Now {
    pub(crate) fn read() -> Self {
        Self {
            at: Instant::now(),
            utc: chrono::Utc::now(),
        }
    }
}

/// One replica the fleet looks after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tracked {
    pub(super) id: String,
    pub(super) addr: Option<SocketAddr>,
    pub(super) started: Instant,
    pub(super) ready: bool,
    pub(super) ever_ready: bool,
    pub(super) failures: u32,
    pub(super) next_probe: Instant,
    /// Since when the replica is frozen (or being frozen); it serves nothing then.
    pub(super) frozen_at: Option<Instant>,
}

impl Tracked {
    /// A replica just started (or adopted): probed at once.
    pub(super) fn new(r: &Replica, now: Instant) -> Self {
        Self {
            id: r.id.clone(),
            addr: r.address,
            started: now,
            ready: false,
            ever_ready: false,
            failures: 0,
            next_probe: now,
            frozen_at: None,
        }
    }

    /// A frozen replica is serving again: probe it as if it had just started.
    fn wake(&mut self, now: Instant) {
        self.frozen_at = None;
        self.ready = false;
        self.failures = 0;
        self.started = now;
        self.next_probe = now;
    }

    /// Whether it may serve requests (not frozen, nor being frozen).
    pub(super) fn serving(&self) -> bool {
        self.frozen_at.is_none()
    }
}

/// Everything the fleet knows of one revision.
#[derive(Debug, Default)]
pub(super) struct RevisionState {
    pub(super) desired: Option<Desired>,
    pub(super) replicas: Vec<Tracked>,
    pub(super) observed: Observed,
    /// The revision was deleted: once its replicas are gone, it is forgotten.
    pub(super) removed: bool,
    /// Starts wait after crashes, as Kubernetes' CrashLoopBackOff.
    pub(super) backoff: CrashBackoff,
    /// The ready set last given to the routing table; `None` before the first.
    published: Option<Vec<SocketAddr>>,
}

/// Everything the fleet knows, behind its one lock.
#[derive(Debug)]
pub(super) struct FleetState {
    /// By revision uid.
    pub(super) revisions: HashMap<String, RevisionState>,
    /// The autoscaler's counts, by revision; kept apart so that a reconcile never
    /// overrides them.
    pub(super) scales: HashMap<RevisionKey, u32>,
    /// The uid of each revision not deleted, by key, so that the autoscaler's count
    /// reaches its revision without a walk over every revision; kept in step by
    /// `set_desired`, `retain` and `settle`.
    pub(super) live: HashMap<RevisionKey, String>,
    /// Replicas finishing their requests before they stop; neither adopted nor removed.
    pub(super) draining: HashSet<String>,
    /// Until the controller has told the fleet about every stored revision, unknown
    /// replicas may belong to one it has not read yet; they are not removed before.
    pub(super) adopting: bool,
}

impl Default for FleetState {
    fn default() -> Self {
        Self {
            revisions: HashMap::new(),
            scales: HashMap::new(),
            live: HashMap::new(),
            draining: HashSet::new(),
            adopting: true,
        }
    }
}

/// Why a replica is stopped, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopReason {
    /// No known revision wants it (after adoption is done).
    Orphan,
    /// It did not become ready within [`STARTUP_DEADLINE`].
    NeverReady,
    /// Frozen past its retention, or frozen while the policy is now `stop`.
    Expired,
    /// It failed `failure_threshold` readiness probes in a row.
    FailsReadiness,
    /// Freezing it failed.
    FreezeFailed,
}

/// What the fleet does next; `execute.rs` carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// A replica the runtime runs for a known revision is tracked again (after a restart).
    Adopt { replica: Replica },
    /// Start one replica of revision `uid`.
    Start {
        uid: String,
        key: RevisionKey,
        spec: ReplicaSpec,
    },
    /// Stop a replica, killing it after `grace`.
    Stop {
        id: String,
        grace: Duration,
        why: StopReason,
    },
    /// A replica of `uid` exited: record its last log lines as the revision's failure,
    /// then remove it ([`REPLACE_GRACE`]).
    Exited {
        uid: String,
        key: RevisionKey,
        id: String,
        code: Option<i64>,
    },
    /// Out of the ready set (by the `Publish` of the same plan), wait until the requests
    /// it serves are done (at most `timeout`), then stop it.
    Drain {
        id: String,
        key: RevisionKey,
        addr: Option<SocketAddr>,
        timeout: Duration,
    },
    /// As `Drain`, but freeze it instead of stopping it, unless it was woken meanwhile.
    Freeze {
        id: String,
        key: RevisionKey,
        addr: Option<SocketAddr>,
        timeout: Duration,
    },
    /// Resume a frozen replica; its probe says when it serves.
    Thaw { id: String },
    /// A replica passed its first probe (for the log).
    Ready {
        key: RevisionKey,
        id: String,
        after: Duration,
    },
    /// Give the routing table a revision's ready endpoints.
    Publish {
        key: RevisionKey,
        ready: Vec<SocketAddr>,
    },
    /// As `Publish`, for a deleted revision: only into the table's entry for it if the
    /// controller has not forgotten it yet, since creating it again would leak it.
    Withdraw {
        key: RevisionKey,
        ready: Vec<SocketAddr>,
    },
    /// Tell the controller the revision's status may have changed.
    Report { key: RevisionKey },
    /// Get the next replica of `spec` ready ahead of time.
    Prepare { spec: ReplicaSpec },
}

impl FleetState {
    /// Set what a revision runs, keeping the autoscaler's count. Returns whether the
    /// revision is new, and whether its count changed.
    pub(super) fn set_desired(&mut self, uid: &str, mut desired: Desired) -> (bool, bool) {
        let entry = self.revisions.entry(uid.to_owned()).or_default();
        // A deleted revision stays at zero: a reconcile that read it before it was
        // deleted must not start it again, nor may a late count.
        desired.replicas = if entry.removed {
            0
        } else {
            self.live.insert(desired.key.clone(), uid.to_owned());
            self.scales.get(&desired.key).copied().unwrap_or(0)
        };
        let new = entry.desired.is_none();
        let changed = entry
            .desired
            .as_ref()
            .is_none_or(|d| d.replicas != desired.replicas);
        entry.desired = Some(desired);
        (new, changed)
    }

    /// The autoscaler's count for a revision.
    pub(super) fn scale(&mut self, key: &RevisionKey, replicas: u32) {
        self.scales.insert(key.clone(), replicas);
        let desired = self
            .live
            .get(key)
            .and_then(|uid| self.revisions.get_mut(uid))
            .and_then(|rev| rev.desired.as_mut());
        if let Some(d) = desired {
            d.replicas = replicas;
        }
    }

    /// Revisions not in `uids` were deleted: scaled to zero, forgotten once empty.
    pub(super) fn retain(&mut self, uids: &[String]) {
        // A set, so that a resync over thousands of revisions stays linear.
        let uids: HashSet<&str> = uids.iter().map(String::as_str).collect();
        for (uid, rev) in self.revisions.iter_mut() {
            if !uids.contains(uid.as_str()) {
                rev.removed = true;
                if let Some(d) = &mut rev.desired {
                    d.replicas = 0;
                    unlist(&mut self.live, &d.key, uid);
                }
            }
        }
    }

    /// A drained replica was stopped: the runtime's list speaks for it again.
    pub(super) fn drained(&mut self, id: &str) {
        self.draining.remove(id);
    }

    /// Whether `id` is still meant to be frozen (not woken while it drained).
    pub(super) fn still_frozen(&self, id: &str) -> bool {
        self.revisions.values().any(|s| {
            s.replicas
                .iter()
                .any(|t| t.id == id && t.frozen_at.is_some())
        })
    }

    /// Stop tracking a replica (its freeze failed, it is stopped instead).
    pub(super) fn forget_replica(&mut self, id: &str) {
        for rev in self.revisions.values_mut() {
            rev.replicas.retain(|t| t.id != id);
        }
    }

    /// Record why a replica of `uid` exited.
    pub(super) fn failed(&mut self, uid: &str, message: String) {
        if let Some(rev) = self.revisions.get_mut(uid) {
            rev.observed.failure = Some(message);
        }
    }
}

/// `uid` no longer answers for `key` (a revision of the same name created since keeps it).
fn unlist(live: &mut HashMap<RevisionKey, String>, key: &RevisionKey, uid: &str) {
    if live.get(key).is_some_and(|u| u == uid) {
        live.remove(key);
    }
}

/// A replica crashed, or could not be started: hold the next start back.
fn crashed(backoff: &mut CrashBackoff, observed: &mut Observed, now: Now) {
    if !backoff.may_start(now.at) {
        // Already held back: replicas of one batch failing together are one crash.
        return;
    }
    let delay = backoff.crashed(now.at);
    observed.restarts = backoff.crashes;
    // Whole seconds: the time is shown to users and compared between reconciles.
    let delay = chrono::Duration::seconds(delay.as_secs().try_into().unwrap_or(i64::MAX));
    observed.next_start = now
        .utc
        .checked_add_signed(delay)
        .and_then(|t| t.with_nanosecond(0));
}

/// Whether a replica may be started now, clearing the shown back-off once it may.
fn may_start(backoff: &CrashBackoff, observed: &mut Observed, now: Instant) -> bool {
    let may = backoff.may_start(now);
    if may {
        observed.next_start = None;
    }
    may
}

/// Compare the runtime's replicas (`listed`) with what each revision wants, and decide.
pub(super) fn plan(state: &mut FleetState, listed: &[Replica], now: Now) -> Vec<Action> {
    let FleetState {
        revisions,
        live,
        draining,
        adopting,
        ..
    } = state;
    let mut actions = Vec::new();
    // Replicas being drained are the drain's business: neither adopted nor removed.
    let listed: Vec<&Replica> = listed
        .iter()
        .filter(|r| !draining.contains(&r.id))
        .collect();
    // By id, so that a fleet of thousands of replicas is compared in linear time.
    let by_id: HashMap<&str, &Replica> = listed.iter().map(|r| (r.id.as_str(), *r)).collect();

    // Replicas the runtime has that the fleet does not track: adopt or remove.
    let unknown: Vec<&Replica> = {
        let tracked: HashSet<&str> = revisions
            .values()
            .flat_map(|s| s.replicas.iter().map(|t| t.id.as_str()))
            .collect();
        listed
            .iter()
            .copied()
            .filter(|r| !tracked.contains(r.id.as_str()))
            .collect()
    };
    for r in unknown {
        match revisions.get_mut(&r.revision_uid) {
            Some(rev)
                if rev
                    .desired
                    .as_ref()
                    .is_some_and(|d| d.replicas > 0 || r.state == ReplicaState::Frozen) =>
            {
                let mut t = Tracked::new(r, now.at);
                if r.state == ReplicaState::Frozen {
                    t.frozen_at = Some(now.at);
                }
                rev.replicas.push(t);
                actions.push(Action::Adopt { replica: r.clone() });
            }
            _ if !*adopting => actions.push(Action::Stop {
                id: r.id.clone(),
                grace: STOP_GRACE,
                why: StopReason::Orphan,
            }),
            _ => {}
        }
    }

    for (uid, rev) in revisions.iter_mut() {
        let RevisionState {
            desired,
            replicas,
            observed,
            backoff,
            ..
        } = rev;
        let Some(desired) = desired.as_ref() else {
            continue;
        };
        if replicas.is_empty() && desired.replicas == 0 {
            // At rest: nothing to compare, nothing to do (most revisions, most of the time).
            continue;
        }
        // Replicas that ended, or that never got ready in time, are replaced.
        let mut crashed_now = false;
        replicas.retain(|t| match by_id.get(t.id.as_str()).map(|r| r.state) {
            None => false,
            Some(ReplicaState::Exited { code }) => {
                actions.push(Action::Exited {
                    uid: uid.clone(),
                    key: desired.key.clone(),
                    id: t.id.clone(),
                    code,
                });
                crashed_now = true;
                false
            }
            // A frozen replica cannot get ready (one adopted frozen after a restart
            // never was): its retention, not the startup deadline, ends it.
            Some(_)
                if t.serving()
                    && !t.ever_ready
                    && now.at.duration_since(t.started) > STARTUP_DEADLINE =>
            {
                observed.failure = Some(format!(
                    "replica {} did not become ready within {} s",
                    paas_runtime::short(&t.id),
                    STARTUP_DEADLINE.as_secs()
                ));
                crashed_now = true;
                actions.push(Action::Stop {
                    id: t.id.clone(),
                    grace: STOP_GRACE,
                    why: StopReason::NeverReady,
                });
                false
            }
            Some(_) => true,
        });
        if crashed_now {
            crashed(backoff, observed, now);
            actions.push(Action::Report {
                key: desired.key.clone(),
            });
        }
        let want = desired.replicas as usize;
        let (mut active, mut frozen): (Vec<Tracked>, Vec<Tracked>) = std::mem::take(replicas)
            .into_iter()
            .partition(Tracked::serving);
        // Frozen replicas are kept for their retention period, then stopped.
        frozen.retain(|t| {
            let expired = match desired.idle {
                IdlePolicy::Freeze { retention } => t
                    .frozen_at
                    .is_some_and(|at| now.at.duration_since(at) >= retention),
                IdlePolicy::Stop => true,
            };
            if expired {
                actions.push(Action::Stop {
                    id: t.id.clone(),
                    grace: STOP_GRACE,
                    why: StopReason::Expired,
                });
            }
            !expired
        });
        if active.len() < want {
            // A resume is cheaper than a start: thaw frozen replicas first.
            while active.len() < want {
                let Some(mut t) = frozen.pop() else { break };
                t.wake(now.at);
                actions.push(Action::Thaw { id: t.id.clone() });
                active.push(t);
            }
            if active.len() < want && may_start(backoff, observed, now.at) {
                for _ in active.len()..want {
                    actions.push(start(uid, desired));
                }
            }
        } else if active.len() > want {
            // Ready replicas stay; those not ready yet go first, they serve nobody.
            active.sort_by_key(|t| !t.ready);
            let extra = active.split_off(want);
            // Taken out of the ready set now (by the publish below), stopped (or
            // frozen) once the requests they are serving are done.
            let mut freeze_one =
                want == 0 && frozen.is_empty() && matches!(desired.idle, IdlePolicy::Freeze { .. });
            for mut t in extra {
                if freeze_one && t.ready {
                    freeze_one = false;
                    t.frozen_at = Some(now.at);
                    t.ready = false;
                    actions.push(Action::Freeze {
                        id: t.id.clone(),
                        key: desired.key.clone(),
                        addr: t.addr,
                        timeout: desired.timeout,
                    });
                    frozen.push(t);
                    continue;
                }
                draining.insert(t.id.clone());
                actions.push(Action::Drain {
                    id: t.id,
                    key: desired.key.clone(),
                    addr: t.addr,
                    timeout: desired.timeout,
                });
            }
        }
        active.append(&mut frozen);
        *replicas = active;
    }
    publish(revisions, live, &mut actions);
    actions
}

/// The fast path of a scale-up: thaw or start what is missing from what is tracked,
/// without the runtime's list.
pub(super) fn grow(state: &mut FleetState, now: Now) -> Vec<Action> {
    let mut actions = Vec::new();
    for (uid, rev) in state.revisions.iter_mut() {
        let Some(desired) = rev.desired.as_ref() else {
            continue;
        };
        let active = rev.replicas.iter().filter(|t| t.serving()).count();
        let mut missing = (desired.replicas as usize).saturating_sub(active);
        for t in rev.replicas.iter_mut().filter(|t| !t.serving()) {
            if missing == 0 {
                break;
            }
            t.wake(now.at);
            actions.push(Action::Thaw { id: t.id.clone() });
            missing -= 1;
        }
        if missing > 0 && may_start(&rev.backoff, &mut rev.observed, now.at) {
            for _ in 0..missing {
                actions.push(start(uid, desired));
            }
        }
    }
    actions
}

fn start(uid: &str, desired: &Desired) -> Action {
    Action::Start {
        uid: uid.to_owned(),
        key: desired.key.clone(),
        spec: desired.spec.clone(),
    }
}

/// Record how a start of a replica of `uid` went (`Err` holds the runtime's message).
pub(super) fn started(
    state: &mut FleetState,
    uid: &str,
    result: Result<&Replica, String>,
    now: Now,
) -> Vec<Action> {
    let Some(rev) = state.revisions.get_mut(uid) else {
        return Vec::new();
    };
    let Some(desired) = rev.desired.as_ref() else {
        return Vec::new();
    };
    match result {
        Ok(replica) => {
            rev.observed.start_error = None;
            rev.replicas.push(Tracked::new(replica, now.at));
            vec![Action::Prepare {
                spec: desired.spec.clone(),
            }]
        }
        Err(message) => {
            rev.observed.start_error = Some(message);
            crashed(&mut rev.backoff, &mut rev.observed, now);
            vec![Action::Report {
                key: desired.key.clone(),
            }]
        }
    }
}

/// After a sync was carried out: deleted revisions with nothing left are forgotten (a
/// revision at zero is kept: the autoscaler may wake it any moment), and the ready sets
/// are published.
pub(super) fn settle(state: &mut FleetState) -> Vec<Action> {
    let mut actions = Vec::new();
    let FleetState {
        revisions, live, ..
    } = state;
    revisions.retain(|_, s| {
        let keep = !s.removed || !s.replicas.is_empty();
        let serving = s.published.as_ref().is_some_and(|p| !p.is_empty());
        if !keep && serving {
            if let Some(d) = s.desired.as_ref().filter(|d| !live.contains_key(&d.key)) {
                actions.push(Action::Withdraw {
                    key: d.key.clone(),
                    ready: Vec::new(),
                });
            }
        }
        keep
    });
    publish(revisions, live, &mut actions);
    actions
}

/// Ready endpoints for the routing table and changed counts for the controller, for
/// the revisions where they changed. Allocates nothing for a revision where nothing did,
/// so that a thousand idle revisions cost a thousand comparisons. A deleted revision's
/// endpoints only withdraw from its entry, and not at all once a revision of the same
/// name (in `live`) has it.
pub(super) fn publish(
    revisions: &mut HashMap<String, RevisionState>,
    live: &HashMap<RevisionKey, String>,
    actions: &mut Vec<Action>,
) {
    for rev in revisions.values_mut() {
        let Some(d) = &rev.desired else { continue };
        let ready_addrs = || {
            rev.replicas
                .iter()
                .filter(|t| t.ready && t.serving())
                .filter_map(|t| t.addr)
        };
        let ready = ready_addrs().count();
        let same = rev
            .published
            .as_ref()
            .is_some_and(|p| p.len() == ready && ready_addrs().all(|a| p.contains(&a)));
        if !same {
            let addrs: Vec<SocketAddr> = ready_addrs().collect();
            let (key, ready) = (d.key.clone(), addrs.clone());
            if !rev.removed {
                actions.push(Action::Publish { key, ready });
            } else if !live.contains_key(&key) {
                actions.push(Action::Withdraw { key, ready });
            }
            rev.published = Some(addrs);
        }
        let actual = rev.replicas.iter().filter(|t| t.serving()).count() as u32;
        let ready = ready as u32;
        if rev.observed.actual != actual || rev.observed.ready != ready {
            rev.observed.actual = actual;
            rev.observed.ready = ready;
            if ready > 0 {
                rev.observed.failure = None;
            }
            actions.push(Action::Report { key: d.key.clone() });
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
