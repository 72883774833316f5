//! The reconcilers below the end-to-end level: each runs against an in-memory store
//! ([`SqliteStore::in_memory`]), an in-memory runtime ([`FakeRuntime`]) and event log
//! ([`MemoryLog`]), and a clock the test sets ([`Fixture::at`]). A test applies
//! manifests, runs one reconciler for one object ([`Fixture::reconcile`]) or every
//! reconciler until nothing more is written ([`Fixture::settle`]), and asserts what
//! was stored, registered and published. One file per reconciler.

mod broker;
mod configuration;
mod gc;
mod kafkasource;
mod memory_log;
mod parallel;
mod pingsource;
mod revision;
mod route;
mod sequence;
mod service;
mod trigger;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use paas_api::condition::{ConditionStatus, Conditions};
use paas_api::eventing::{Broker, Trigger};
use paas_api::flows::{Parallel, Sequence};
use paas_api::kafka_source::KafkaSource;
use paas_api::manifest::parse_manifests;
use paas_api::sources::PingSource;
use paas_api::{Configuration, Object, Revision, Route, Service};
use paas_autoscaler::{Autoscaler, AutoscalerConfig};
use paas_eventing::dispatcher::{DispatchSpec, Dispatchers};
use paas_eventing::sources::kafka_clusters::SourceClusters;
use paas_eventing::transport::HttpTransport;
use paas_gateway::RoutingTable;

use self::memory_log::MemoryLog;
use super::{Action, Context, Result};
use crate::changed::Changed;
use crate::fake_runtime::FakeRuntime;
use crate::fleet::Fleet;
use crate::kinds::{self, BoxFuture, Reconciled, Visitor};
use crate::store::{ObjectKey, SqliteStore, Store, StoreExt};

/// The instant every test starts at: 2027-01-15T08:00:00Z, a Friday.
const START: i64 = 1_800_000_000;

thread_local! {
    /// The time the reconcilers see. A `#[tokio::test]` runs all its tasks on the
    /// test's own thread (a current-thread runtime), so each test has its own clock.
    static NOW: Cell<DateTime<Utc>> = Cell::new(instant(0));
}

fn instant(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(START + secs, 0).unwrap()
}

fn clock() -> DateTime<Utc> {
    NOW.with(Cell::get)
}

/// A control plane with nothing running: no controller loop, fleet loop or
/// autoscaler loop (a test that wants one spawns it).
pub(crate) struct Fixture {
    pub(crate) ctx: Context,
    pub(crate) runtime: Arc<FakeRuntime>,
    pub(crate) log: Arc<MemoryLog>,
}

impl Fixture {
    /// Keeping 20 revisions without traffic, as `paas up` does by default.
    pub(crate) fn new() -> Self {
        Self::keeping(20)
    }

    pub(crate) fn keeping(keep_revisions: usize) -> Self {
        Self::build(keep_revisions, Arc::new(SqliteStore::in_memory().unwrap()))
    }

    /// Over a store of the test's own (one wrapping an in-memory store, say, to
    /// write in between two of a reconciler's calls).
    pub(crate) fn with_store(store: Arc<dyn Store>) -> Self {
        Self::build(20, store)
    }

    fn build(keep_revisions: usize, store: Arc<dyn Store>) -> Self {
        NOW.with(|n| n.set(instant(0)));
        let runtime = Arc::new(FakeRuntime::default());
        let table = RoutingTable::new();
        let fleet = Fleet::new(runtime.clone(), table.clone(), Arc::new(Changed::default()));
        let autoscaler = Autoscaler::new(AutoscalerConfig::default(), fleet.clone());
        let log = Arc::new(MemoryLog::default());
        let ctx = Context {
            store,
            fleet,
            autoscaler,
            event_log: log.clone(),
            dispatchers: Dispatchers::new(log.clone(), Arc::new(HttpTransport::new())),
            table,
            http_port: 8080,
            keep_revisions,
            tickers: Arc::default(),
            source_clusters: Arc::new(SourceClusters::new(None)),
            clock,
        };
        Self { ctx, runtime, log }
    }

    /// Set the clock `secs` seconds after the start.
    pub(crate) fn at(&self, secs: i64) {
        NOW.with(|n| n.set(instant(secs)));
    }

    /// Store every document of `yaml` (checked as `paas apply` checks it), as a client
    /// writes it: created, or its spec, labels and annotations replaced. Objects
    /// without a namespace go in `default`.
    pub(crate) async fn apply(&self, yaml: &str) {
        let manifests = parse_manifests("test.yaml", yaml).unwrap();
        for m in manifests {
            let mut resource = m.resource;
            let meta = resource.meta_mut();
            if meta.namespace.is_none() {
                meta.namespace = Some("default".into());
            }
            let key = ObjectKey {
                kind: resource.info().kind,
                namespace: resource.meta().namespace().to_owned(),
                name: resource.meta().name.clone(),
            };
            let body = resource.to_json();
            if self.ctx.store.get_raw(&key).await.unwrap().is_some() {
                self.ctx.store.update_raw(&key, body, false).await.unwrap();
            } else {
                self.ctx.store.create_raw(&key, body).await.unwrap();
            }
        }
    }

    /// Object `name` of `default`, which must exist.
    pub(crate) async fn get<T: Object>(&self, name: &str) -> T {
        self.find(name)
            .await
            .unwrap_or_else(|| panic!("no {} default/{name} stored", T::KIND))
    }

    pub(crate) async fn find<T: Object>(&self, name: &str) -> Option<T> {
        self.ctx.store.get::<T>("default", name).await.unwrap()
    }

    /// The names of the stored objects of a kind, sorted.
    pub(crate) async fn names<T: Object>(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ctx
            .store
            .list::<T>(None)
            .await
            .unwrap()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Run `T`'s reconciler once on `name`, as stored now.
    pub(crate) async fn reconcile<T: Reconciled>(&self, name: &str) -> Action {
        let object: T = self.get(name).await;
        object.reconcile(&self.ctx).await.unwrap()
    }

    /// Reconcile every stored object of every kind until a whole pass writes nothing;
    /// returns how many passes that took.
    pub(crate) async fn settle(&self) -> usize {
        const PASSES: usize = 20;
        for pass in 1..=PASSES {
            let mut watch = self.ctx.store.watch();
            for kind in kinds::in_pass_order() {
                kinds::visit(kind, ReconcileAll(self)).await;
            }
            if watch.try_recv().is_err() {
                return pass;
            }
        }
        panic!("the reconcilers still write after {PASSES} passes");
    }

    async fn reconcile_all<T: Reconciled>(&self) {
        for o in self.ctx.store.list::<T>(None).await.unwrap() {
            // Read again: an earlier reconcile may have changed or deleted it.
            if let Some(o) = self
                .ctx
                .store
                .get::<T>(o.namespace(), o.name())
                .await
                .unwrap()
            {
                o.reconcile(&self.ctx).await.unwrap();
            }
        }
    }

    /// Write a revision's Ready condition, as its reconciler does once the fleet
    /// reports a ready replica. A ready revision stays ready through its next
    /// reconciles; any other status is recomputed from the fleet by the next one.
    pub(crate) async fn revision_is(
        &self,
        name: &str,
        status: ConditionStatus,
        reason: Option<&str>,
        message: Option<&str>,
    ) {
        let mut rev: Revision = self.get(name).await;
        rev.status
            .conditions
            .set("Ready", status, reason, message, clock());
        self.ctx.store.update_status(&rev).await.unwrap();
    }

    pub(crate) async fn revision_ready(&self, name: &str) {
        self.revision_is(name, ConditionStatus::True, None, None)
            .await;
    }

    /// What the dispatcher `key` does, while there is one.
    pub(crate) fn dispatcher(&self, key: &str) -> Option<DispatchSpec> {
        self.ctx
            .dispatchers
            .views(|k| k == key)
            .into_iter()
            .next()
            .map(|(_, spec, _)| spec)
    }

    /// The keys of the running dispatchers that start with `prefix`, sorted.
    pub(crate) fn dispatchers(&self, prefix: &str) -> Vec<String> {
        self.ctx
            .dispatchers
            .views(|k| k.starts_with(prefix))
            .into_iter()
            .map(|(k, _, _)| k)
            .collect()
    }
}

/// [`Fixture::reconcile_all`] for a kind known by its row.
struct ReconcileAll<'a>(&'a Fixture);

impl<'a> Visitor for ReconcileAll<'a> {
    type Output = BoxFuture<'a, ()>;
    fn visit<T: Reconciled>(self) -> Self::Output {
        Box::pin(self.0.reconcile_all::<T>())
    }
}

/// A condition as (status, reason, message); Unknown and empty when it is not set.
pub(crate) fn condition(conditions: &Conditions, type_: &str) -> (ConditionStatus, String, String) {
    conditions.get(type_).map_or(
        (ConditionStatus::Unknown, String::new(), String::new()),
        |c| {
            (
                c.status,
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        },
    )
}

/// Wait until `done` holds, looking every 100 ms (of a paused tokio clock, or of real
/// time), for at most ten minutes.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within ten minutes: {what}");
}

/// A service running `server` with `VERSION={env}`: another `env` is another
/// template, so another revision. Its manifest ends inside `spec:`, so a test may add
/// a `traffic:` block (indented by two).
pub(crate) fn service_yaml(name: &str, env: &str) -> String {
    format!(
        "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
        - command: [server]
          env:
            - name: VERSION
              value: \"{env}\"
"
    )
}

#[test]
fn revision_names_parse() {
    use super::{configuration_of, revision_number};
    assert_eq!(revision_number("hello-00002"), Some(2));
    assert_eq!(configuration_of("my-app-00010"), Some("my-app"));
    assert_eq!(revision_number("hello"), None);
    assert_eq!(configuration_of("hello-2"), None);
}
