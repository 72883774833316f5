//! How `paas up` ends: on a signal, or when one of its core tasks ends, after the
//! requests in flight are answered (for at most their revisions' timeouts).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use paas_gateway::RoutingTable;
use tokio::task::{Id, JoinSet};

/// Replicas still being stopped after this are left to the next start (which adopts
/// or removes them): a busy machine must not keep a stopping paas for minutes.
pub(crate) const STOP_REPLICAS_WITHIN: Duration = Duration::from_secs(10);

/// The long-running tasks of `paas up`, by name.
#[derive(Debug, Default)]
pub(crate) struct CoreTasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl CoreTasks {
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Wait for the first task to end, and say which and how.
    pub(crate) async fn first_to_end(&mut self) -> String {
        match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => format!("the {} task stopped", self.name(id)),
            Some(Err(e)) => {
                let name = self.name(e.id());
                if e.is_panic() {
                    let panic = e.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".to_owned());
                    format!("the {name} task panicked: {message}")
                } else {
                    format!("the {name} task was cancelled")
                }
            }
            // Nothing to wait for: no task can end.
            None => std::future::pending().await,
        }
    }

    fn name(&self, id: Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("unnamed")
    }

    pub(crate) fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

/// Wait until no request is in flight or waiting at the gateway, for at most the
/// longest timeout of the revisions that have some. Whether everything was answered.
pub(crate) async fn drain_requests(table: &RoutingTable) -> bool {
    let busy = |table: &RoutingTable| {
        table
            .revisions()
            .iter()
            .filter(|c| c.in_flight.load(Ordering::Relaxed) + c.waiting.load(Ordering::Relaxed) > 0)
            .map(|c| c.timeout())
            .max()
    };
    let Some(longest) = busy(table) else {
        return true;
    };
    tracing::info!(within = ?longest, "waiting for the requests in flight to be answered");
    let deadline = tokio::time::Instant::now() + longest;
    let mut check = tokio::time::interval(Duration::from_millis(20));
    loop {
        check.tick().await;
        if busy(table).is_none() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
    }
}

/// SIGTERM or Ctrl-C.
pub(crate) async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paas_api::RevisionKey;

    #[tokio::test]
    async fn a_panicking_task_is_named_with_its_message() {
        let mut tasks = CoreTasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("fleet", async { panic!("replica map out of step") });
        let ended = tasks.first_to_end().await;
        assert_eq!(ended, "the fleet task panicked: replica map out of step");
        tasks.abort_all();
    }

    #[tokio::test]
    async fn a_task_that_returns_is_reported_too() {
        let mut tasks = CoreTasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("controller", async {});
        assert_eq!(tasks.first_to_end().await, "the controller task stopped");
    }

    fn key(name: &str) -> RevisionKey {
        RevisionKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn draining_waits_for_requests_in_flight_up_to_the_longest_timeout() {
        let table = RoutingTable::new();
        assert!(
            drain_requests(&table).await,
            "nothing in flight: done at once"
        );

        let busy = table.revision(&key("busy-00001"));
        busy.set_timeout(Duration::from_secs(5));
        busy.in_flight.store(1, Ordering::Relaxed);
        let idle = table.revision(&key("idle-00001"));
        idle.set_timeout(Duration::from_secs(300));
        let started = tokio::time::Instant::now();
        assert!(!drain_requests(&table).await, "the request never ends");
        // The idle revision's longer timeout does not count.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );

        let answered = tokio::spawn({
            let table = table.clone();
            async move { drain_requests(&table).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        busy.in_flight.store(0, Ordering::Relaxed);
        assert!(answered.await.unwrap());
    }
}
