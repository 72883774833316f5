//! The autoscaler: Knative's KPA. The gateway and the activator count requests per
//! revision and feed [`Sample`]s in; the decider (a pure function of metrics, config,
//! current state and time) computes a desired scale; a [`Scaler`] applies it.

use std::fmt;

use async_trait::async_trait;
use paas_api::RevisionKey;

/// One second of what the proxies saw for one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub revision: RevisionKey,
    /// Requests in flight, averaged over the second.
    pub average_concurrency: f64,
    /// Requests that arrived during the second.
    pub requests: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("scaling {revision} to {replicas} failed: {message}")]
pub struct ScaleError {
    pub revision: RevisionKey,
    pub replicas: u32,
    pub message: String,
}

/// Sets the desired replica count of a revision: the runtime's fleet on one machine,
/// a Deployment's scale subresource on Kubernetes.
#[async_trait]
pub trait Scaler: Send + Sync + fmt::Debug + 'static {
    async fn scale(&self, revision: &RevisionKey, replicas: u32) -> Result<(), ScaleError>;
}
