//! What every stored resource has in common, and the closed set of kinds paas knows.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::eventing::{Broker, Trigger};
use crate::flows::{Parallel, Sequence};
use crate::kafka_source::KafkaSource;
use crate::meta::ObjectMeta;
use crate::serving::{Configuration, Revision, Route, Service};
use crate::sources::PingSource;

/// A resource kind: its Knative identity and access to its metadata.
pub trait Object:
    Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static
{
    const API_VERSION: &'static str;
    const KIND: &'static str;
    /// The lower-case plural used in URLs (`services`).
    const PLURAL: &'static str;

    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    fn name(&self) -> &str {
        &self.meta().name
    }

    fn namespace(&self) -> &str {
        self.meta().namespace()
    }
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

/// Any resource paas stores.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Service(Service),
    Configuration(Configuration),
    Revision(Revision),
    Route(Route),
    Broker(Broker),
    Trigger(Trigger),
    Sequence(Sequence),
    Parallel(Parallel),
    PingSource(PingSource),
    KafkaSource(KafkaSource),
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Service(_) => Service::KIND,
            Resource::Configuration(_) => Configuration::KIND,
            Resource::Revision(_) => Revision::KIND,
            Resource::Route(_) => Route::KIND,
            Resource::Broker(_) => Broker::KIND,
            Resource::Trigger(_) => Trigger::KIND,
            Resource::Sequence(_) => Sequence::KIND,
            Resource::Parallel(_) => Parallel::KIND,
            Resource::PingSource(_) => PingSource::KIND,
            Resource::KafkaSource(_) => KafkaSource::KIND,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Resource::Service(o) => o.meta(),
            Resource::Configuration(o) => o.meta(),
            Resource::Revision(o) => o.meta(),
            Resource::Route(o) => o.meta(),
            Resource::Broker(o) => o.meta(),
            Resource::Trigger(o) => o.meta(),
            Resource::Sequence(o) => o.meta(),
            Resource::Parallel(o) => o.meta(),
            Resource::PingSource(o) => o.meta(),
            Resource::KafkaSource(o) => o.meta(),
        }
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Resource::Service(o) => o.meta_mut(),
            Resource::Configuration(o) => o.meta_mut(),
            Resource::Revision(o) => o.meta_mut(),
            Resource::Route(o) => o.meta_mut(),
            Resource::Broker(o) => o.meta_mut(),
            Resource::Trigger(o) => o.meta_mut(),
            Resource::Sequence(o) => o.meta_mut(),
            Resource::Parallel(o) => o.meta_mut(),
            Resource::PingSource(o) => o.meta_mut(),
            Resource::KafkaSource(o) => o.meta_mut(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Resource::Service(o) => serde_json::to_value(o),
            Resource::Configuration(o) => serde_json::to_value(o),
            Resource::Revision(o) => serde_json::to_value(o),
            Resource::Route(o) => serde_json::to_value(o),
            Resource::Broker(o) => serde_json::to_value(o),
            Resource::Trigger(o) => serde_json::to_value(o),
            Resource::Sequence(o) => serde_json::to_value(o),
            Resource::Parallel(o) => serde_json::to_value(o),
            Resource::PingSource(o) => serde_json::to_value(o),
            Resource::KafkaSource(o) => serde_json::to_value(o),
        };
        // Invariant: these types serialize to JSON infallibly (string keys, no non-finite floats).
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// The kinds a user may name on the command line, with Knative's short names.
pub fn plural_for(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "service" | "services" | "ksvc" | "ksvcs" | "svc" => Service::PLURAL,
        "configuration" | "configurations" | "config" | "cfg" => Configuration::PLURAL,
        "revision" | "revisions" | "rev" | "revs" => Revision::PLURAL,
        "route" | "routes" | "rt" => Route::PLURAL,
        "broker" | "brokers" => Broker::PLURAL,
        "trigger" | "triggers" => Trigger::PLURAL,
        "sequence" | "sequences" => Sequence::PLURAL,
        "parallel" | "parallels" => Parallel::PLURAL,
        "pingsource" | "pingsources" | "ping" => PingSource::PLURAL,
        "kafkasource" | "kafkasources" => KafkaSource::PLURAL,
        _ => return None,
    })
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
