//! The control loop: a de-duplicating work queue fed by the store's watch, by the fleet
//! (replica readiness changed) and by a periodic resync, drained by one worker so that
//! reconcilers never race each other.

use std::sync::Arc;
use std::time::Duration;

use paas_api::{Configuration, Object, Revision, RevisionKey, Route, Service};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::changed::Changed;
use crate::kinds::{self, BoxFuture, Reconciled, Resync, Visitor};
use crate::reconcile::{self, configuration_of, Action, Context};
use crate::store::{key_of, ObjectKey, StoreExt, WatchEvent};

/// Eventing objects (brokers, triggers, flows, sources: [`Resync::Often`]) are looked at
/// again this often, whatever the events said: their reconcilers also keep dispatchers
/// and topics, which tell the controller nothing when they fail.
const RESYNC: Duration = Duration::from_secs(30);
/// Serving objects (services, configurations, revisions, routes: [`Resync::Rarely`])
/// read the store, whose watch tells every change, and the fleet, which tells every
/// change of replicas: a look at all of them is only a safety net, taken every this many
/// resyncs (10 minutes, where Knative's informers take 10 hours), so that an idle
/// platform does no work per service.
const SERVING_RESYNC_EVERY: u32 = 20;

type WorkQueue = crate::work_queue::WorkQueue<ObjectKey>;

/// Run the controller until the task is dropped.
pub async fn run(ctx: Arc<Context>, fleet_changes: Arc<Changed<RevisionKey>>) {
    let mut watch = ctx.store.watch();
    let mut queue = WorkQueue::default();
    enqueue_all(&ctx, &mut queue).await;
    let mut adopted = false;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    let mut resyncs: u32 = 0;
    loop {
        while let Some(key) = queue.pop(Instant::now()) {
            let started = std::time::Instant::now();
            match reconcile_key(&ctx, &key, &mut queue).await {
                Ok(action) => {
                    queue.succeeded(&key);
                    if let Action::RequeueAfter(after) = action {
                        queue.push_at(key.clone(), Instant::now() + after);
                    }
                }
                Err(e) => {
                    let after = queue.retry_failed(key.clone(), Instant::now());
                    tracing::warn!(object = %key, error = %e, retry_in = ?after, "reconcile failed");
                }
            }
            tracing::trace!(object = %key, took_us = started.elapsed().as_micros() as u64, "reconciled");
            // Drain events that arrived meanwhile before the next key, so dependents
            // are queued in order.
            drain_watch(&ctx, &mut watch, &mut queue).await;
            for k in fleet_changes.take() {
                queue.push(key_of::<Revision>(&k.namespace, &k.name));
            }
        }
        if !adopted {
            // Every stored revision has told the fleet what it wants.
            ctx.fleet.adoption_done();
            adopted = true;
        }
        let next_due = queue.next_due();
        tokio::select! {
            event = watch.recv() => handle_event(&ctx, event, &mut queue).await,
            changed = fleet_changes.wait() => {
                for k in changed {
                    queue.push(key_of::<Revision>(&k.namespace, &k.name));
                }
            }
            () = sleep_until(next_due) => {}
            _ = resync.tick() => {
                resyncs = resyncs.wrapping_add(1);
                if resyncs % SERVING_RESYNC_EVERY == 0 {
                    enqueue_serving(&ctx, &mut queue).await;
                }
                enqueue_eventing(&ctx, &mut queue).await;
            }
        }
    }
}

/// Sleep until `at`, or for ever when nothing is due.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn drain_watch(
    ctx: &Context,
    watch: &mut tokio::sync::broadcast::Receiver<WatchEvent>,
    queue: &mut WorkQueue,
) {
    loop {
        match watch.try_recv() {
            Ok(ev) => handle_event(ctx, Ok(ev), queue).await,
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                enqueue_all(ctx, queue).await
            }
            Err(_) => break,
        }
    }
}

async fn handle_event(ctx: &Context, event: Result<WatchEvent, RecvError>, queue: &mut WorkQueue) {
    let key = match event {
        Ok(WatchEvent::Upserted(k)) => k,
        Ok(WatchEvent::Deleted(k)) => {
            queue.forget(&k);
            if let Some(kind) = kinds::by_kind(k.kind) {
                kinds::visit(kind, Deleted { ctx, key: &k }).await;
            }
            k
        }
        Err(RecvError::Lagged(_)) => return enqueue_all(ctx, queue).await,
        Err(RecvError::Closed) => return,
    };
    queue.push(key.clone());
    enqueue_readers(ctx, &key, queue).await;
}

/// Queue who reads the changed object `key`. A serving object's readers are found by
/// name (a revision's configuration and route share the configuration's name, a
/// service's configuration and route its own), so they are named here; eventing
/// objects read their destinations, found through the table's [`kinds::Role`].
async fn enqueue_readers(ctx: &Context, key: &ObjectKey, queue: &mut WorkQueue) {
    let ns = key.namespace.as_str();
    match key.kind {
        k if k == Revision::KIND => {
            if let Some(cfg) = configuration_of(&key.name) {
                queue.push(key_of::<Configuration>(ns, cfg));
                queue.push(key_of::<Route>(ns, cfg));
            }
        }
        k if k == Configuration::KIND => {
            queue.push(key_of::<Service>(ns, &key.name));
            queue.push(key_of::<Route>(ns, &key.name));
            enqueue_revisions_of(ctx, ns, &key.name, queue).await;
        }
        k if k == Route::KIND => {
            queue.push(key_of::<Service>(ns, &key.name));
            enqueue_revisions_of(ctx, ns, &key.name, queue).await;
        }
        _ => {}
    }
    // Triggers, flows and sources read their broker and their destinations (services,
    // brokers, sequences, parallels) in the same namespace.
    if kinds::by_kind(key.kind).is_some_and(|k| kinds::role(k).destination) {
        for kind in kinds::in_pass_order().filter(|k| kinds::role(k).reads_destinations) {
            for k in kinds::visit(
                kind,
                Keys {
                    ctx,
                    namespace: Some(ns),
                },
            )
            .await
            {
                queue.push(k);
            }
        }
    }
}

/// Queue the revisions of one configuration (found by their label, not by reading
/// every revision of the namespace).
async fn enqueue_revisions_of(ctx: &Context, ns: &str, configuration: &str, queue: &mut WorkQueue) {
    if let Ok(revs) = reconcile::revisions_of(ctx, ns, configuration).await {
        for r in &revs {
            queue.push(key_of::<Revision>(ns, r.name()));
        }
    }
}

async fn enqueue_all(ctx: &Context, queue: &mut WorkQueue) {
    enqueue_serving(ctx, queue).await;
    enqueue_eventing(ctx, queue).await;
}

async fn enqueue_serving(ctx: &Context, queue: &mut WorkQueue) {
    enqueue_resynced(ctx, Resync::Rarely, queue).await;
    // What a lagging watch did not tell of deleted revisions.
    kinds::forget_deleted_revisions(ctx).await;
}

async fn enqueue_eventing(ctx: &Context, queue: &mut WorkQueue) {
    enqueue_resynced(ctx, Resync::Often, queue).await;
}

/// Queue every object of the kinds a resync of this speed looks at.
async fn enqueue_resynced(ctx: &Context, resync: Resync, queue: &mut WorkQueue) {
    for kind in kinds::in_pass_order().filter(|k| kinds::role(k).resync == resync) {
        for k in kinds::visit(
            kind,
            Keys {
                ctx,
                namespace: None,
            },
        )
        .await
        {
            queue.push(k);
        }
    }
}

async fn reconcile_key(
    ctx: &Context,
    key: &ObjectKey,
    _queue: &mut WorkQueue,
) -> reconcile::Result<Action> {
    match kinds::by_kind(key.kind) {
        Some(kind) => kinds::visit(kind, ReconcileOne { ctx, key }).await,
        None => Ok(Action::Done),
    }
}

/// The keys of a kind's objects in `namespace` (every namespace for `None`); none
/// when the store cannot list them (the next resync looks again).
struct Keys<'a> {
    ctx: &'a Context,
    namespace: Option<&'a str>,
}

impl<'a> Visitor for Keys<'a> {
    type Output = BoxFuture<'a, Vec<ObjectKey>>;
    fn visit<T: Reconciled>(self) -> Self::Output {
        Box::pin(async move {
            match self.ctx.store.list::<T>(self.namespace).await {
                Ok(all) => all
                    .iter()
                    .map(|o| key_of::<T>(o.namespace(), o.name()))
                    .collect(),
                Err(_) => Vec::new(),
            }
        })
    }
}

/// Reconcile the object `key` names, as stored now; nothing when it is gone.
struct ReconcileOne<'a> {
    ctx: &'a Context,
    key: &'a ObjectKey,
}

impl<'a> Visitor for ReconcileOne<'a> {
    type Output = BoxFuture<'a, reconcile::Result<Action>>;
    fn visit<T: Reconciled>(self) -> Self::Output {
        Box::pin(async move {
            let ObjectKey {
                namespace, name, ..
            } = self.key;
            match self.ctx.store.get::<T>(namespace, name).await? {
                Some(o) => o.reconcile(self.ctx).await,
                None => Ok(Action::Done),
            }
        })
    }
}

/// Run the deleted object's kind's [`Reconciled::on_deleted`].
struct Deleted<'a> {
    ctx: &'a Context,
    key: &'a ObjectKey,
}

impl<'a> Visitor for Deleted<'a> {
    type Output = BoxFuture<'a, ()>;
    fn visit<T: Reconciled>(self) -> Self::Output {
        T::on_deleted(self.ctx, &self.key.namespace, &self.key.name)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use paas_api::eventing::{Broker, Trigger};
    use paas_api::flows::Sequence;
    use paas_api::keys;
    use paas_api::serving::ConfigurationSpec;
    use paas_api::sources::PingSource;
    use paas_autoscaler::{Autoscaler, AutoscalerConfig};
    use paas_eventing::dispatcher::Dispatchers;
    use paas_eventing::log::{EmbeddedLog, Retention};
    use paas_eventing::sources::kafka_clusters::SourceClusters;
    use paas_eventing::transport::HttpTransport;
    use paas_eventing::EventLog;
    use paas_gateway::RoutingTable;
    use paas_runtime::process::ProcessRuntime;

    use super::*;
    use crate::fleet::Fleet;
    use crate::store::{SqliteStore, Store};

    /// A context on a store in a fresh directory; the directory is removed on drop.
    struct Fixture {
        ctx: Context,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture() -> Fixture {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "paas-controller-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let table = RoutingTable::new();
        let runtime = ProcessRuntime::new(&dir).unwrap();
        let fleet = Fleet::new(runtime, table.clone(), Arc::new(Changed::default()));
        let autoscaler = Autoscaler::new(AutoscalerConfig::default(), fleet.clone());
        let event_log: Arc<dyn EventLog> =
            EmbeddedLog::open(&dir.join("eventlog"), Retention::default()).unwrap();
        let ctx = Context {
            dispatchers: Dispatchers::new(event_log.clone(), Arc::new(HttpTransport::new())),
            event_log,
            store,
            fleet,
            autoscaler,
            table,
            http_port: 8080,
            keep_revisions: 20,
            tickers: Arc::default(),
            source_clusters: Arc::new(SourceClusters::new(None)),
            clock: chrono::Utc::now,
        };
        Fixture { ctx, dir }
    }

    fn revision_of(configuration: &str, n: u32) -> Revision {
        let mut rev = Revision {
            metadata: paas_api::ObjectMeta::named("default", &format!("{configuration}-{n:05}")),
            ..Revision::default()
        };
        rev.metadata
            .labels
            .insert(keys::CONFIGURATION_LABEL.into(), configuration.into());
        rev
    }

    fn drain(queue: &mut WorkQueue) -> Vec<String> {
        let mut keys: Vec<String> = std::iter::from_fn(|| queue.pop(Instant::now()))
            .map(|k| k.to_string())
            .collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn a_configuration_change_queues_its_own_revisions_and_no_other() {
        let f = fixture();
        let store = &f.ctx.store;
        for name in ["hello", "other", "hello-world"] {
            let cfg = Configuration {
                metadata: paas_api::ObjectMeta::named("default", name),
                spec: ConfigurationSpec::default(),
                ..Configuration::default()
            };
            store.create(&cfg).await.unwrap();
            for n in 1..=3 {
                store.create(&revision_of(name, n)).await.unwrap();
            }
        }
        let mut queue = WorkQueue::default();
        let changed = key_of::<Configuration>("default", "hello");
        handle_event(&f.ctx, Ok(WatchEvent::Upserted(changed)), &mut queue).await;
        assert_eq!(
            drain(&mut queue),
            [
                "Configuration default/hello",
                "Revision default/hello-00001",
                "Revision default/hello-00002",
                "Revision default/hello-00003",
                "Route default/hello",
                "Service default/hello",
            ]
        );

        let changed = key_of::<Route>("default", "other");
        handle_event(&f.ctx, Ok(WatchEvent::Upserted(changed)), &mut queue).await;
        assert_eq!(
            drain(&mut queue),
            [
                "Revision default/other-00001",
                "Revision default/other-00002",
                "Revision default/other-00003",
                "Route default/other",
                "Service default/other",
            ]
        );
    }

    #[tokio::test]
    async fn the_frequent_resync_looks_at_eventing_objects_and_not_at_services() {
        let f = fixture();
        let store = &f.ctx.store;
        for i in 0..3 {
            let svc = Service::new(
                "default",
                &format!("svc-{i}"),
                paas_api::serving::ServiceSpec::default(),
            );
            store.create(&svc).await.unwrap();
        }
        let broker = Broker {
            metadata: paas_api::ObjectMeta::named("default", "default"),
            ..Broker::default()
        };
        store.create(&broker).await.unwrap();
        let mut queue = WorkQueue::default();
        enqueue_eventing(&f.ctx, &mut queue).await;
        assert_eq!(drain(&mut queue), ["Broker default/default"]);
        enqueue_all(&f.ctx, &mut queue).await;
        assert_eq!(
            drain(&mut queue),
            [
                "Broker default/default",
                "Service default/svc-0",
                "Service default/svc-1",
                "Service default/svc-2",
            ]
        );
    }

    #[tokio::test]
    async fn a_changed_destination_queues_the_eventing_objects_of_its_namespace() {
        let f = fixture();
        let store = &f.ctx.store;
        for ns in ["default", "other"] {
            let trigger = Trigger {
                metadata: paas_api::ObjectMeta::named(ns, "t"),
                ..Trigger::default()
            };
            store.create(&trigger).await.unwrap();
            let source = PingSource {
                metadata: paas_api::ObjectMeta::named(ns, "p"),
                ..PingSource::default()
            };
            store.create(&source).await.unwrap();
        }
        let sequence = Sequence {
            metadata: paas_api::ObjectMeta::named("default", "s"),
            ..Sequence::default()
        };
        store.create(&sequence).await.unwrap();
        let mut queue = WorkQueue::default();
        let changed = key_of::<Service>("default", "hello");
        handle_event(&f.ctx, Ok(WatchEvent::Upserted(changed)), &mut queue).await;
        assert_eq!(
            drain(&mut queue),
            [
                "PingSource default/p",
                "Sequence default/s",
                "Service default/hello",
                "Trigger default/t",
            ]
        );
        // A trigger is no destination: nothing reads it.
        let changed = key_of::<Trigger>("default", "t");
        handle_event(&f.ctx, Ok(WatchEvent::Upserted(changed)), &mut queue).await;
        assert_eq!(drain(&mut queue), ["Trigger default/t"]);
    }

    #[tokio::test]
    async fn a_deleted_route_leaves_the_gateway_and_the_others_stay() {
        let f = fixture();
        for name in ["a", "b"] {
            let route = Route {
                metadata: paas_api::ObjectMeta::named("default", name),
                ..Route::default()
            };
            reconcile::route::publish_route(&f.ctx, &route).await;
        }
        let b = f.ctx.table.route("b.default.localhost").unwrap();
        let gone = key_of::<Route>("default", "a");
        let mut queue = WorkQueue::default();
        handle_event(&f.ctx, Ok(WatchEvent::Deleted(gone)), &mut queue).await;
        assert!(f.ctx.table.route("a.default.localhost").is_none());
        let still = f.ctx.table.route("b.default.localhost").unwrap();
        assert!(Arc::ptr_eq(&b, &still));
    }
}
