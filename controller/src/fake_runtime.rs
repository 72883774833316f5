//! An in-memory [`Runtime`] for tests of the fleet and of the reconcilers: a replica is
//! a listening socket on 127.0.0.1 (so that TCP probes pass), and every call is
//! recorded.

use std::sync::Mutex;
use std::time::Duration;

use paas_runtime::{Replica, ReplicaSpec, ReplicaState, Runtime};

/// What was asked of a [`FakeRuntime`] that changes a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Start(String),
    Stop(String),
    Freeze(String),
    Thaw(String),
}

#[derive(Debug, Default)]
pub(crate) struct FakeRuntime {
    inner: Mutex<FakeInner>,
}

#[derive(Debug, Default)]
struct FakeInner {
    replicas: Vec<(Replica, std::net::TcpListener)>,
    calls: Vec<Call>,
    /// Revisions prepared ahead of a start, in order (apart from `calls`, which the
    /// fleet's tests compare whole).
    prepared: Vec<String>,
    lists: u32,
    started: u32,
}

impl FakeRuntime {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A replica running before the fleet started (as after a restart of paas).
    pub(crate) fn running(&self, id: &str, revision: &str, uid: &str) {
        let replica = fake_replica(id, revision, uid);
        self.lock().replicas.push(replica);
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The revisions the fleet prepared a replica of.
    pub(crate) fn prepared(&self) -> Vec<String> {
        self.lock().prepared.clone()
    }

    /// How many times the runtime was listed.
    pub(crate) fn lists(&self) -> u32 {
        self.lock().lists
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.lock()
            .replicas
            .iter()
            .map(|(r, _)| r.id.clone())
            .collect()
    }

    fn set_state(&self, id: &str, state: ReplicaState, call: Call) {
        let mut inner = self.lock();
        for (r, _) in inner.replicas.iter_mut().filter(|(r, _)| r.id == id) {
            r.state = state;
        }
        inner.calls.push(call);
    }
}

fn fake_replica(id: &str, revision: &str, uid: &str) -> (Replica, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let replica = Replica {
        id: id.into(),
        namespace: "default".into(),
        revision: revision.into(),
        revision_uid: uid.into(),
        address: listener.local_addr().ok(),
        state: ReplicaState::Running,
    };
    (replica, listener)
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }
    /// As the process runtime: a replica is a command.
    fn check(&self, spec: &ReplicaSpec) -> paas_runtime::Result<()> {
        if spec.command.is_empty() {
            return Err(paas_runtime::Error::Unsupported {
                runtime: "fake",
                what: "a command".into(),
            });
        }
        Ok(())
    }
    async fn start(&self, spec: &ReplicaSpec) -> paas_runtime::Result<Replica> {
        let mut inner = self.lock();
        inner.started += 1;
        let id = format!("{}-{}", spec.revision, inner.started);
        let (replica, listener) = fake_replica(&id, &spec.revision, &spec.revision_uid);
        inner.replicas.push((replica.clone(), listener));
        inner.calls.push(Call::Start(id));
        Ok(replica)
    }
    async fn stop(&self, id: &str, _grace: Duration) -> paas_runtime::Result<()> {
        let mut inner = self.lock();
        inner.replicas.retain(|(r, _)| r.id != id);
        inner.calls.push(Call::Stop(id.into()));
        Ok(())
    }
    async fn list(&self) -> paas_runtime::Result<Vec<Replica>> {
        let mut inner = self.lock();
        inner.lists += 1;
        Ok(inner.replicas.iter().map(|(r, _)| r.clone()).collect())
    }
    async fn logs(&self, _id: &str, _tail: usize) -> paas_runtime::Result<Vec<String>> {
        Ok(vec![])
    }
    async fn prepare(&self, spec: &ReplicaSpec) -> paas_runtime::Result<()> {
        self.lock().prepared.push(spec.revision.clone());
        Ok(())
    }
    async fn freeze(&self, id: &str) -> paas_runtime::Result<()> {
        self.set_state(id, ReplicaState::Frozen, Call::Freeze(id.into()));
        Ok(())
    }
    async fn thaw(&self, id: &str) -> paas_runtime::Result<()> {
        self.set_state(id, ReplicaState::Running, Call::Thaw(id.into()));
        Ok(())
    }
}
