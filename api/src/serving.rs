//! `serving.knative.dev/v1`: Service, Configuration, Revision and Route, in Knative's shapes.
//!
//! Fields that Knative has and paas does not act on yet are typed as
//! `Option<serde_json::Value>` so that a Knative manifest still parses; validation turns
//! each one that is set into a warning naming its path. Any other field is an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::condition::Conditions;
use crate::meta::ObjectMeta;

pub const SERVING_API_VERSION: &str = "serving.knative.dev/v1";

/// A field Knative understands that paas accepts but does not act on.
pub type Unsupported = Option<serde_json::Value>;

// ---------------------------------------------------------------------------------------
// Service

resource!(Service, ServiceSpec, ServiceStatus);

impl Service {
    pub fn new(namespace: &str, name: &str, spec: ServiceSpec) -> Self {
        Self {
            api_version: SERVING_API_VERSION.into(),
            kind: "Service".into(),
            metadata: ObjectMeta::named(namespace, name),
            spec,
            status: ServiceStatus::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(default)]
    pub template: RevisionTemplate,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Addressable {
    pub url: String,
}

// ---------------------------------------------------------------------------------------
// Revision template and spec

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionTemplate {
    #[serde(default, skip_serializing_if = "TemplateMeta::is_empty")]
    pub metadata: TemplateMeta,
    #[serde(default)]
    pub spec: RevisionSpec,
}

/// The metadata a template may carry: labels and annotations are copied to each revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Bring-your-own revision names: Knative has them, paas names revisions itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Unsupported,
}

impl TemplateMeta {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Hard limit of concurrent requests per replica; 0 or absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_aliases: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Unsupported,
}

impl RevisionSpec {
    /// Knative's default request timeout (`revision-timeout-seconds`).
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

    pub fn timeout_seconds(&self) -> u64 {
        self.timeout_seconds
            .unwrap_or(Self::DEFAULT_TIMEOUT_SECONDS)
    }

    /// The serving container; validation guarantees there is exactly one.
    pub fn container(&self) -> Option<&Container> {
        self.containers.first()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_policy: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Unsupported,
}

impl Container {
    /// Knative's runtime contract: the declared containerPort, else 8080.
    pub const DEFAULT_PORT: u16 = 8080;

    pub fn port(&self) -> u16 {
        self.ports
            .first()
            .and_then(|p| p.container_port)
            .unwrap_or(Self::DEFAULT_PORT)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// `http1` or `h2c` in Knative; paas speaks HTTP/1.1 to replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Knative probes the serving port; a port here must equal it if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Unsupported,
}

// ---------------------------------------------------------------------------------------
// Traffic

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Configuration

resource!(
    Configuration,
    ConfigurationSpec,
    ConfigurationStatus,
    derived
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSpec {
    #[serde(default)]
    pub template: RevisionTemplate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Revision

resource!(Revision, RevisionSpec, RevisionStatus, derived);

impl Revision {
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(crate::keys::SERVICE_LABEL)
            .map(String::as_str)
    }

    pub fn configuration_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(crate::keys::CONFIGURATION_LABEL)
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,
}

// ---------------------------------------------------------------------------------------
// Route

resource!(Route, RouteSpec, RouteStatus, derived);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    #[serde(default)]
    pub traffic: Vec<TrafficTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// A gradual rollout of the latest revision in progress (paas' own field; Knative
    /// keeps the same state in an annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// The automated canary of the latest revision (paas' own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CanaryPhase {
    #[default]
    Progressing,
    Succeeded,
    Failed,
}

/// Where a canary stands. `baseline` is the candidate's counters when the step began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    pub stable: String,
    pub candidate: String,
    pub phase: CanaryPhase,
    /// Index into the steps.
    #[serde(default)]
    pub step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_start_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub baseline: CanaryCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A revision's answers as the gateway counted them (see paas-activator's Outcomes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCounts {
    pub responses: u64,
    pub errors: u64,
    pub latency_buckets: Vec<u64>,
}

/// Where a gradual rollout stands: the revisions sharing the latest-revision target's
/// traffic, oldest first; each step moves `stepPercent` from the oldest to the newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub revisions: Vec<RolloutShare>,
    #[serde(default)]
    pub step_percent: u32,
    #[serde(default)]
    pub step_millis: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_time: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutShare {
    pub revision_name: String,
    pub percent: u32,
}

/// The URL a service is reached at through the gateway.
pub fn service_url(namespace: &str, name: &str, http_port: u16) -> String {
    if http_port == 80 {
        format!("http://{name}.{namespace}.localhost")
    } else {
        format!("http://{name}.{namespace}.localhost:{http_port}")
    }
}
