//! Keeps each revision's replicas at the count the reconcilers ask for: starts missing
//! ones, replaces those that exit or stop passing readiness, stops extras, removes
//! replicas nobody owns, and publishes the ready ones to the routing table.
//!
//! [`Fleet`] is the handle the rest of the controller uses. The decisions are made by
//! the pure planner in `plan.rs` (and `probe.rs` for probe results), from the tracked
//! state, the runtime's list and the time; `execute.rs` carries them out and
//! `drain.rs` waits for a replica's requests before it is stopped or frozen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paas_api::RevisionKey;
use paas_gateway::RoutingTable;
use paas_runtime::probe::ReadinessCheck;
use paas_runtime::{ReplicaSpec, Runtime};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::changed::Changed;

mod drain;
mod execute;
mod plan;
mod probe;

use plan::{Action, FleetState, Now};

/// How often the fleet compares what runs with what should.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

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

    /// `paas.dev/idle` and `paas.dev/freeze-retention` (parsed by api) over the
    /// defaults; every problem, joined.
    pub fn from_annotations(
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, String> {
        use paas_api::annotations::idle::{self, Idle};
        let parsed = idle::parse(annotations).map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let retention = parsed.freeze_retention.unwrap_or(Self::DEFAULT_RETENTION);
        Ok(match parsed.idle {
            None | Some(Idle::Stop) => IdlePolicy::Stop,
            Some(Idle::Freeze) => IdlePolicy::Freeze { retention },
        })
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

/// Keeps replicas at the counts asked for; shared by the controller (what to run), the
/// autoscaler (how many) and the REST API (logs).
#[derive(Debug)]
pub struct Fleet {
    runtime: Arc<dyn Runtime>,
    table: Arc<RoutingTable>,
    state: Mutex<FleetState>,
    /// Tells the controller which revision's status may have changed.
    changes: Arc<Changed<RevisionKey>>,
    wake: Notify,
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
            state: Mutex::new(FleetState::default()),
            changes,
            wake: Notify::new(),
        })
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        // The state stays consistent through a panic elsewhere: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set what a revision (by uid) runs; how many is [`Fleet::scale`]'s business.
    pub fn set_desired(&self, uid: &str, desired: Desired) {
        let capacity = self.table.revision(&desired.key);
        capacity.set_timeout(desired.timeout);
        capacity.set_container_concurrency(desired.container_concurrency);
        let spec = desired.spec.clone();
        let (new, changed) = self.lock().set_desired(uid, desired);
        if new {
            // Created with the revision, so that a start from zero only starts it.
            self.prepare_later(spec);
        }
        if changed {
            self.wake.notify_one();
        }
    }

    fn prepare_later(&self, spec: ReplicaSpec) {
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = runtime.prepare(&spec).await {
                tracing::debug!(revision = %spec.revision, error = %e, "preparing a replica failed");
            }
        });
    }

    /// Keep `replicas` replicas of a revision.
    pub fn scale(&self, key: &RevisionKey, replicas: u32) {
        self.lock().scale(key, replicas);
        self.wake.notify_one();
    }

    /// Forget revisions that no longer exist; their replicas are stopped.
    pub fn retain(&self, uids: &[String]) {
        self.lock().retain(uids);
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
        self.lock().adopting = false;
        self.wake.notify_one();
    }

    pub fn observed(&self, uid: &str) -> Observed {
        self.lock()
            .revisions
            .get(uid)
            .map(|s| s.observed.clone())
            .unwrap_or_default()
    }

    /// Replica ids of a revision, for logs.
    pub fn replica_ids(&self, uid: &str) -> Vec<String> {
        self.lock()
            .revisions
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
            // One timer: the next probe due, else the next sync.
            let next_probe = probe::next_due(&self.lock());
            let wait = next_probe.map_or(next_sync, |at| at.min(next_sync));
            tokio::select! {
                _ = tokio::time::sleep_until(wait) => {}
                _ = self.wake.notified() => {
                    self.grow().await;
                    next_sync = Instant::now() + Duration::from_millis(100);
                }
            }
        }
    }

    /// Compare the runtime's replicas with the desired counts and act.
    async fn sync(self: &Arc<Self>) -> paas_runtime::Result<()> {
        let listed = self.runtime.list().await?;
        let actions = plan::plan(&mut self.lock(), &listed, Now::read());
        self.execute(actions).await;
        let actions = plan::settle(&mut self.lock());
        self.execute(actions).await;
        Ok(())
    }

    /// The fast path of a scale-up: thaw or start what is missing from what is
    /// tracked, without asking the runtime for its list first.
    async fn grow(self: &Arc<Self>) {
        let actions = plan::grow(&mut self.lock(), Now::read());
        self.execute(actions).await;
    }

    /// Probe every replica whose probe is due, concurrently.
    async fn probe_due(self: &Arc<Self>) {
        let due = probe::due(&self.lock(), Instant::now());
        if due.is_empty() {
            return;
        }
        let results = probe::run(due).await;
        let actions = probe::record(&mut self.lock(), results, Instant::now());
        let replaced = actions.iter().any(|a| matches!(a, Action::Stop { .. }));
        self.execute(actions).await;
        if replaced {
            // Replace them now rather than at the next periodic sync.
            self.wake.notify_one();
        }
    }
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
mod tests;
