//! The autoscaler: Knative's KPA. The gateway counts requests per revision and the
//! collector feeds samples into a per-second [`MetricWindow`]; the [`decide`] function
//! (pure: metrics, settings, state and time in, a replica count out) runs every tick;
//! a [`Scaler`] applies the result.

use std::fmt;

use async_trait::async_trait;
use paas_api::RevisionKey;

pub mod autoscaler;
pub mod config;
pub mod decider;
pub mod window;

pub use autoscaler::{Autoscaler, RevisionView};
pub use config::{AutoscalerConfig, Metric, ScalingSpec};
pub use decider::{decide, DeciderState, Decision};
pub use window::MetricWindow;

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
