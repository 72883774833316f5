//! Draining: a replica taken out of the ready set finishes the requests it serves (at
//! most the revision's timeout) before it is stopped or frozen.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use paas_activator::Endpoint;
use tokio::time::Instant;

use super::plan::{StopReason, STOP_GRACE};
use super::Fleet;

/// A request may have picked the endpoint just before it left the ready set.
const SETTLE: Duration = Duration::from_millis(100);
/// How often the requests in flight are looked at.
const POLL: Duration = Duration::from_millis(50);

/// Wait until a replica out of the ready set has no request in flight, at most `timeout`.
pub(super) async fn wait_drained(endpoint: Option<Arc<Endpoint>>, timeout: Duration) {
    let Some(ep) = endpoint else { return };
    let started = Instant::now();
    tokio::time::sleep(SETTLE).await;
    while ep.in_flight.load(Ordering::Acquire) > 0 && started.elapsed() < timeout {
        tokio::time::sleep(POLL).await;
    }
}

impl Fleet {
    /// Wait until a replica taken out of the ready set has finished its requests, then
    /// stop it.
    pub(super) async fn drain(
        &self,
        id: String,
        endpoint: Option<Arc<Endpoint>>,
        timeout: Duration,
    ) {
        let started = Instant::now();
        wait_drained(endpoint, timeout).await;
        tracing::info!(replica = %paas_runtime::short(&id), drained_ms = started.elapsed().as_millis() as u64, "replica drained; stopping it");
        if let Err(e) = self.runtime.stop(&id, STOP_GRACE).await {
            tracing::warn!(replica = %paas_runtime::short(&id), error = %e, "stopping a replica failed");
        }
        self.lock().drained(&id);
    }

    /// Like [`Fleet::drain`], but the replica is frozen instead of stopped, unless it was
    /// woken meanwhile; one that cannot be frozen is stopped.
    pub(super) async fn freeze_after_drain(
        &self,
        id: String,
        endpoint: Option<Arc<Endpoint>>,
        timeout: Duration,
    ) {
        wait_drained(endpoint, timeout).await;
        if !self.lock().still_frozen(&id) {
            return;
        }
        match self.runtime.freeze(&id).await {
            Ok(()) => tracing::info!(replica = %paas_runtime::short(&id), "replica frozen"),
            Err(e) => {
                tracing::warn!(replica = %paas_runtime::short(&id), error = %e, "freezing a replica failed; stopping it");
                self.lock().forget_replica(&id);
                self.stop(&id, STOP_GRACE, StopReason::FreezeFailed).await;
            }
        }
    }
}
