//! Keeps each revision's replicas at the count the reconcilers ask for: starts missing
//! ones, replaces those that exit or stop passing readiness, stops extras, removes
//! replicas nobody owns, and publishes the ready ones to the routing table.
//!
//! New replicas are probed every millisecond, then every 50 ms, until ready (a fast start matters more than a
//! few wasted probes); ready ones at the probe's period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paas_gateway::{RevisionKey, RoutingTable};
use paas_runtime::probe::{is_ready, ReadinessCheck};
use paas_runtime::{Replica, ReplicaSpec, ReplicaState, Runtime};
use tokio::sync::Notify;

use chrono::Timelike as _;
use tokio::time::Instant;

use crate::changed::Changed;
use crate::crash_backoff::CrashBackoff;

/// How often a replica that is not ready yet is probed: very often right after it
/// starts (most apps listen within milliseconds and a cold request is waiting), then
/// every 50 ms.
const EAGER_PROBE_INTERVAL: Duration = Duration::from_millis(1);
const EAGER_PROBING_FOR: Duration = Duration::from_millis(250);
const STARTUP_PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// How long a replica may take to become ready before it is replaced.
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);
/// How often the fleet compares what runs with what should.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Time a stopped replica gets to finish before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the reconcilers want for one revision.
#[derive(Debug, Clone)]
pub struct Desired {
    pub key: RevisionKey,
    pub spec: ReplicaSpec,
    pub check: ReadinessCheck,
    pub period: Duration,
    pub failure_threshold: u32,
    pub timeout: Duration,
    /// Requests one replica may serve at once; 0 is unlimited.
    pub container_concurrency: u32,
    /// What happens to the last replica when the revision scales to zero.
    pub idle: IdlePolicy,
    /// How many replicas to keep: the autoscaler's word, through [`Fleet::scale`].
    pub(crate) replicas: u32,
}

/// What becomes of a revision's last replica at zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Stopped, as in Knative.
    Stop,
    /// Frozen (memory kept, no CPU) so that waking costs a resume; stopped after
    /// `retention`.
    Freeze { retention: Duration },
}

impl IdlePolicy {
    /// A frozen replica is stopped after this long without a request.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(15 * 60);

    /// Read `paas.dev/idle` and `paas.dev/freeze-retention`.
    pub fn from_annotations(
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let retention = match annotations.get(paas_api::keys::FREEZE_RETENTION) {
            None => Self::DEFAULT_RETENTION,
            Some(v) => paas_autoscaler::config::parse_duration(v).ok_or_else(|| {
                format!(
                    "annotation {}: {v:?} is not a duration like 15m or 90s",
                    paas_api::keys::FREEZE_RETENTION
                )
            })?,
        };
        match annotations.get(paas_api::keys::IDLE).map(|v| v.trim()) {
            None | Some("stop") => Ok(IdlePolicy::Stop),
            Some("freeze") => Ok(IdlePolicy::Freeze { retention }),
            Some(other) => Err(format!(
                "annotation {}: {other:?} is not an idle policy: use stop or freeze",
                paas_api::keys::IDLE
            )),
        }
    }
}

/// What the fleet reports back for one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub actual: u32,
    pub ready: u32,
    /// Why the last replica failed, with its last log lines.
    pub failure: Option<String>,
    /// Set when replicas cannot be started at all (no image, no command...).
    pub start_error: Option<String>,
    /// Crashes in a row (exits, failed starts, replicas never ready).
    pub restarts: u32,
    /// While starts are held back after crashes: when the next one may happen.
    pub next_start: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug)]
struct Tracked {
    id: String,
    addr: Option<std::net::SocketAddr>,
    started: Instant,
    ready: bool,
    ever_ready: bool,
    failures: u32,
    next_probe: Instant,
    /// Since when the replica is frozen (or being frozen); it serves nothing then.
    frozen_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct RevisionState {
    desired: Option<Desired>,
    replicas: Vec<Tracked>,
    observed: Observed,
    /// The revision was deleted: once its replicas are gone, it is forgotten.
    removed: bool,
    /// Starts wait after crashes, as Kubernetes' CrashLoopBackOff.
    backoff: CrashBackoff,
}

impl RevisionState {
    /// A replica crashed, or could not be started: hold the next start back.
    fn crashed(&mut self, now: Instant) {
        if !self.backoff.may_start(now) {
            // Already held back: replicas of one batch failing together are one crash.
            return;
        }
        let delay = self.backoff.crashed(now);
        self.observed.restarts = self.backoff.crashes;
        // Whole seconds: the time is shown to users and compared between reconciles.
        let delay = chrono::Duration::seconds(delay.as_secs().try_into().unwrap_or(i64::MAX));
        self.observed.next_start = chrono::Utc::now()
            .checked_add_signed(delay)
            .and_then(|t| t.with_nanosecond(0));
    }

    /// Whether a replica may be started now, clearing the shown back-off once it may.
    fn may_start(&mut self, now: Instant) -> bool {
        let may = self.backoff.may_start(now);
        if may {
            self.observed.next_start = None;
        }
        may
    }
}

#[derive(Debug)]
pub struct Fleet {
    runtime: Arc<dyn Runtime>,
    table: Arc<RoutingTable>,
    state: Mutex<HashMap<String, RevisionState>>,
    /// Tells the controller which revision's status may have changed.
    changes: Arc<Changed<RevisionKey>>,
    wake: Notify,
    /// The autoscaler's counts, by revision; kept apart so that a reconcile never
    /// overrides them.
    scales: Mutex<HashMap<RevisionKey, u32>>,
    /// Replicas finishing their requests before they stop; neither adopted nor removed.
    draining: Mutex<std::collections::HashSet<String>>,
    /// Until the controller has told the fleet about every stored revision, unknown
    /// replicas may belong to one it has not read yet; they are not removed before.
    adopting: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fleet {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        table: Arc<RoutingTable>,
        changes: Arc<Changed<RevisionKey>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            table,
            state: Mutex::new(HashMap::new()),
            changes,
            wake: Notify::new(),
            scales: Mutex::new(HashMap::new()),
            draining: Mutex::new(std::collections::HashSet::new()),
            adopting: std::sync::atomic::AtomicBool::new(true),
        })
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Set what a revision (by uid) runs; how many is [`Fleet::scale`]'s business.
    pub fn set_desired(&self, uid: &str, mut desired: Desired) {
        desired.replicas = lock(&self.scales).get(&desired.key).copied().unwrap_or(0);
        let mut state = lock(&self.state);
        let entry = state.entry(uid.to_owned()).or_default();
        if entry.desired.is_none() {
            // Created with the revision, so that a start from zero only starts it.
            self.prepare_later(&desired.spec);
        }
        let changed = entry
            .desired
            .as_ref()
            .is_none_or(|d| d.replicas != desired.replicas);
        let capacity = self.table.revision(&desired.key);
        capacity.set_timeout(desired.timeout);
        capacity.set_container_concurrency(desired.container_concurrency);
        entry.desired = Some(desired);
        drop(state);
        if changed {
            self.wake.notify_one();
        }
    }

    fn prepare_later(&self, spec: &ReplicaSpec) {
        let runtime = self.runtime.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            if let Err(e) = runtime.prepare(&spec).await {
                tracing::debug!(revision = %spec.revision, error = %e, "preparing a replica failed");
            }
        });
    }

    /// Keep `replicas` replicas of a revision.
    pub fn scale(&self, key: &RevisionKey, replicas: u32) {
        lock(&self.scales).insert(key.clone(), replicas);
        let mut state = lock(&self.state);
        for rev in state.values_mut() {
            if let Some(d) = rev.desired.as_mut().filter(|d| &d.key == key) {
                d.replicas = replicas;
            }
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Forget revisions that no longer exist; their replicas are stopped.
    pub fn retain(&self, uids: &[String]) {
        let mut state = lock(&self.state);
        for (uid, rev) in state.iter_mut() {
            if !uids.contains(uid) {
                rev.removed = true;
                if let Some(d) = &mut rev.desired {
                    d.replicas = 0;
                }
            }
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Drop prepared replicas of revisions that are gone.
    pub fn discard_prepared_except(&self, uids: Vec<String>) {
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = runtime.discard_prepared(&uids).await {
                tracing::debug!(error = %e, "discarding prepared replicas failed");
            }
        });
    }

    /// The controller has read every stored revision: unknown replicas are orphans now.
    pub fn adoption_done(&self) {
        self.adopting
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub fn observed(&self, uid: &str) -> Observed {
        lock(&self.state)
            .get(uid)
            .map(|s| s.observed.clone())
            .unwrap_or_default()
    }

    /// Replica ids of a revision, for logs.
    pub fn replica_ids(&self, uid: &str) -> Vec<String> {
        lock(&self.state)
            .get(uid)
            .map(|s| s.replicas.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Run until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut next_sync = Instant::now();
        loop {
            // Probes first: a replica just started or thawed has a request waiting.
            self.probe_due().await;
            if Instant::now() >= next_sync {
                if let Err(e) = self.sync().await {
                    tracing::warn!(runtime = self.runtime.name(), error = %e, "listing replicas failed");
                }
                next_sync = Instant::now() + SYNC_INTERVAL;
                continue;
            }
            let wait = self.next_probe_at().min(next_sync);
            tokio::select! {
                _ = tokio::time::sleep_until(wait) => {}
                _ = self.wake.notified() => {
                    self.grow().await;
                    next_sync = Instant::now() + Duration::from_millis(100);
                }
            }
        }
    }

    fn next_probe_at(&self) -> Instant {
        let state = lock(&self.state);
        state
            .values()
            .flat_map(|s| {
                s.replicas
                    .iter()
                    .filter(|r| r.frozen_at.is_none())
                    .map(|r| r.next_probe)
            })
            .min()
            .unwrap_or_else(|| Instant::now() + SYNC_INTERVAL)
    }

    /// Compare the runtime's replicas with the desired counts and act.
    async fn sync(self: &Arc<Self>) -> paas_runtime::Result<()> {
        let mut listed = self.runtime.list().await?;
        {
            let draining = lock(&self.draining);
            listed.retain(|r| !draining.contains(&r.id));
        }
        let mut to_drain: Vec<(String, Option<Arc<paas_gateway::Endpoint>>, Duration)> = Vec::new();
        let mut to_freeze: Vec<(String, Option<Arc<paas_gateway::Endpoint>>, Duration)> =
            Vec::new();
        let mut to_thaw: Vec<String> = Vec::new();
        let adopting = self.adopting.load(std::sync::atomic::Ordering::Relaxed);
        let mut to_start: Vec<(String, Desired)> = Vec::new();
        let mut to_stop: Vec<(String, Option<String>)> = Vec::new();
        let mut exited: Vec<(String, String, Option<i64>)> = Vec::new();
        {
            let mut state = lock(&self.state);
            let now = Instant::now();
            // Replicas the runtime has that the fleet does not track: adopt or remove.
            for r in &listed {
                let known = state
                    .values()
                    .any(|s| s.replicas.iter().any(|t| t.id == r.id));
                if known {
                    continue;
                }
                match state.get_mut(&r.revision_uid) {
                    Some(rev)
                        if rev
                            .desired
                            .as_ref()
                            .is_some_and(|d| d.replicas > 0 || r.state == ReplicaState::Frozen) =>
                    {
                        tracing::info!(replica = %r, state = ?r.state, "adopting a replica");
                        let mut t = track(r);
                        if r.state == ReplicaState::Frozen {
                            t.frozen_at = Some(now);
                        }
                        rev.replicas.push(t);
                    }
                    _ if !adopting => {
                        tracing::info!(replica = %r, "removing a replica no revision wants");
                        to_stop.push((r.id.clone(), None));
                    }
                    _ => {}
                }
            }
            for (uid, rev) in state.iter_mut() {
                let Some(desired) = rev.desired.clone() else {
                    continue;
                };
                // Replicas that ended, or that never got ready in time, are replaced.
                let mut crashed_now = false;
                rev.replicas.retain(|t| {
                    let listed_state = listed.iter().find(|r| r.id == t.id).map(|r| r.state);
                    match listed_state {
                        None => false,
                        Some(ReplicaState::Exited { code }) => {
                            exited.push((t.id.clone(), desired.key.to_string(), code));
                            crashed_now = true;
                            false
                        }
                        Some(_)
                            if !t.ever_ready
                                && now.duration_since(t.started) > STARTUP_DEADLINE =>
                        {
                            rev.observed.failure = Some(format!(
                                "replica {} did not become ready within {} s",
                                paas_runtime::short(&t.id),
                                STARTUP_DEADLINE.as_secs()
                            ));
                            crashed_now = true;
                            to_stop.push((t.id.clone(), Some(uid.clone())));
                            false
                        }
                        Some(_) => true,
                    }
                });
                if crashed_now {
                    rev.crashed(now);
                    self.changes.tell(desired.key.clone());
                }
                let want = desired.replicas as usize;
                let (mut active, mut frozen): (Vec<Tracked>, Vec<Tracked>) =
                    std::mem::take(&mut rev.replicas)
                        .into_iter()
                        .partition(|t| t.frozen_at.is_none());
                // Frozen replicas are kept for their retention period, then stopped.
                frozen.retain(|t| {
                    let expired = match desired.idle {
                        IdlePolicy::Freeze { retention } => t
                            .frozen_at
                            .is_some_and(|at| now.duration_since(at) >= retention),
                        IdlePolicy::Stop => true,
                    };
                    if expired {
                        to_stop.push((t.id.clone(), None));
                    }
                    !expired
                });
                if active.len() < want {
                    // A resume is cheaper than a start: thaw frozen replicas first.
                    while active.len() < want {
                        let Some(mut t) = frozen.pop() else { break };
                        wake_frozen(&mut t, now);
                        to_thaw.push(t.id.clone());
                        active.push(t);
                    }
                    if active.len() < want && rev.may_start(now) {
                        for _ in active.len()..want {
                            to_start.push((uid.clone(), desired.clone()));
                        }
                    }
                } else if active.len() > want {
                    // Ready replicas stay; those not ready yet go first, they serve nobody.
                    active.sort_by_key(|t| !t.ready);
                    let extra = active.split_off(want);
                    // Taken out of the ready set now (by the publish below), stopped (or
                    // frozen) once the requests they are serving are done.
                    let ready = self.table.revision(&desired.key).ready();
                    let mut draining = lock(&self.draining);
                    let mut freeze_one = want == 0
                        && frozen.is_empty()
                        && matches!(desired.idle, IdlePolicy::Freeze { .. });
                    for mut t in extra {
                        let endpoint = ready.iter().find(|e| Some(e.addr) == t.addr).cloned();
                        if freeze_one && t.ready {
                            freeze_one = false;
                            t.frozen_at = Some(now);
                            t.ready = false;
                            to_freeze.push((t.id.clone(), endpoint, desired.timeout));
                            frozen.push(t);
                            continue;
                        }
                        draining.insert(t.id.clone());
                        to_drain.push((t.id, endpoint, desired.timeout));
                    }
                }
                active.append(&mut frozen);
                rev.replicas = active;
            }
            self.publish(&mut state);
        }

        for (id, revision, code) in exited {
            let tail = self.runtime.logs(&id, 10).await.unwrap_or_default();
            let code = code.map_or("unknown".to_owned(), |c| c.to_string());
            tracing::warn!(replica = %paas_runtime::short(&id), %revision, exit_code = %code, last_logs = %tail.join(" | "), "replica exited; replacing it");
            let message = if tail.is_empty() {
                format!("replica exited with code {code}")
            } else {
                format!(
                    "replica exited with code {code}; last log lines:\n{}",
                    tail.join("\n")
                )
            };
            {
                let mut state = lock(&self.state);
                if let Some(rev) = state.values_mut().find(|s| {
                    s.desired
                        .as_ref()
                        .is_some_and(|d| d.key.to_string() == revision)
                }) {
                    rev.observed.failure = Some(message);
                }
            }
            let _ = self.runtime.stop(&id, Duration::from_secs(1)).await;
        }
        for (id, endpoint, timeout) in to_drain {
            let fleet = self.clone();
            tokio::spawn(async move { fleet.drain(id, endpoint, timeout).await });
        }
        for (id, endpoint, timeout) in to_freeze {
            let fleet = self.clone();
            tokio::spawn(async move { fleet.freeze_after_drain(id, endpoint, timeout).await });
        }
        self.thaw_all(to_thaw).await;
        for (id, _) in to_stop {
            if let Err(e) = self.runtime.stop(&id, STOP_GRACE).await {
                tracing::warn!(replica = %paas_runtime::short(&id), error = %e, "stopping a replica failed");
            }
        }
        self.start_all(to_start).await;
        let mut state = lock(&self.state);
        // Deleted revisions, with nothing left, are forgotten. A revision at zero is
        // kept: the autoscaler may wake it any moment.
        state.retain(|_, s| {
            let keep = !s.removed || !s.replicas.is_empty();
            if !keep {
                if let Some(d) = &s.desired {
                    self.table.revision(&d.key).set_ready(&[]);
                }
            }
            keep
        });
        self.publish(&mut state);
        Ok(())
    }

    /// The fast path of a scale-up: thaw or start what is missing from what is
    /// tracked, without asking the runtime for its list first.
    async fn grow(self: &Arc<Self>) {
        let now = Instant::now();
        let mut to_start = Vec::new();
        let mut to_thaw = Vec::new();
        {
            let mut state = lock(&self.state);
            for (uid, rev) in state.iter_mut() {
                let Some(desired) = rev.desired.clone() else {
                    continue;
                };
                let active = rev
                    .replicas
                    .iter()
                    .filter(|t| t.frozen_at.is_none())
                    .count();
                let mut missing = (desired.replicas as usize).saturating_sub(active);
                for t in rev.replicas.iter_mut().filter(|t| t.frozen_at.is_some()) {
                    if missing == 0 {
                        break;
                    }
                    wake_frozen(t, now);
                    to_thaw.push(t.id.clone());
                    missing -= 1;
                }
                if missing > 0 && rev.may_start(now) {
                    for _ in 0..missing {
                        to_start.push((uid.clone(), desired.clone()));
                    }
                }
            }
        }
        if !to_thaw.is_empty() || !to_start.is_empty() {
            tracing::debug!(thaw = to_thaw.len(), start = to_start.len(), "scaling up");
        }
        self.thaw_all(to_thaw).await;
        self.start_all(to_start).await;
    }

    async fn thaw_all(&self, ids: Vec<String>) {
        for id in ids {
            // Not frozen yet (still draining) is fine: the probe decides.
            match self.runtime.thaw(&id).await {
                Ok(()) => tracing::info!(replica = %paas_runtime::short(&id), "replica thawed"),
                Err(e) => {
                    tracing::debug!(replica = %paas_runtime::short(&id), error = %e, "thawing a replica")
                }
            }
        }
    }

    async fn start_all(&self, to_start: Vec<(String, Desired)>) {
        // Replicas start side by side: a burst wants them all at once.
        let runtime = self.runtime.clone();
        let started = futures_join(to_start.into_iter().map(|(uid, desired)| {
            let runtime = runtime.clone();
            async move {
                let result = runtime.start(&desired.spec).await;
                (uid, desired, result)
            }
        }))
        .await;
        for (uid, desired, result) in started {
            let mut state = lock(&self.state);
            let Some(rev) = state.get_mut(&uid) else {
                continue;
            };
            match result {
                Ok(replica) => {
                    tracing::info!(revision = %desired.key, replica = %paas_runtime::short(&replica.id), "replica started");
                    self.prepare_later(&desired.spec);
                    rev.observed.start_error = None;
                    rev.replicas.push(track(&replica));
                }
                Err(e) => {
                    tracing::warn!(revision = %desired.key, error = %e, "starting a replica failed");
                    rev.observed.start_error = Some(e.to_string());
                    rev.crashed(Instant::now());
                    self.changes.tell(desired.key.clone());
                }
            }
        }
    }

    /// Wait until a replica taken out of the ready set has finished its requests (at
    /// most the revision's timeout), then stop it.
    async fn drain(
        &self,
        id: String,
        endpoint: Option<Arc<paas_gateway::Endpoint>>,
        timeout: Duration,
    ) {
        let started = Instant::now();
        wait_drained(endpoint, timeout).await;
        tracing::info!(replica = %paas_runtime::short(&id), drained_ms = started.elapsed().as_millis() as u64, "replica drained; stopping it");
        if let Err(e) = self.runtime.stop(&id, STOP_GRACE).await {
            tracing::warn!(replica = %paas_runtime::short(&id), error = %e, "stopping a replica failed");
        }
        lock(&self.draining).remove(&id);
    }

    /// Like [`Fleet::drain`], but the replica is frozen instead of stopped, unless it was
    /// woken meanwhile.
    async fn freeze_after_drain(
        &self,
        id: String,
        endpoint: Option<Arc<paas_gateway::Endpoint>>,
        timeout: Duration,
    ) {
        wait_drained(endpoint, timeout).await;
        let still_idle = lock(&self.state).values().any(|s| {
            s.replicas
                .iter()
                .any(|t| t.id == id && t.frozen_at.is_some())
        });
        if !still_idle {
            return;
        }
        match self.runtime.freeze(&id).await {
            Ok(()) => tracing::info!(replica = %paas_runtime::short(&id), "replica frozen"),
            Err(e) => {
                tracing::warn!(replica = %paas_runtime::short(&id), error = %e, "freezing a replica failed; stopping it");
                for rev in lock(&self.state).values_mut() {
                    rev.replicas.retain(|t| t.id != id);
                }
                let _ = self.runtime.stop(&id, STOP_GRACE).await;
            }
        }
    }

    /// Probe every replica whose probe is due, concurrently.
    async fn probe_due(&self) {
        let now = Instant::now();
        let due: Vec<(String, String, std::net::SocketAddr, ReadinessCheck)> = {
            let state = lock(&self.state);
            state
                .iter()
                .filter_map(|(uid, s)| Some((uid, s, s.desired.as_ref()?)))
                .flat_map(|(uid, s, d)| {
                    s.replicas
                        .iter()
                        .filter(|t| t.next_probe <= now && t.frozen_at.is_none())
                        .filter_map(|t| Some((uid.clone(), t.id.clone(), t.addr?, d.check.clone())))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let results = futures_join(due.into_iter().map(|(uid, id, addr, check)| async move {
            let ok = is_ready(addr, &check).await;
            (uid, id, ok)
        }))
        .await;
        let stop = self.record_probes(results);
        if stop.is_empty() {
            return;
        }
        for id in stop {
            let _ = self.runtime.stop(&id, Duration::from_secs(1)).await;
        }
        // Replace them now rather than at the next periodic sync.
        self.wake.notify_one();
    }

    /// Apply probe results; returns the replicas to replace.
    fn record_probes(&self, results: Vec<(String, String, bool)>) -> Vec<String> {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let mut stop = Vec::new();
        for (uid, id, ok) in results {
            let Some(rev) = state.get_mut(&uid) else {
                continue;
            };
            let Some(d) = rev.desired.clone() else {
                continue;
            };
            let Some(t) = rev.replicas.iter_mut().find(|t| t.id == id) else {
                continue;
            };
            if ok {
                t.failures = 0;
                if !t.ready {
                    tracing::info!(revision = %d.key, replica = %paas_runtime::short(&id), after_ms = now.duration_since(t.started).as_millis() as u64, "replica ready");
                }
                t.ready = true;
                t.ever_ready = true;
                t.next_probe = now + d.period;
            } else if t.ever_ready {
                t.failures += 1;
                t.ready = t.failures < d.failure_threshold;
                t.next_probe = now + d.period.min(Duration::from_secs(1));
                if t.failures >= d.failure_threshold {
                    tracing::warn!(revision = %d.key, replica = %paas_runtime::short(&id), failures = t.failures, "replica fails readiness; replacing it");
                    rev.observed.failure = Some(format!(
                        "replica {} failed {} readiness probes in a row",
                        paas_runtime::short(&id),
                        t.failures
                    ));
                    stop.push(id.clone());
                }
            } else if now.duration_since(t.started) < EAGER_PROBING_FOR {
                t.next_probe = now + EAGER_PROBE_INTERVAL;
            } else {
                t.next_probe = now + STARTUP_PROBE_INTERVAL;
            }
        }
        for id in &stop {
            for rev in state.values_mut() {
                rev.replicas.retain(|t| &t.id != id);
            }
        }
        self.publish(&mut state);
        stop
    }

    /// Push ready endpoints to the routing table and report changed counts.
    fn publish(&self, state: &mut HashMap<String, RevisionState>) {
        for rev in state.values_mut() {
            let Some(d) = &rev.desired else { continue };
            let ready: Vec<_> = rev
                .replicas
                .iter()
                .filter(|t| t.ready && t.frozen_at.is_none())
                .filter_map(|t| t.addr)
                .collect();
            self.table.revision(&d.key).set_ready(&ready);
            let actual = rev
                .replicas
                .iter()
                .filter(|t| t.frozen_at.is_none())
                .count() as u32;
            let ready = ready.len() as u32;
            if rev.observed.actual != actual || rev.observed.ready != ready {
                rev.observed.actual = actual;
                rev.observed.ready = ready;
                if ready > 0 {
                    rev.observed.failure = None;
                }
                self.changes.tell(d.key.clone());
            }
        }
    }
}

/// Wait until a replica out of the ready set has no request in flight, at most `timeout`.
async fn wait_drained(endpoint: Option<Arc<paas_gateway::Endpoint>>, timeout: Duration) {
    let Some(ep) = endpoint else { return };
    let started = Instant::now();
    // A request may have picked the endpoint just before it left the ready set.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while ep.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0 && started.elapsed() < timeout
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A frozen replica is serving again: probe it as if it had just started.
fn wake_frozen(t: &mut Tracked, now: Instant) {
    t.frozen_at = None;
    t.ready = false;
    t.failures = 0;
    t.started = now;
    t.next_probe = now;
}

fn track(r: &Replica) -> Tracked {
    let now = Instant::now();
    Tracked {
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

/// Wait for all futures, without pulling in a futures crate for one join.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

#[async_trait::async_trait]
impl paas_autoscaler::Scaler for Fleet {
    async fn scale(
        &self,
        revision: &RevisionKey,
        replicas: u32,
    ) -> Result<(), paas_autoscaler::ScaleError> {
        Fleet::scale(self, revision, replicas);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A runtime whose replicas never start.
    #[derive(Debug, Default)]
    struct NeverStarts {
        tries: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Runtime for NeverStarts {
        fn name(&self) -> &'static str {
            "never-starts"
        }
        fn check(&self, _spec: &ReplicaSpec) -> paas_runtime::Result<()> {
            Ok(())
        }
        async fn start(&self, spec: &ReplicaSpec) -> paas_runtime::Result<Replica> {
            self.tries.fetch_add(1, Ordering::Relaxed);
            Err(paas_runtime::Error::Spawn {
                command: spec.command.join(" "),
                source: std::io::Error::other("no such file"),
            })
        }
        async fn stop(&self, _id: &str, _grace: Duration) -> paas_runtime::Result<()> {
            Ok(())
        }
        async fn list(&self) -> paas_runtime::Result<Vec<Replica>> {
            Ok(vec![])
        }
        async fn logs(&self, _id: &str, _tail: usize) -> paas_runtime::Result<Vec<String>> {
            Ok(vec![])
        }
        async fn freeze(&self, _id: &str) -> paas_runtime::Result<()> {
            Ok(())
        }
        async fn thaw(&self, _id: &str) -> paas_runtime::Result<()> {
            Ok(())
        }
    }

    fn desired(key: &RevisionKey) -> Desired {
        Desired {
            key: key.clone(),
            spec: ReplicaSpec {
                namespace: key.namespace.clone(),
                service: "broken".into(),
                configuration: "broken".into(),
                revision: key.name.clone(),
                revision_uid: "uid-1".into(),
                image: None,
                command: vec!["/nonexistent/server".into()],
                args: vec![],
                env: vec![],
                port: 8080,
            },
            check: ReadinessCheck::Tcp,
            period: Duration::from_secs(10),
            failure_threshold: 3,
            timeout: Duration::from_secs(300),
            container_concurrency: 0,
            idle: IdlePolicy::Stop,
            replicas: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_revision_that_cannot_start_backs_off_as_crash_loop_back_off() {
        let runtime = Arc::new(NeverStarts::default());
        let changes = Arc::new(Changed::default());
        let fleet = Fleet::new(runtime.clone(), RoutingTable::new(), changes.clone());
        let key = RevisionKey {
            namespace: "default".into(),
            name: "broken-00001".into(),
        };
        fleet.set_desired("uid-1", desired(&key));
        fleet.scale(&key, 1);
        fleet.adoption_done();
        let run = tokio::spawn(fleet.clone().run());
        // Ten minutes of a fleet that syncs every second.
        tokio::time::sleep(Duration::from_secs(600)).await;
        run.abort();
        let tries = runtime.tries.load(Ordering::Relaxed);
        // At 0, 10, 30, 70, 150, 310 s (then 610 s): not once a second.
        assert_eq!(tries, 6, "{tries} tries in 10 minutes");
        let observed = fleet.observed("uid-1");
        assert_eq!(observed.restarts, 6);
        assert!(observed.next_start.is_some(), "{observed:?}");
        assert!(observed.start_error.is_some(), "{observed:?}");
        assert_eq!(changes.take(), [key]);
    }
}
