//! What every stored resource has in common. The kinds themselves are rows of
//! [`crate::kinds`], which implements this trait for each.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::kinds::{KindInfo, Resource};
use crate::meta::ObjectMeta;
use crate::validation::Report;

/// A resource kind: its row in the table of kinds, access to its metadata, and the
/// typed operations the table's readers run on it.
pub trait Object:
    Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static
{
    const INFO: &'static KindInfo;
    const API_VERSION: &'static str = Self::INFO.api_version;
    const KIND: &'static str = Self::INFO.kind;
    /// The lower-case plural used in URLs (`services`).
    const PLURAL: &'static str = Self::INFO.plural;

    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    fn name(&self) -> &str {
        &self.meta().name
    }

    fn namespace(&self) -> &str {
        self.meta().namespace()
    }

    /// The kind's own rules, each problem with its field path.
    fn validate(&self) -> Report;

    /// What a write from a client becomes before it is checked: apiVersion and kind
    /// are the kind's own, and status, which only paas writes, is cleared (what a
    /// manifest says of it is ignored, as in Kubernetes).
    fn prepare_write(&mut self);

    /// Take what a [`crate::kinds::Writes::SpecAndLabels`] replace changes from `from`:
    /// spec, labels, annotations and resourceVersion.
    fn take_spec_and_labels(&mut self, from: Self);

    fn into_resource(self) -> Resource;
}

/// apiVersion and kind, read first to decide how to parse the rest of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
}

/// A revision, by namespace and name: how the data path names what it routes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
