//! Replicas as Docker containers, through the Engine API on its unix socket.
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
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::docker_api::{demux_logs, engine_message, query_escape, DockerApi};
use crate::{freezer, labels, Error, Replica, ReplicaSpec, ReplicaState, Result, Runtime};

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

#[derive(Debug)]
pub struct DockerRuntime {
    api: DockerApi,
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
        let api = DockerApi::connect(socket).await?;
        let rt = Self {
            api,
            instance,
            prepared: Mutex::new(HashMap::new()),
            frozen: Mutex::new(HashMap::new()),
        };
        // Containers an earlier run prepared are used again when their revision still
        // exists; containers it froze through their cgroup are thawed, since Docker
        // does not know they are frozen.
        for c in rt.list_raw().await? {
            if c.state == "running" {
                if let Ok(pid) = rt.pid(&c.id).await {
                    let _ = freezer::set_frozen(pid, false);
                }
            }
            if c.state == "created" {
                let uid = c
                    .labels
                    .get(labels::REVISION_UID)
                    .cloned()
                    .unwrap_or_default();
                lock(&rt.prepared).entry(uid).or_default().push(c.id);
            }
        }
        Ok(Arc::new(rt))
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
        for r in all {
            if removals.len() >= AT_ONCE {
                removals.join_next().await;
            }
            let rt = self.clone();
            removals.spawn(async move {
                if let Err(e) = rt.remove(&r.id).await {
                    tracing::warn!(container = %crate::short(&r.id), error = %e, "removing a container failed");
                }
            });
        }
        while removals.join_next().await.is_some() {}
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let (status, body) = self
            .api
            .call(
                Method::DELETE,
                &format!("/containers/{id}?force=true&v=true"),
                None,
            )
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Error::Docker {
                what: format!("removing container {id}"),
                status: status.as_u16(),
                message: engine_message(&body),
            })
        }
    }

    /// Create (not start) a container for `spec`.
    async fn create(&self, spec: &ReplicaSpec) -> Result<String> {
        let image = spec.image.clone().unwrap_or_default();
        let port_key = format!("{}/tcp", spec.port);
        let env: Vec<String> = spec
            .environment(spec.port)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut body = json!({
            "Image": image,
            "Env": env,
            "Labels": {
                labels::MANAGED: "true",
                labels::INSTANCE: self.instance,
                labels::NAMESPACE: spec.namespace,
                labels::SERVICE_LABEL: spec.service,
                labels::CONFIGURATION_LABEL: spec.configuration,
                labels::REVISION_LABEL: spec.revision,
                labels::REVISION_UID: spec.revision_uid,
            },
            "ExposedPorts": { port_key.clone(): {} },
            "HostConfig": {
                // An init as PID 1 forwards SIGTERM, which most apps never handle as PID 1.
                "Init": true,
                "PortBindings": { port_key: [{ "HostIp": "127.0.0.1", "HostPort": "" }] },
            },
        });
        // Knative maps command to the entrypoint and args to the command.
        if !spec.command.is_empty() {
            body["Entrypoint"] = json!(spec.command);
        }
        if !spec.args.is_empty() {
            body["Cmd"] = json!(spec.args);
        }
        let name = Self::container_name(spec);
        let path = format!("/containers/create?name={}", query_escape(&name));
        let (status, bytes) = self.api.call(Method::POST, &path, Some(body)).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(Error::ImageNotFound { image });
        }
        if !status.is_success() {
            return Err(Error::Docker {
                what: format!("creating a container of {image}"),
                status: status.as_u16(),
                message: engine_message(&bytes),
            });
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let created: Created =
            serde_json::from_slice(&bytes).map_err(|source| Error::DockerDecode {
                what: "container create".into(),
                source,
            })?;
        Ok(created.id)
    }

    /// Start a created container and learn its published port.
    async fn start_created(&self, id: &str, spec: &ReplicaSpec) -> Result<Replica> {
        let started = async {
            self.api
                .ok(Method::POST, &format!("/containers/{id}/start"), None)
                .await?;
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
    async fn list_raw(&self) -> Result<Vec<Summary>> {
        let filters =
            json!({ "label": [format!("{}={}", labels::INSTANCE, self.instance)] }).to_string();
        let path = format!(
            "/containers/json?all=true&filters={}",
            query_escape(&filters)
        );
        self.api.json(Method::GET, &path, None).await
    }

    /// The host pid of a container's first process.
    async fn pid(&self, id: &str) -> Result<u32> {
        #[derive(Deserialize)]
        struct State {
            #[serde(rename = "Pid", default)]
            pid: u32,
        }
        #[derive(Deserialize)]
        struct Info {
            #[serde(rename = "State")]
            state: State,
        }
        let info: Info = self
            .api
            .json(Method::GET, &format!("/containers/{id}/json"), None)
            .await?;
        if info.state.pid == 0 {
            return Err(Error::NoSuchReplica { id: id.to_owned() });
        }
        Ok(info.state.pid)
    }

    async fn host_port(&self, id: &str, port: u16) -> Result<Option<u16>> {
        let info: Inspect = self
            .api
            .json(Method::GET, &format!("/containers/{id}/json"), None)
            .await?;
        Ok(info
            .network_settings
            .ports
            .get(&format!("{port}/tcp"))
            .and_then(|b| b.as_ref())
            .and_then(|b| b.iter().find_map(|b| b.host_port.parse().ok())))
    }
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "NetworkSettings")]
    network_settings: NetworkSettings,
}

#[derive(Deserialize)]
struct NetworkSettings {
    #[serde(rename = "Ports", default)]
    ports: HashMap<String, Option<Vec<PortBinding>>>,
}

#[derive(Deserialize)]
struct PortBinding {
    #[serde(rename = "HostPort", default)]
    host_port: String,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Labels", default)]
    labels: HashMap<String, String>,
    #[serde(rename = "Ports", default)]
    ports: Vec<SummaryPort>,
}

#[derive(Deserialize)]
struct SummaryPort {
    #[serde(rename = "IP", default)]
    ip: String,
    #[serde(rename = "PublicPort", default)]
    public_port: Option<u16>,
}

/// "Exited (3) 2 seconds ago" → 3.
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
            if c.state == "created"
                && !keep.contains(
                    &c.labels
                        .get(labels::REVISION_UID)
                        .cloned()
                        .unwrap_or_default(),
                )
            {
                discard.push(c.id);
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
        self.api
            .ok(Method::POST, &format!("/containers/{id}/pause"), None)
            .await
            .map(|_| ())
    }

    async fn thaw(&self, id: &str) -> Result<()> {
        let pid = lock(&self.frozen).remove(id);
        if let Some(pid) = pid {
            if freezer::set_frozen(pid, false).is_ok() {
                return Ok(());
            }
        }
        self.api
            .ok(Method::POST, &format!("/containers/{id}/unpause"), None)
            .await
            .map(|_| ())
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        // A process frozen behind Docker's back cannot act on the stop signal.
        let frozen = lock(&self.frozen).remove(id);
        if let Some(pid) = frozen {
            let _ = freezer::set_frozen(pid, false);
        }
        let secs = grace.as_secs().max(1);
        let (status, body) = self
            .api
            .call(
                Method::POST,
                &format!("/containers/{id}/stop?t={secs}"),
                None,
            )
            .await?;
        if !(status.is_success()
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::NOT_FOUND)
        {
            tracing::warn!(container = %crate::short(id), status = status.as_u16(), message = %engine_message(&body), "stopping a container failed; removing it by force");
        }
        self.remove(id).await
    }

    async fn list(&self) -> Result<Vec<Replica>> {
        let all = self.list_raw().await?;
        Ok(all
            .into_iter()
            // Prepared containers are not replicas until they start.
            .filter(|c| c.state != "created")
            .map(|c| {
                let state = match c.state.as_str() {
                    "running" => ReplicaState::Running,
                    "paused" => ReplicaState::Frozen,
                    "restarting" => ReplicaState::Created,
                    _ => ReplicaState::Exited {
                        code: exit_code(&c.status),
                    },
                };
                let address = c
                    .ports
                    .iter()
                    .find(|p| p.ip == "127.0.0.1" && p.public_port.is_some())
                    .and_then(|p| p.public_port)
                    .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
                let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
                Replica {
                    namespace: label(labels::NAMESPACE),
                    revision: label(labels::REVISION_LABEL),
                    revision_uid: label(labels::REVISION_UID),
                    id: c.id,
                    address,
                    state,
                }
            })
            .collect())
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let raw = self
            .api
            .ok(
                Method::GET,
                &format!("/containers/{id}/logs?stdout=true&stderr=true&tail={tail}"),
                None,
            )
            .await?;
        Ok(demux_logs(&raw).lines().map(str::to_owned).collect())
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
}
