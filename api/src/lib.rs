//! The paas resource model: Knative-compatible `serving.knative.dev/v1` types, their
//! defaults and validation, and manifest parsing. No I/O lives here, so every rule is
//! tested from values alone.

/// A resource in Kubernetes' shape: `apiVersion`, `kind`, `metadata`, `spec` and
/// `status`. Its `Object` impl comes from its row in [`kinds`].
///
/// A kind clients write refuses unknown fields (each an error naming its path) and
/// leaves `status` out while it is empty. A kind paas derives (`derived`) keeps the
/// JSON shape paas has always stored and served for it: unknown fields are skipped,
/// and `status` is always written (`{}` while empty).
macro_rules! resource {
    ($ty:ident, $spec:ident, $status:ident) => {
        resource!(@shape $ty, $spec, $status,
            [#[serde(deny_unknown_fields)]],
            [#[serde(skip_serializing_if = "crate::is_default")]]);
    };
    ($ty:ident, $spec:ident, $status:ident, derived) => {
        resource!(@shape $ty, $spec, $status, [], []);
    };
    (@shape $ty:ident, $spec:ident, $status:ident,
        [$(#[$outer:meta])*], [$(#[$status_attr:meta])*]) => {
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        $(#[$outer])*
        pub struct $ty {
            #[serde(default)]
            pub api_version: String,
            #[serde(default)]
            pub kind: String,
            #[serde(default)]
            pub metadata: $crate::meta::ObjectMeta,
            #[serde(default)]
            pub spec: $spec,
            #[serde(default)]
            $(#[$status_attr])*
            pub status: $status,
        }

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

pub mod annotations;
pub mod canary;
pub mod condition;
pub mod cron;
pub mod duration;
pub mod eventing;
pub mod eventing_validation;
pub mod flows;
pub mod iso8601;
pub mod kafka_source;
pub mod kinds;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod object;
pub mod serving;
pub mod sources;
pub mod validation;

pub use condition::{Condition, ConditionStatus, Conditions};
pub use kinds::{KindInfo, Resource, KINDS};
pub use manifest::{parse_manifests, Manifest, ManifestError};
pub use meta::ObjectMeta;
pub use object::{Object, RevisionKey, TypeMeta};
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
