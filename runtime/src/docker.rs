//! Replicas as Docker containers, through the Engine API on its unix socket
//! ([`bollard`]: typed models, API version negotiation, demultiplexed logs).
//!
//! Images must exist locally (paas never pulls). The container port is published on
//! 127.0.0.1 with an ephemeral host port. Labels carry the owning installation,
//! namespace, service and revision, so a restarted `paas up` finds its containers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, HostConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::{freezer, labels, Error, Replica, ReplicaSpec, ReplicaState, Result, Runtime};

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long one call to the engine may take. A stop waits out its grace period inside
/// the call (10 s at most today), so this stays well above any grace.
const CALL_TIMEOUT_SECS: u64 = 120;

/// Docker's container statuses but `created`: a prepared container (created ahead of
/// a start, see `prepare`) is not a replica until it starts.
const REPLICA_STATUSES: [&str; 6] = [
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// What the Docker Engine refused or could not do, worded for the person who has to
/// fix it. Callers see it as [`Error::Backend`]: the shared error type says nothing
/// Docker-specific.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker Engine at {socket}: {source}; start it (`dockerd &`) or run `paas up --runtime process`")]
    Unreachable {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker Engine answered {status} to {what}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("Docker Engine call failed during {what}: {source}")]
    Failed {
        what: String,
        #[source]
        source: EngineError,
    },
}

impl From<DockerError> for Error {
    fn from(e: DockerError) -> Self {
        Error::Backend(Box::new(e))
    }
}

#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    socket: PathBuf,
    instance: String,
    /// Created, never started containers, by revision uid.
    prepared: Mutex<HashMap<String, Vec<String>>>,
    /// Containers frozen through their cgroup, with the process whose cgroup it is.
    frozen: Mutex<HashMap<String, u32>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DockerRuntime {
    /// Connects to the engine at `socket`; `instance` labels every container this
    /// installation starts, so two data directories never touch each other's.
    pub async fn connect(socket: PathBuf, instance: String) -> Result<Arc<Self>> {
        let unreachable = |e| Self::engine_error(&socket, "connecting", e);
        // bollard's models follow a newer API than Debian's engine 20.10 (1.41) speaks;
        // negotiating settles on the older of the two, and fields the older engine
        // lacks are absent from its answers (every model field is optional).
        let docker = Docker::connect_with_unix(
            &socket.to_string_lossy(),
            CALL_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(unreachable)?
        .negotiate_version()
        .await
        .map_err(unreachable)?;
        tracing::debug!(using = %docker.client_version(), "connected to the Docker Engine");
        let rt = Self {
            docker,
            socket,
            instance,
            prepared: Mutex::new(HashMap::new()),
            frozen: Mutex::new(HashMap::new()),
        };
        // Containers an earlier run prepared are used again when their revision still
        // exists; containers it froze through their cgroup are thawed, since Docker
        // does not know they are frozen.
        for c in rt.list_raw().await? {
            let Some(id) = c.id else { continue };
            match c.state {
                Some(ContainerSummaryStateEnum::RUNNING) => {
                    if let Ok(pid) = rt.pid(&id).await {
                        let _ = freezer::set_frozen(pid, false);
                    }
                }
                Some(ContainerSummaryStateEnum::CREATED) => {
                    let uid = label(c.labels.as_ref(), labels::REVISION_UID);
                    lock(&rt.prepared).entry(uid).or_default().push(id);
                }
                _ => {}
            }
        }
        Ok(Arc::new(rt))
    }

    /// The engine's failure as the error the caller sees: a refusal with its status
    /// and message, an engine that does not answer with what to do about it.
    fn engine_error(socket: &std::path::Path, what: &str, e: EngineError) -> Error {
        let unreachable = |source| DockerError::Unreachable {
            socket: socket.to_owned(),
            source,
        };
        match e {
            EngineError::DockerResponseServerError {
                status_code,
                message,
            } => DockerError::Refused {
                what: what.to_owned(),
                status: status_code,
                message,
            },
            EngineError::SocketNotFoundError(_) => {
                unreachable(std::io::Error::from(nix::errno::Errno::ENOENT))
            }
            EngineError::HyperLegacyError { err } if err.is_connect() => {
                // The connector's own error (connection refused, permission denied)
                // says more than the client's "client error (Connect)".
                let io = std::error::Error::source(&err)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .map(|io| std::io::Error::new(io.kind(), io.to_string()))
                    .unwrap_or_else(|| std::io::Error::other(err.to_string()));
                unreachable(io)
            }
            source => DockerError::Failed {
                what: what.to_owned(),
                source,
            },
        }
        .into()
    }

    fn error(&self, what: &str, e: EngineError) -> Error {
        Self::engine_error(&self.socket, what, e)
    }

    fn container_name(spec: &ReplicaSpec) -> String {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
        format!("paas-{}-{}-{suffix}", spec.namespace, spec.revision)
    }

    /// Removes every container of this installation; called when `paas up` stops.
    /// Several at a time: one after the other, a thousand containers took minutes.
    pub async fn remove_all(self: &Arc<Self>) {
        /// Removals in flight at once: enough to hide each call's latency, few enough
        /// not to swamp the engine.
        const AT_ONCE: usize = 16;
        let Ok(all) = self.list_raw().await else {
            return;
        };
        let mut removals = tokio::task::JoinSet::new();
        for id in all.into_iter().filter_map(|c| c.id) {
            if removals.len() >= AT_ONCE {
                removals.join_next().await;
            }
            let rt = self.clone();
            removals.spawn(async move {
                if let Err(e) = rt.remove(&id).await {
                    tracing::warn!(container = %crate::short(&id), error = %e, "removing a container failed");
                }
            });
        }
        while removals.join_next().await.is_some() {}
    }

    /// Removes a container, running or not; one already gone counts as removed.
    async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.error(&format!("removing container {id}"), e)),
        }
    }

    /// Create (not start) a container for `spec`.
    async fn create(&self, spec: &ReplicaSpec) -> Result<String> {
        let image = spec.image.clone().unwrap_or_default();
        let port_key = format!("{}/tcp", spec.port);
        let env = spec
            .environment(spec.port)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let container_labels = [
            (labels::MANAGED, "true"),
            (labels::INSTANCE, &self.instance),
            (labels::NAMESPACE, &spec.namespace),
            (labels::SERVICE_LABEL, &spec.service),
            (labels::CONFIGURATION_LABEL, &spec.configuration),
            (labels::REVISION_LABEL, &spec.revision),
            (labels::REVISION_UID, &spec.revision_uid),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            env: Some(env),
            labels: Some(container_labels),
            exposed_ports: Some(vec![port_key.clone()]),
            // Knative maps command to the entrypoint and args to the command.
            entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
            cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
            host_config: Some(HostConfig {
                // An init as PID 1 forwards SIGTERM, which most apps never handle as
                // PID 1.
                init: Some(true),
                // Loopback only, an ephemeral port: the gateway is the way in.
                port_bindings: Some(HashMap::from([(
                    port_key,
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&Self::container_name(spec))
            .build();
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => Ok(created.id),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(Error::ImageNotFound { image }),
            Err(e) => Err(self.error(&format!("creating a container of {image}"), e)),
        }
    }

    /// Start a created container and learn its published port.
    async fn start_created(&self, id: &str, spec: &ReplicaSpec) -> Result<Replica> {
        let started = async {
            self.docker
                .start_container(id, None)
                .await
                .map_err(|e| self.error(&format!("starting container {id}"), e))?;
            self.host_port(id, spec.port).await
        }
        .await;
        let host_port = match started {
            Ok(p) => p,
            Err(e) => {
                let _ = self.remove(id).await;
                return Err(e);
            }
        };
        tracing::debug!(container = %crate::short(id), ?host_port, revision = %spec.revision, "container started");
        Ok(Replica {
            id: id.to_owned(),
            namespace: spec.namespace.clone(),
            revision: spec.revision.clone(),
            revision_uid: spec.revision_uid.clone(),
            address: host_port.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            state: ReplicaState::Running,
        })
    }

    /// Every container of this installation, prepared ones included.
    async fn list_raw(&self) -> Result<Vec<ContainerSummary>> {
        self.list_where(self.filters(&[])).await
    }

    /// The label filter of this installation, and `status` if given (any of them).
    fn filters(&self, status: &[&str]) -> HashMap<&'static str, Vec<String>> {
        let mut filters = HashMap::from([(
            "label",
            vec![format!("{}={}", labels::INSTANCE, self.instance)],
        )]);
        if !status.is_empty() {
            filters.insert("status", status.iter().map(|s| (*s).to_owned()).collect());
        }
        filters
    }

    async fn list_where(
        &self,
        filters: HashMap<&'static str, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error("listing containers", e))
    }

    /// The host pid of a container's first process.
    async fn pid(&self, id: &str) -> Result<u32> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(&format!("inspecting container {id}"), e))?;
        info.state
            .and_then(|s| s.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|&pid| pid != 0)
            .ok_or_else(|| Error::NoSuchReplica { id: id.to_owned() })
    }

    async fn host_port(&self, id: &str, port: u16) -> Result<Option<u16>> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(&format!("inspecting container {id}"), e))?;
        Ok(info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove(&format!("{port}/tcp")))
            .flatten()
            .and_then(|b| b.iter().find_map(|b| b.host_port.as_deref()?.parse().ok())))
    }
}

fn label(labels: Option<&HashMap<String, String>>, key: &str) -> String {
    labels.and_then(|l| l.get(key)).cloned().unwrap_or_default()
}

/// "Exited (3) 2 seconds ago" → 3. The list answer carries the exit code only in
/// this human-readable status; reading it saves an inspect per exited container.
fn exit_code(status: &str) -> Option<i64> {
    let start = status.find('(')? + 1;
    let end = status[start..].find(')')? + start;
    status[start..end].parse().ok()
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn check(&self, spec: &ReplicaSpec) -> Result<()> {
        if spec.image.is_none() {
            return Err(Error::Unsupported {
                runtime: "docker",
                what: format!(
                    "an image for {}: set containers[0].image (paas deploy --image), or run paas up --runtime process for commands",
                    spec.revision
                ),
            });
        }
        Ok(())
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica> {
        self.check(spec)?;
        // A container created ahead of time only needs starting.
        let prepared = lock(&self.prepared)
            .get_mut(&spec.revision_uid)
            .and_then(Vec::pop);
        if let Some(id) = prepared {
            match self.start_created(&id, spec).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::debug!(container = %crate::short(&id), error = %e, "a prepared container did not start; creating another");
                }
            }
        }
        let id = self.create(spec).await?;
        self.start_created(&id, spec).await
    }

    async fn prepare(&self, spec: &ReplicaSpec) -> Result<()> {
        self.check(spec)?;
        if lock(&self.prepared)
            .get(&spec.revision_uid)
            .is_some_and(|p| !p.is_empty())
        {
            return Ok(());
        }
        let id = self.create(spec).await?;
        let kept = {
            let mut prepared = lock(&self.prepared);
            let list = prepared.entry(spec.revision_uid.clone()).or_default();
            let first = list.is_empty();
            if first {
                list.push(id.clone());
            }
            first
        };
        if kept {
            return Ok(());
        }
        // Another prepare won the race: one prepared container per revision is enough.
        self.remove(&id).await
    }

    async fn discard_prepared(&self, keep: &[String]) -> Result<()> {
        let mut discard = Vec::new();
        {
            let mut prepared = lock(&self.prepared);
            prepared.retain(|uid, ids| {
                let kept = keep.contains(uid);
                if !kept {
                    discard.append(ids);
                }
                kept
            });
        }
        // Containers created by an earlier run that no revision wants any more.
        for c in self.list_raw().await? {
            if c.state == Some(ContainerSummaryStateEnum::CREATED)
                && !keep.contains(&label(c.labels.as_ref(), labels::REVISION_UID))
            {
                discard.extend(c.id);
            }
        }
        for id in discard {
            self.remove(&id).await?;
        }
        Ok(())
    }

    async fn freeze(&self, id: &str) -> Result<()> {
        // Through the cgroup when possible: waking then costs a file write, not a
        // round trip through dockerd, containerd and runc.
        if let Ok(pid) = self.pid(id).await {
            if freezer::set_frozen(pid, true).is_ok() {
                lock(&self.frozen).insert(id.to_owned(), pid);
                return Ok(());
            }
        }
        self.docker
            .pause_container(id)
            .await
            .map_err(|e| self.error(&format!("pausing container {id}"), e))
    }

    async fn thaw(&self, id: &str) -> Result<()> {
        let pid = lock(&self.frozen).remove(id);
        if let Some(pid) = pid {
            if freezer::set_frozen(pid, false).is_ok() {
                return Ok(());
            }
        }
        self.docker
            .unpause_container(id)
            .await
            .map_err(|e| self.error(&format!("unpausing container {id}"), e))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        // A process frozen behind Docker's back cannot act on the stop signal.
        let frozen = lock(&self.frozen).remove(id);
        if let Some(pid) = frozen {
            let _ = freezer::set_frozen(pid, false);
        }
        let secs = i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(secs).build();
        // Already stopped (304, which bollard counts as success) and gone (404) are
        // what a stop wants; anything else still ends in the forced removal below.
        match self.docker.stop_container(id, Some(options)).await {
            Ok(())
            | Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => {
                let e = self.error(&format!("stopping container {id}"), e);
                tracing::warn!(container = %crate::short(id), error = %e, "stopping a container failed; removing it by force");
            }
        }
        self.remove(id).await
    }

    async fn list(&self) -> Result<Vec<Replica>> {
        // Asked every second: the engine leaves the prepared containers out rather
        // than sending them to be dropped here (`list_raw` finds them when needed).
        let replicas = self.list_where(self.filters(&REPLICA_STATUSES)).await?;
        Ok(replicas
            .into_iter()
            .filter_map(|c| {
                let state = match c.state {
                    Some(ContainerSummaryStateEnum::RUNNING) => ReplicaState::Running,
                    Some(ContainerSummaryStateEnum::PAUSED) => ReplicaState::Frozen,
                    Some(ContainerSummaryStateEnum::RESTARTING) => ReplicaState::Created,
                    _ => ReplicaState::Exited {
                        code: c.status.as_deref().and_then(exit_code),
                    },
                };
                let address = c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.ip.as_deref() == Some("127.0.0.1") && p.public_port.is_some())
                    .and_then(|p| p.public_port)
                    .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
                let l = c.labels.as_ref();
                Some(Replica {
                    namespace: label(l, labels::NAMESPACE),
                    revision: label(l, labels::REVISION_LABEL),
                    revision_uid: label(l, labels::REVISION_UID),
                    id: c.id?,
                    address,
                    state,
                })
            })
            .collect())
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut frames = self.docker.logs(id, Some(options));
        // stdout and stderr frames in the order the engine sent them, as one text.
        let mut raw = Vec::new();
        while let Some(frame) = frames.next().await {
            let frame =
                frame.map_err(|e| self.error(&format!("reading the logs of container {id}"), e))?;
            raw.extend_from_slice(&frame.into_bytes());
        }
        Ok(String::from_utf8_lossy(&raw)
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_read_from_the_status() {
        assert_eq!(exit_code("Exited (137) 3 seconds ago"), Some(137));
        assert_eq!(exit_code("Up 2 minutes"), None);
    }

    // The tests below talk to the real Docker Engine (`bash scripts/docker.sh` starts
    // one) and run the hello sample (`bash samples/build.sh` builds it). Each test is an
    // installation of its own, so they run side by side and never touch paas' own
    // containers; its guard removes what it left, even when it fails.

    const HELLO: &str = "paas-samples/hello:latest";
    const DEADLINE: Duration = Duration::from_secs(30);

    struct Installation {
        instance: String,
    }

    impl Installation {
        fn new() -> Self {
            let id = uuid::Uuid::new_v4().simple().to_string();
            Self {
                instance: format!("runtime-test-{}", &id[..12]),
            }
        }

        async fn connect(&self) -> Arc<DockerRuntime> {
            DockerRuntime::connect(DEFAULT_SOCKET.into(), self.instance.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// Ids of this installation's containers, as the docker CLI lists them.
        fn containers(&self, status: Option<&str>) -> Vec<String> {
            let mut cmd = std::process::Command::new("docker");
            cmd.args(["ps", "-a", "-q", "--no-trunc", "--filter"])
                .arg(format!("label={}={}", labels::INSTANCE, self.instance));
            if let Some(status) = status {
                cmd.arg("--filter").arg(format!("status={status}"));
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    impl Drop for Installation {
        fn drop(&mut self) {
            for id in self.containers(None) {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", &id])
                    .output();
            }
        }
    }

    /// `docker inspect` of one container.
    fn inspect(id: &str) -> serde_json::Value {
        let out = std::process::Command::new("docker")
            .args(["inspect", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        all[0].clone()
    }

    fn hello(env: &[(&str, &str)]) -> ReplicaSpec {
        ReplicaSpec {
            namespace: "rt-test".into(),
            service: "hello".into(),
            configuration: "hello-config".into(),
            revision: "hello-00001".into(),
            revision_uid: format!("uid-{}", uuid::Uuid::new_v4().simple()),
            image: Some(HELLO.into()),
            command: vec![],
            args: vec![],
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            port: 8080,
        }
    }

    async fn wait_ready(addr: SocketAddr) {
        let check = crate::probe::ReadinessCheck::Http {
            path: "/".into(),
            headers: vec![],
        };
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !crate::probe::is_ready(addr, &check).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} did not answer within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The state `list` reports for `id`, once it is no longer Running.
    async fn wait_exited(rt: &DockerRuntime, id: &str) -> ReplicaState {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let listed = rt.list().await.unwrap();
            let r = listed.iter().find(|r| r.id == id).unwrap();
            if matches!(r.state, ReplicaState::Exited { .. }) {
                return r.state;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} still {:?} after {DEADLINE:?}",
                r.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn wait_frozen(pid: u32, want: bool) {
        let deadline = std::time::Instant::now() + DEADLINE;
        while freezer::is_frozen(pid).unwrap() != want {
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid}: not frozen={want} after {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn container_pid(id: &str) -> u32 {
        let pid = inspect(id)["State"]["Pid"].as_u64().unwrap();
        assert_ne!(pid, 0, "{id} runs no process");
        u32::try_from(pid).unwrap()
    }

    #[tokio::test]
    async fn a_replica_is_a_container_published_on_loopback_with_its_labels_and_the_runtime_contract(
    ) {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let spec = hello(&[("TARGET", "docker")]);
        let r = rt.start(&spec).await.unwrap();
        let addr = r.address.unwrap();
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        assert_eq!(
            (r.namespace.as_str(), r.revision.as_str(), r.state),
            ("rt-test", "hello-00001", ReplicaState::Running)
        );
        assert_eq!(r.revision_uid, spec.revision_uid);
        wait_ready(addr).await;
        assert_eq!(rt.list().await.unwrap(), vec![r.clone()]);

        let c = inspect(&r.id);
        assert!(
            c["Name"]
                .as_str()
                .unwrap()
                .starts_with("/paas-rt-test-hello-00001-"),
            "{}",
            c["Name"]
        );
        let labels = &c["Config"]["Labels"];
        for (k, v) in [
            (labels::MANAGED, "true"),
            (labels::INSTANCE, inst.instance.as_str()),
            (labels::NAMESPACE, "rt-test"),
            (labels::SERVICE_LABEL, "hello"),
            (labels::CONFIGURATION_LABEL, "hello-config"),
            (labels::REVISION_LABEL, "hello-00001"),
            (labels::REVISION_UID, spec.revision_uid.as_str()),
        ] {
            assert_eq!(labels[k], v, "label {k} in {labels}");
        }
        let env: Vec<&str> = c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for var in [
            "TARGET=docker",
            "PORT=8080",
            "K_SERVICE=hello",
            "K_CONFIGURATION=hello-config",
            "K_REVISION=hello-00001",
        ] {
            assert!(env.contains(&var), "{var} not in {env:?}");
        }
        assert_eq!(c["HostConfig"]["Init"], true);
        assert_eq!(
            c["HostConfig"]["PortBindings"]["8080/tcp"],
            serde_json::json!([{ "HostIp": "127.0.0.1", "HostPort": "" }])
        );
        assert!(c["Config"]["ExposedPorts"]["8080/tcp"].is_object());
        // No command in the spec: the image's entrypoint runs.
        assert_eq!(c["Config"]["Entrypoint"], serde_json::json!(["/hello"]));

        // What the replica wrote to stdout.
        let logs = rt.logs(&r.id, 10).await.unwrap();
        assert!(logs.iter().any(|l| l.contains("8080")), "{logs:?}");

        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(rt.list().await.unwrap(), vec![]);
        assert_eq!(inst.containers(None), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_replica_that_exits_is_listed_with_its_code_and_its_stderr_is_in_the_logs() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let r = rt.start(&hello(&[("DELAY_MS", "soon")])).await.unwrap();
        assert_eq!(
            wait_exited(&rt, &r.id).await,
            ReplicaState::Exited { code: Some(1) }
        );
        let logs = rt.logs(&r.id, 10).await.unwrap();
        assert!(logs.iter().any(|l| l.contains("DELAY_MS")), "{logs:?}");
        assert_eq!(logs.len(), 1, "{logs:?}");
    }

    #[tokio::test]
    async fn a_container_killed_behind_the_runtimes_back_is_listed_as_exited() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let r = rt.start(&hello(&[])).await.unwrap();
        let out = std::process::Command::new("docker")
            .args(["kill", &r.id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            wait_exited(&rt, &r.id).await,
            ReplicaState::Exited { code: Some(137) }
        );
        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(inst.containers(None), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_frozen_replica_stays_frozen_until_thawed_and_a_restart_thaws_it() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let r = rt.start(&hello(&[])).await.unwrap();
        let addr = r.address.unwrap();
        wait_ready(addr).await;
        let pid = container_pid(&r.id);

        rt.freeze(&r.id).await.unwrap();
        wait_frozen(pid, true);
        // Frozen through its cgroup, behind Docker's back.
        assert_eq!(rt.list().await.unwrap()[0].state, ReplicaState::Running);
        rt.thaw(&r.id).await.unwrap();
        wait_frozen(pid, false);
        wait_ready(addr).await;

        // A paas that stops with frozen containers leaves them frozen; the next run
        // thaws every container it adopts.
        rt.freeze(&r.id).await.unwrap();
        wait_frozen(pid, true);
        let again = inst.connect().await;
        wait_frozen(pid, false);
        wait_ready(addr).await;

        // Stopping a frozen replica thaws it first, then removes it.
        rt.freeze(&r.id).await.unwrap();
        wait_frozen(pid, true);
        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(again.list().await.unwrap(), vec![]);
        assert_eq!(inst.containers(None), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_prepared_container_is_created_once_kept_for_its_revision_and_adopted_by_a_restart() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let mut spec = hello(&[]);
        // Knative's command is Docker's entrypoint, its args Docker's cmd.
        spec.command = vec!["/hello".into()];
        spec.args = vec!["ignored".into()];
        rt.prepare(&spec).await.unwrap();
        rt.prepare(&spec).await.unwrap();
        let prepared = inst.containers(Some("created"));
        assert_eq!(prepared.len(), 1, "{prepared:?}");
        let c = inspect(&prepared[0]);
        assert_eq!(c["Config"]["Entrypoint"], serde_json::json!(["/hello"]));
        assert_eq!(c["Config"]["Cmd"], serde_json::json!(["ignored"]));
        // Not a replica until it starts.
        assert_eq!(rt.list().await.unwrap(), vec![]);

        // A restart finds it and starts it rather than creating another.
        drop(rt);
        let rt = inst.connect().await;
        rt.discard_prepared(std::slice::from_ref(&spec.revision_uid))
            .await
            .unwrap();
        let r = rt.start(&spec).await.unwrap();
        assert_eq!(r.id, prepared[0]);
        wait_ready(r.address.unwrap()).await;

        // Revisions that are gone lose theirs.
        rt.prepare(&spec).await.unwrap();
        assert_eq!(inst.containers(Some("created")).len(), 1);
        rt.discard_prepared(&[]).await.unwrap();
        assert_eq!(inst.containers(Some("created")), Vec::<String>::new());
        assert_eq!(inst.containers(None), vec![r.id.clone()]);
    }

    #[test]
    fn replicas_are_listed_in_every_status_but_created() {
        use ContainerSummaryStateEnum as S;
        for status in [
            S::RUNNING,
            S::PAUSED,
            S::RESTARTING,
            S::EXITED,
            S::REMOVING,
            S::DEAD,
        ] {
            assert!(
                REPLICA_STATUSES.contains(&status.to_string().as_str()),
                "{status}"
            );
        }
        assert!(!REPLICA_STATUSES.contains(&S::CREATED.to_string().as_str()));
    }

    #[tokio::test]
    async fn the_engine_leaves_prepared_containers_out_of_the_replicas_it_lists() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let prepared = hello(&[]);
        rt.prepare(&prepared).await.unwrap();
        let running = rt.start(&hello(&[])).await.unwrap();
        let created = inst.containers(Some("created"));
        assert_eq!(created.len(), 1, "{created:?}");
        // Asked of the engine, not dropped afterwards.
        let answered = rt.list_where(rt.filters(&REPLICA_STATUSES)).await.unwrap();
        let ids: Vec<_> = answered.iter().filter_map(|c| c.id.clone()).collect();
        assert_eq!(ids, std::slice::from_ref(&running.id));
        let listed = rt.list().await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].id, running.id);
        assert_eq!(listed[0].state, ReplicaState::Running);
        // The prepared one is still there for the start that needs it.
        let all = rt.list_raw().await.unwrap();
        assert!(all.iter().any(|c| c.id.as_ref() == Some(&created[0])));
    }

    #[tokio::test]
    async fn a_missing_image_is_reported_as_not_found_locally() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let mut spec = hello(&[]);
        spec.image = Some("paas-samples/no-such-image:latest".into());
        let err = rt.start(&spec).await.unwrap_err();
        assert!(
            matches!(&err, Error::ImageNotFound { image } if image == "paas-samples/no-such-image:latest"),
            "{err:?}"
        );
        assert!(err.to_string().contains("not found locally"), "{err}");
        assert_eq!(inst.containers(None), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_command_that_cannot_run_exits_with_the_reason_in_the_logs() {
        // The init (Init: true) starts, so the container does, and then the init
        // fails to run the command: no port, an exit code, the reason on stderr.
        let inst = Installation::new();
        let rt = inst.connect().await;
        let mut spec = hello(&[]);
        spec.command = vec!["/no-such-binary".into()];
        let r = rt.start(&spec).await.unwrap();
        let ReplicaState::Exited { code: Some(code) } = wait_exited(&rt, &r.id).await else {
            panic!("no exit code for {r}");
        };
        assert_ne!(code, 0);
        let logs = rt.logs(&r.id, 10).await.unwrap();
        assert!(
            logs.iter().any(|l| l.contains("/no-such-binary")),
            "{logs:?}"
        );
        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(inst.containers(None), Vec::<String>::new());
    }

    #[tokio::test]
    async fn the_api_version_is_the_older_of_the_engines_and_the_clients() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        let out = std::process::Command::new("docker")
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let engine = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let parse = |v: &str| -> (usize, usize) {
            let (major, minor) = v.split_once('.').unwrap();
            (major.parse().unwrap(), minor.parse().unwrap())
        };
        let client = bollard::API_DEFAULT_VERSION;
        let want = parse(&engine).min((client.major_version, client.minor_version));
        assert_eq!(parse(&rt.docker.client_version().to_string()), want);
    }

    #[tokio::test]
    async fn stopping_a_replica_that_is_gone_succeeds() {
        let inst = Installation::new();
        let rt = inst.connect().await;
        rt.stop("0123456789ab0123456789ab", Duration::from_secs(1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn remove_all_removes_this_installations_containers_only() {
        let (mine, theirs) = (Installation::new(), Installation::new());
        let (rt, other) = (mine.connect().await, theirs.connect().await);
        rt.start(&hello(&[])).await.unwrap();
        rt.prepare(&hello(&[])).await.unwrap();
        let kept = other.start(&hello(&[])).await.unwrap();
        assert_eq!(mine.containers(None).len(), 2);

        rt.remove_all().await;
        assert_eq!(mine.containers(None), Vec::<String>::new());
        assert_eq!(theirs.containers(None), vec![kept.id]);
    }

    #[tokio::test]
    async fn an_engine_that_does_not_answer_is_reported_with_its_socket() {
        let dir = std::env::temp_dir().join(format!(
            "paas-runtime-docker-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // No socket at all, and a socket nobody listens on any more.
        let missing = dir.join("missing.sock");
        let dead = dir.join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        for (socket, why) in [
            (missing, "No such file or directory"),
            (dead, "Connection refused"),
        ] {
            let err = DockerRuntime::connect(socket.clone(), "unused".into())
                .await
                .unwrap_err()
                .to_string();
            let want = format!("cannot reach the Docker Engine at {}", socket.display());
            assert!(err.starts_with(&want), "{err}");
            assert!(err.contains(why), "{err}");
            assert!(err.contains("paas up --runtime process"), "{err}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
