//! The table of kinds: every resource kind paas knows, described once.
//!
//! A row names the kind's Rust type (which `resource!` shapes: spec, status and the
//! Kubernetes envelope), its API identity (group, version, plural, singular, short
//! names), what clients may do with it, its subresources, and its own validation.
//! From the rows come each type's [`Object`] impl, the closed [`Resource`] enum, the
//! [`KINDS`] list and [`KindInfo::visit`], which reaches a kind's typed code from its
//! row. Manifest parsing, the REST API and the CLI read the table; adding a kind is a
//! row here (plus its types and its reconciler).

use crate::eventing::{Broker, Trigger};
use crate::eventing_validation::{
    validate_broker, validate_kafka_source, validate_parallel, validate_ping_source,
    validate_sequence, validate_trigger,
};
use crate::flows::{Parallel, Sequence};
use crate::kafka_source::KafkaSource;
use crate::meta::ObjectMeta;
use crate::object::Object;
use crate::serving::{Configuration, Revision, Route, Service};
use crate::sources::PingSource;
use crate::validation::{validate_service, Report};

/// What paas knows of a resource kind besides its Rust type.
#[derive(Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// Which row this is: [`KindInfo::visit`] reaches the kind's type through it.
    pub id: KindId,
    /// The API group, `serving.knative.dev`.
    pub group: &'static str,
    /// The one version paas serves, `v1`.
    pub version: &'static str,
    /// `group/version`, as manifests and REST paths write it.
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Lower case, as REST paths and `paas get` write it: `services`.
    pub plural: &'static str,
    pub singular: &'static str,
    /// Other names `paas get` and friends accept (Knative's, and a few of paas' own).
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace (every kind today; REST paths assume it).
    pub namespaced: bool,
    /// Who writes it, and what a replace takes from the client.
    pub writes: Writes,
    /// The kind whose deletion takes this one's objects with it.
    pub owner: Option<Owner>,
    /// `GET .../{name}/logs`: the logs of the object's replicas.
    pub has_logs: bool,
    /// `GET .../{name}/autoscaler`: the autoscaler's view of the object's scale.
    pub has_autoscaler: bool,
    /// `GET .../{name}/deliveries`: the event deliveries (hops) of the object.
    pub has_deliveries: bool,
    /// What `paas get` shows of an object between its NAME and its AGE, READY and
    /// REASON (Kubernetes' printer columns).
    pub columns: &'static [Column],
}

/// A column of `paas get`'s table.
#[derive(Debug, PartialEq, Eq)]
pub struct Column {
    pub header: &'static str,
    pub value: Cell,
}

/// What a cell shows of an object, found by JSON pointers (RFC 6901: `/status/url`,
/// `/spec/bootstrapServers/0`, `~1` for a `/` in a label's key).
#[derive(Debug, PartialEq, Eq)]
pub enum Cell {
    /// The value there, as text.
    At(&'static str),
    /// How many items the list there holds.
    Count(&'static str),
    /// The items of the list there, joined with commas.
    Join(&'static str),
    /// The numbers there, joined with slashes (0 for one that is missing).
    Numbers(&'static [&'static str]),
    /// A route's `/status/traffic`: `100% -> hello-00002, 0% -> hello-00001 (tag stable)`.
    Traffic,
}

const fn column(header: &'static str, value: Cell) -> Column {
    Column { header, value }
}

/// Who writes a kind. A client's write never sets status, which only paas writes:
/// [`Object::prepare_write`] clears all of it, and the store keeps the stored status
/// (as the Kubernetes API server does for a kind with a status subresource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// paas derives it from its owner; clients only read it.
    Derived,
    /// Clients create, replace and delete it; a replace stores the client's object
    /// (but for what the store keeps: identity, generation and status).
    Object,
    /// Clients create, replace and delete it; a replace takes only spec, labels,
    /// annotations and resourceVersion, and the rest of the stored metadata stays.
    SpecAndLabels,
}

/// The owner of a derived kind's objects: they carry `label: NAME` of the `kind`
/// object NAME, and go when it is deleted (Kubernetes' garbage collector would follow
/// their ownerReferences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub kind: &'static str,
    pub label: &'static str,
}

impl KindInfo {
    /// Whether clients create, replace and delete objects of this kind.
    pub fn writable(&self) -> bool {
        self.writes != Writes::Derived
    }

    /// Whether `name` (any case) is this kind's plural, singular or a short name.
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name == self.plural || name == self.singular || self.short_names.contains(&name.as_str())
    }

    /// The kinds this kind's deletion takes with it, in the order they are deleted.
    pub fn owned(&self) -> impl Iterator<Item = &'static KindInfo> + '_ {
        KINDS
            .iter()
            .copied()
            .filter(move |k| k.owner.is_some_and(|o| o.kind == self.kind))
    }
}

/// Code that is generic over a kind's type, run for one row with [`KindInfo::visit`].
pub trait KindVisitor {
    type Output;
    fn visit<T: Object>(self) -> Self::Output;
}

/// The kind of `apiVersion` and `kind`, as a manifest or a body says them.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.api_version == api_version && k.kind == kind)
}

/// The kind a REST path names by its apiVersion and plural.
pub fn by_plural(api_version: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.api_version == api_version && k.plural == plural)
}

/// The kind a user typed on the command line: plural, singular or short name, any case.
pub fn by_name(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().copied().find(|k| k.is_named(name))
}

/// Every apiVersion paas serves, in the table's order.
pub fn api_versions() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in KINDS {
        if !out.contains(&k.api_version) {
            out.push(k.api_version);
        }
    }
    out
}

/// `a`, `a and b`, `a, b and c` (or `or`): how messages list what there is.
pub fn english_list<S: AsRef<str>>(items: &[S], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => format!(
            "{} {conjunction} {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// The validation of a kind that only paas writes: what it derives is not checked again.
fn derived<T>(_: &T) -> Report {
    Report::default()
}

/// Expands the table's rows into the `Object` impls, `KindId`, `Resource` and `KINDS`.
macro_rules! kinds {
    ($(
        $(#[$doc:meta])*
        $ty:ident {
            group: $group:literal,
            version: $version:literal,
            $($field:ident: $value:expr,)*
        } validate: $validate:path;
    )*) => {
        /// One row of the table of kinds.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum KindId {
            $($ty,)*
        }

        $(
            $(#[$doc])*
            impl Object for $ty {
                const INFO: &'static KindInfo = &KindInfo {
                    id: KindId::$ty,
                    group: $group,
                    version: $version,
                    api_version: concat!($group, "/", $version),
                    kind: stringify!($ty),
                    $($field: $value,)*
                };
                fn meta(&self) -> &ObjectMeta {
                    &self.metadata
                }
                fn meta_mut(&mut self) -> &mut ObjectMeta {
                    &mut self.metadata
                }
                fn validate(&self) -> Report {
                    $validate(self)
                }
                fn prepare_write(&mut self) {
                    self.api_version = Self::API_VERSION.into();
                    self.kind = Self::KIND.into();
                    self.status = Default::default();
                }
                fn take_spec_and_labels(&mut self, from: Self) {
                    self.spec = from.spec;
                    self.metadata.labels = from.metadata.labels;
                    self.metadata.annotations = from.metadata.annotations;
                    self.metadata.resource_version = from.metadata.resource_version;
                }
                fn into_resource(self) -> Resource {
                    Resource::$ty(self)
                }
            }
        )*

        /// Every kind, in the table's order.
        pub static KINDS: &[&KindInfo] = &[$(<$ty as Object>::INFO,)*];

        impl KindInfo {
            /// Run `visitor` with this row's type.
            pub fn visit<V: KindVisitor>(&self, visitor: V) -> V::Output {
                match self.id {
                    $(KindId::$ty => visitor.visit::<$ty>(),)*
                }
            }
        }

        /// Any resource paas stores.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Resource {
            $($ty($ty),)*
        }

        impl Resource {
            pub fn info(&self) -> &'static KindInfo {
                match self {
                    $(Resource::$ty(_) => <$ty as Object>::INFO,)*
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Resource::$ty(o) => o.meta(),)*
                }
            }

            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Resource::$ty(o) => o.meta_mut(),)*
                }
            }

            pub fn to_json(&self) -> serde_json::Value {
                let v = match self {
                    $(Resource::$ty(o) => serde_json::to_value(o),)*
                };
                // Invariant: these types serialize to JSON infallibly (string keys, no
                // non-finite floats).
                v.unwrap_or(serde_json::Value::Null)
            }
        }
    };
}

// The order matters twice: lists in messages follow it, and a Service's objects are
// deleted in it: its Route first (no traffic goes to what is being removed), then its
// Configuration (which could otherwise create a Revision again), then its Revisions.
kinds! {
    Service {
        group: "serving.knative.dev",
        version: "v1",
        plural: "services",
        singular: "service",
        short_names: &["ksvc", "ksvcs", "svc"],
        namespaced: true,
        writes: Writes::SpecAndLabels,
        owner: None,
        has_logs: true,
        has_autoscaler: false,
        has_deliveries: false,
        columns: &[
            column("URL", Cell::At("/status/url")),
            column("LATEST", Cell::At("/status/latestReadyRevisionName")),
        ],
    } validate: validate_service;

    Route {
        group: "serving.knative.dev",
        version: "v1",
        plural: "routes",
        singular: "route",
        short_names: &["rt"],
        namespaced: true,
        writes: Writes::Derived,
        owner: Some(Owner { kind: "Service", label: crate::keys::SERVICE_LABEL }),
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: false,
        columns: &[
            column("URL", Cell::At("/status/url")),
            column("TRAFFIC", Cell::Traffic),
        ],
    } validate: derived;

    Configuration {
        group: "serving.knative.dev",
        version: "v1",
        plural: "configurations",
        singular: "configuration",
        short_names: &["config", "cfg"],
        namespaced: true,
        writes: Writes::Derived,
        owner: Some(Owner { kind: "Service", label: crate::keys::SERVICE_LABEL }),
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: false,
        columns: &[
            column("LATEST CREATED", Cell::At("/status/latestCreatedRevisionName")),
            column("LATEST READY", Cell::At("/status/latestReadyRevisionName")),
        ],
    } validate: derived;

    Revision {
        group: "serving.knative.dev",
        version: "v1",
        plural: "revisions",
        singular: "revision",
        short_names: &["rev", "revs"],
        namespaced: true,
        writes: Writes::Derived,
        owner: Some(Owner { kind: "Service", label: crate::keys::SERVICE_LABEL }),
        has_logs: true,
        has_autoscaler: true,
        has_deliveries: false,
        columns: &[
            column("SERVICE", Cell::At("/metadata/labels/serving.knative.dev~1service")),
            column(
                "GENERATION",
                Cell::At("/metadata/labels/serving.knative.dev~1configurationGeneration"),
            ),
            column(
                "REPLICAS(D/A/R)",
                Cell::Numbers(&[
                    "/status/desiredReplicas",
                    "/status/actualReplicas",
                    "/status/readyReplicas",
                ]),
            ),
        ],
    } validate: derived;

    Broker {
        group: "eventing.knative.dev",
        version: "v1",
        plural: "brokers",
        singular: "broker",
        short_names: &[],
        namespaced: true,
        writes: Writes::Object,
        owner: None,
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: true,
        columns: &[column("URL", Cell::At("/status/address/url"))],
    } validate: validate_broker;

    Trigger {
        group: "eventing.knative.dev",
        version: "v1",
        plural: "triggers",
        singular: "trigger",
        short_names: &[],
        namespaced: true,
        writes: Writes::Object,
        owner: None,
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: true,
        columns: &[
            column("BROKER", Cell::At("/spec/broker")),
            column("SUBSCRIBER_URI", Cell::At("/status/subscriberUri")),
        ],
    } validate: validate_trigger;

    Sequence {
        group: "flows.knative.dev",
        version: "v1",
        plural: "sequences",
        singular: "sequence",
        short_names: &[],
        namespaced: true,
        writes: Writes::Object,
        owner: None,
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: true,
        columns: &[
            column("URL", Cell::At("/status/address/url")),
            column("STEPS", Cell::Count("/spec/steps")),
        ],
    } validate: validate_sequence;

    Parallel {
        group: "flows.knative.dev",
        version: "v1",
        plural: "parallels",
        singular: "parallel",
        short_names: &[],
        namespaced: true,
        writes: Writes::Object,
        owner: None,
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: true,
        columns: &[
            column("URL", Cell::At("/status/address/url")),
            column("BRANCHES", Cell::Count("/spec/branches")),
        ],
    } validate: validate_parallel;

    PingSource {
        group: "sources.knative.dev",
        version: "v1",
        plural: "pingsources",
        singular: "pingsource",
        short_names: &["ping"],
        namespaced: true,
        writes: Writes::Object,
        owner: None,
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: true,
        columns: &[
            column("SCHEDULE", Cell::At("/spec/schedule")),
            column("SINK", Cell::At("/status/sinkUri")),
            column("LAST TICK", Cell::At("/status/lastTickTime")),
        ],
    } validate: validate_ping_source;

    KafkaSource {
        group: "sources.knative.dev",
        version: "v1beta1",
        plural: "kafkasources",
        singular: "kafkasource",
        short_names: &[],
        namespaced: true,
        writes: Writes::Object,
        owner: None,
        has_logs: false,
        has_autoscaler: false,
        has_deliveries: true,
        columns: &[
            column("TOPICS", Cell::Join("/spec/topics")),
            column("BOOTSTRAP SERVERS", Cell::At("/spec/bootstrapServers/0")),
            column("SINK", Cell::At("/status/sinkUri")),
        ],
    } validate: validate_kafka_source;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventing::EVENTING_API_VERSION;
    use crate::flows::FLOWS_API_VERSION;
    use crate::kafka_source::KAFKA_SOURCE_API_VERSION;
    use crate::serving::SERVING_API_VERSION;
    use crate::sources::SOURCES_API_VERSION;

    #[test]
    fn every_name_a_user_may_type_names_one_kind() {
        let mut seen = std::collections::BTreeMap::new();
        for k in KINDS {
            for name in [k.plural, k.singular]
                .into_iter()
                .chain(k.short_names.iter().copied())
            {
                assert_eq!(name, name.to_ascii_lowercase(), "{name}");
                assert_eq!(seen.insert(name, k.kind), None, "{name} names two kinds");
                assert_eq!(by_name(name).map(|f| f.kind), Some(k.kind));
            }
            assert_eq!(k.singular, k.kind.to_ascii_lowercase());
        }
        assert_eq!(by_name("KSVC").map(|k| k.plural), Some("services"));
        assert_eq!(by_name("Ping").map(|k| k.plural), Some("pingsources"));
        assert_eq!(by_name("pods"), None);
    }

    #[test]
    fn rows_agree_with_the_group_constants_and_their_lookups() {
        assert_eq!(
            api_versions(),
            [
                SERVING_API_VERSION,
                EVENTING_API_VERSION,
                FLOWS_API_VERSION,
                SOURCES_API_VERSION,
                KAFKA_SOURCE_API_VERSION
            ]
        );
        for k in KINDS {
            assert_eq!(k.api_version, format!("{}/{}", k.group, k.version));
            assert_eq!(by_kind(k.api_version, k.kind), Some(*k));
            assert_eq!(by_plural(k.api_version, k.plural), Some(*k));
        }
        assert_eq!(by_plural(SERVING_API_VERSION, "brokers"), None);
        assert_eq!(by_kind("serving.knative.dev/v1alpha1", "Service"), None);
    }

    #[test]
    fn a_service_owns_its_route_configuration_and_revisions_in_deletion_order() {
        let owned: Vec<_> = Service::INFO.owned().map(|k| k.kind).collect();
        assert_eq!(owned, ["Route", "Configuration", "Revision"]);
        assert!(KINDS.iter().all(|k| k.writable() == k.owner.is_none()));
    }

    #[test]
    fn a_visit_reaches_the_rows_own_type() {
        struct Plural;
        impl KindVisitor for Plural {
            type Output = &'static str;
            fn visit<T: Object>(self) -> &'static str {
                T::PLURAL
            }
        }
        for k in KINDS {
            assert_eq!(k.visit(Plural), k.plural);
        }
    }

    #[test]
    fn derived_kinds_keep_their_json_shape() {
        // A client's kind: empty status left out, unknown fields refused.
        let svc = serde_json::to_value(Service::default()).unwrap();
        assert!(svc.get("status").is_none(), "{svc}");
        assert!(serde_json::from_value::<Service>(serde_json::json!({"extra": 1})).is_err());
        // What paas derives: status always written, unknown fields skipped.
        for v in [
            serde_json::to_value(Configuration::default()).unwrap(),
            serde_json::to_value(Revision::default()).unwrap(),
            serde_json::to_value(Route::default()).unwrap(),
        ] {
            assert_eq!(v["status"], serde_json::json!({}), "{v}");
        }
        assert!(serde_json::from_value::<Route>(serde_json::json!({"extra": 1})).is_ok());
        assert!(serde_json::from_value::<Revision>(serde_json::json!({"extra": 1})).is_ok());
        assert!(serde_json::from_value::<Configuration>(serde_json::json!({"extra": 1})).is_ok());
    }

    #[test]
    fn lists_read_as_english() {
        assert_eq!(english_list::<&str>(&[], "and"), "");
        assert_eq!(english_list(&["a"], "and"), "a");
        assert_eq!(english_list(&["a", "b"], "and"), "a and b");
        assert_eq!(english_list(&["a", "b", "c"], "or"), "a, b or c");
    }
}
