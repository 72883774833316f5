//! Carrying the planner's actions out against the runtime, the routing table and the
//! controller.

use std::sync::Arc;
use std::time::Duration;

use paas_activator::Endpoint;
use paas_api::RevisionKey;
use paas_runtime::ReplicaSpec;

use super::plan::{self, Action, Now, StopReason, REPLACE_GRACE};
use super::Fleet;

/// How many log lines of an exited replica explain its failure.
const EXIT_LOG_LINES: usize = 10;

impl Fleet {
    /// Carry out a plan: publish and report first, then exited replicas, drains and
    /// freezes (in the background), thaws, stops, and last the starts, side by side.
    pub(super) async fn execute(self: &Arc<Self>, actions: Vec<Action>) {
        // A drained replica leaves the ready set with this plan's publish: find the
        // endpoint whose requests in flight it must wait for before that.
        let endpoints: Vec<Option<Arc<Endpoint>>> = actions
            .iter()
            .map(|a| match a {
                Action::Drain { key, addr, .. } | Action::Freeze { key, addr, .. } => {
                    let addr = (*addr)?;
                    // Not `revision`: a deleted revision's record, once forgotten, stays so.
                    let ready = self.table.known_revision(key)?.ready();
                    ready.iter().find(|e| e.addr == addr).cloned()
                }
                _ => None,
            })
            .collect();
        let mut exited = Vec::new();
        let mut thaws = Vec::new();
        let mut stops = Vec::new();
        let mut starts = Vec::new();
        for (action, endpoint) in actions.into_iter().zip(endpoints) {
            match action {
                Action::Adopt { replica } => {
                    tracing::info!(replica = %replica, state = ?replica.state, "adopting a replica");
                }
                Action::Start { uid, key, spec } => starts.push((uid, key, spec)),
                Action::Stop { id, grace, why } => stops.push((id, grace, why)),
                Action::Exited { uid, key, id, code } => exited.push((uid, key, id, code)),
                Action::Drain { id, timeout, .. } => {
                    let fleet = self.clone();
                    tokio::spawn(async move { fleet.drain(id, endpoint, timeout).await });
                }
                Action::Freeze { id, timeout, .. } => {
                    let fleet = self.clone();
                    tokio::spawn(
                        async move { fleet.freeze_after_drain(id, endpoint, timeout).await },
                    );
                }
                Action::Thaw { id } => thaws.push(id),
                other => self.apply(other),
            }
        }
        for (uid, key, id, code) in exited {
            self.replace_exited(&uid, &key, &id, code).await;
        }
        if !thaws.is_empty() || !starts.is_empty() {
            tracing::debug!(thaw = thaws.len(), start = starts.len(), "scaling up");
        }
        for id in thaws {
            // Not frozen yet (still draining) is fine: the probe decides.
            match self.runtime.thaw(&id).await {
                Ok(()) => tracing::info!(replica = %paas_runtime::short(&id), "replica thawed"),
                Err(e) => {
                    tracing::debug!(replica = %paas_runtime::short(&id), error = %e, "thawing a replica")
                }
            }
        }
        for (id, grace, why) in stops {
            self.stop(&id, grace, why).await;
        }
        self.start_all(starts).await;
    }

    /// The actions that need no waiting.
    fn apply(&self, action: Action) {
        match action {
            Action::Publish { key, ready } => self.table.revision(&key).set_ready(&ready),
            Action::Withdraw { key, ready } => {
                if let Some(capacity) = self.table.known_revision(&key) {
                    capacity.set_ready(&ready);
                }
            }
            Action::Report { key } => self.changes.tell(key),
            Action::Prepare { spec } => self.prepare_later(spec),
            Action::Ready { key, id, after } => {
                tracing::info!(revision = %key, replica = %paas_runtime::short(&id), after_ms = after.as_millis() as u64, "replica ready");
            }
            Action::Adopt { .. }
            | Action::Start { .. }
            | Action::Stop { .. }
            | Action::Exited { .. }
            | Action::Drain { .. }
            | Action::Freeze { .. }
            | Action::Thaw { .. } => {
                // `execute` carries these out itself; the planner's follow-ups of a start
                // are only publishes, reports and prepares.
                tracing::error!(
                    ?action,
                    "the fleet cannot carry out this action here: a bug"
                );
            }
        }
    }

    pub(super) async fn stop(&self, id: &str, grace: Duration, why: StopReason) {
        let short = paas_runtime::short(id);
        match why {
            StopReason::Orphan => {
                tracing::info!(replica = %short, "removing a replica no revision wants")
            }
            StopReason::FailsReadiness => {
                tracing::warn!(replica = %short, "replica fails readiness; replacing it")
            }
            StopReason::NeverReady | StopReason::Expired | StopReason::FreezeFailed => {}
        }
        if let Err(e) = self.runtime.stop(id, grace).await {
            tracing::warn!(replica = %short, error = %e, ?why, "stopping a replica failed");
        }
    }

    /// Say why a replica exited (with its last log lines), then remove it.
    async fn replace_exited(&self, uid: &str, key: &RevisionKey, id: &str, code: Option<i64>) {
        let tail = self
            .runtime
            .logs(id, EXIT_LOG_LINES)
            .await
            .unwrap_or_default();
        let code = code.map_or("unknown".to_owned(), |c| c.to_string());
        tracing::warn!(replica = %paas_runtime::short(id), revision = %key, exit_code = %code, last_logs = %tail.join(" | "), "replica exited; replacing it");
        let message = if tail.is_empty() {
            format!("replica exited with code {code}")
        } else {
            format!(
                "replica exited with code {code}; last log lines:\n{}",
                tail.join("\n")
            )
        };
        self.lock().failed(uid, message);
        if let Err(e) = self.runtime.stop(id, REPLACE_GRACE).await {
            tracing::debug!(replica = %paas_runtime::short(id), error = %e, "removing an exited replica");
        }
    }

    /// Start replicas side by side (a burst wants them all at once), then track them.
    async fn start_all(&self, starts: Vec<(String, RevisionKey, ReplicaSpec)>) {
        let tasks: Vec<_> = starts
            .into_iter()
            .map(|(uid, key, spec)| {
                let runtime = self.runtime.clone();
                tokio::spawn(async move {
                    let result = runtime.start(&spec).await;
                    (uid, key, result)
                })
            })
            .collect();
        for task in tasks {
            let Ok((uid, key, result)) = task.await else {
                continue;
            };
            let result = match &result {
                Ok(replica) => {
                    tracing::info!(revision = %key, replica = %paas_runtime::short(&replica.id), "replica started");
                    Ok(replica)
                }
                Err(e) => {
                    tracing::warn!(revision = %key, error = %e, "starting a replica failed");
                    Err(e.to_string())
                }
            };
            let follow = plan::started(&mut self.lock(), &uid, result, Now::read());
            for action in follow {
                self.apply(action);
            }
        }
    }
}
