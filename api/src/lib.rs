//! The paas resource model: Knative-compatible `serving.knative.dev/v1` types, their
//! defaults and validation, and manifest parsing. No I/O lives here, so every rule is
//! tested from values alone.

/// `impl Object` for a resource type whose metadata is in `self.metadata`.
macro_rules! object {
    ($ty:ident, $api_version:expr, $kind:literal, $plural:literal) => {
        impl $crate::object::Object for $ty {
            const API_VERSION: &'static str = $api_version;
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            fn meta(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A resource in Kubernetes' shape: `apiVersion`, `kind`, `metadata`, `spec`, and a
/// `status` written by paas and left out while empty; with its `Object` impl.
macro_rules! resource {
    ($ty:ident, $spec:ident, $status:ident, $api_version:expr, $kind:literal, $plural:literal) => {
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $ty {
            #[serde(default)]
            pub api_version: String,
            #[serde(default)]
            pub kind: String,
            #[serde(default)]
            pub metadata: $crate::meta::ObjectMeta,
            #[serde(default)]
            pub spec: $spec,
            #[serde(default, skip_serializing_if = "crate::is_default")]
            pub status: $status,
        }
        object!($ty, $api_version, $kind, $plural);

        impl $status {
            pub fn is_empty(&self) -> bool {
                *self == Self::default()
            }
        }
    };
}

/// Whether a value is its type's default (for `skip_serializing_if`).
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

pub mod canary;
pub mod condition;
pub mod cron;
pub mod duration;
pub mod eventing;
pub mod eventing_validation;
pub mod flows;
pub mod iso8601;
pub mod kafka_source;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod object;
pub mod serving;
pub mod sources;
pub mod validation;

pub use condition::{Condition, ConditionStatus, Conditions};
pub use manifest::{parse_manifests, Manifest, ManifestError};
pub use meta::ObjectMeta;
pub use object::{Object, Resource, RevisionKey, TypeMeta};
pub use serving::{
    Configuration, Container, Revision, RevisionSpec, RevisionTemplate, Route, Service,
    TrafficTarget,
};
pub use validation::{FieldError, Warning};

/// Labels and annotations paas reads and writes, in Knative's own keys.
pub mod keys {
    pub const SERVICE_LABEL: &str = "serving.knative.dev/service";
    pub const CONFIGURATION_LABEL: &str = "serving.knative.dev/configuration";
    pub const CONFIGURATION_GENERATION_LABEL: &str = "serving.knative.dev/configurationGeneration";
    pub const REVISION_LABEL: &str = "serving.knative.dev/revision";
    pub const ROUTE_LABEL: &str = "serving.knative.dev/route";
    pub const MIN_SCALE: &str = "autoscaling.knative.dev/min-scale";
    pub const MAX_SCALE: &str = "autoscaling.knative.dev/max-scale";
    pub const INITIAL_SCALE: &str = "autoscaling.knative.dev/initial-scale";
    /// `stop` (default) or `freeze`: what becomes of the last replica at zero.
    pub const IDLE: &str = "paas.dev/idle";
    /// How long a frozen replica is kept before it is stopped (default 15m).
    pub const FREEZE_RETENTION: &str = "paas.dev/freeze-retention";
    /// On a Service (copied to its Route): shift traffic to a new latest revision
    /// gradually over this long, 1% first (Knative's key).
    pub const ROLLOUT_DURATION: &str = "serving.knative.dev/rollout-duration";
}

/// The namespace used when a manifest or command names none.
pub const DEFAULT_NAMESPACE: &str = "default";
