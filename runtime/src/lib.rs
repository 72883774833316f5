//! Where replicas run. One small trait, [`Runtime`], with a backend per place: the
//! Docker Engine ([`docker::DockerRuntime`]) and local child processes
//! ([`process::ProcessRuntime`]). Readiness probing ([`probe`]) is shared by both.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

pub mod docker;
mod error;
mod freezer;
pub mod probe;
pub mod process;
pub mod spec;

pub use error::{Error, Result};
pub use spec::ReplicaSpec;

/// Labels (Docker) and record fields (process) that tie a replica to its revision.
pub mod labels {
    pub const MANAGED: &str = "paas.dev/managed";
    /// The `paas up` installation (one per data directory) that owns the replica.
    pub const INSTANCE: &str = "paas.dev/instance";
    pub const NAMESPACE: &str = "paas.dev/namespace";
    pub const REVISION_UID: &str = "paas.dev/revision-uid";
    pub use paas_api::keys::{CONFIGURATION_LABEL, REVISION_LABEL, SERVICE_LABEL};
}

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Created, not (yet) running.
    Created,
    Running,
    /// Suspended: memory kept, no CPU; it serves again once thawed.
    Frozen,
    /// The replica's process ended; it will not serve again.
    Exited {
        code: Option<i64>,
    },
}

/// What names a replica to its backend: opaque to callers, who only hand it back
/// (a container id for Docker, `p-` and a random suffix for processes).
pub type ReplicaId = String;

/// A replica as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: ReplicaId,
    pub namespace: String,
    pub revision: String,
    pub revision_uid: String,
    /// Where requests for the replica go, once it runs.
    pub address: Option<SocketAddr>,
    pub state: ReplicaState,
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} replica {}",
            self.namespace,
            self.revision,
            short(&self.id)
        )
    }
}

/// A replica id as people see it in logs: its first 12 characters (of a Docker
/// container id's 64, as `docker ps` shows it).
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Start, stop and list replicas. Implementations own no scheduling policy: how many
/// replicas a revision has is decided by the caller.
#[async_trait]
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// `docker` or `process`, for messages.
    fn name(&self) -> &'static str;

    /// Whether this backend can run the spec at all (an image for Docker, a command
    /// for processes), so that the problem is reported when the revision is created.
    fn check(&self, spec: &ReplicaSpec) -> Result<()>;

    /// Start one replica. Returns once it is running (not necessarily ready).
    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica>;

    /// Stop a replica: a polite signal first, a kill after `grace`; then forget it.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;

    /// Every replica this installation owns, including exited ones.
    async fn list(&self) -> Result<Vec<Replica>>;

    /// The last `tail` lines the replica wrote to stdout and stderr.
    async fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>>;

    /// Get a replica of `spec` ready ahead of time, so that starting one from zero
    /// costs only the start (Docker creates the container). Idempotent: at most one
    /// prepared replica per revision. Backends with nothing to prepare do nothing.
    async fn prepare(&self, _spec: &ReplicaSpec) -> Result<()> {
        Ok(())
    }

    /// Drop what was prepared for revisions whose uid is not in `keep`.
    async fn discard_prepared(&self, _keep: &[String]) -> Result<()> {
        Ok(())
    }

    /// Suspend a replica: its memory is kept, it gets no CPU.
    async fn freeze(&self, id: &str) -> Result<()>;

    /// Resume a frozen replica.
    async fn thaw(&self, id: &str) -> Result<()>;
}
