//! The control loop: a de-duplicating work queue fed by the store's watch, by the fleet
//! (replica readiness changed) and by a periodic resync, drained by one worker so that
//! reconcilers never race each other.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use paas_api::eventing::{Broker, Trigger};
use paas_api::flows::{Parallel, Sequence};
use paas_api::kafka_source::KafkaSource;
use paas_api::sources::PingSource;
use paas_api::{Configuration, Object, Revision, Route, Service};
use paas_gateway::RevisionKey;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::changed::Changed;
use crate::reconcile::{self, configuration_of, Action, Context};
use crate::store::{key_of, ObjectKey, StoreExt, WatchEvent};

/// Eventing objects (brokers, triggers, flows, sources) are looked at again this often,
/// whatever the events said: their reconcilers also keep dispatchers and topics, which
/// tell the controller nothing when they fail.
const RESYNC: Duration = Duration::from_secs(30);
/// Serving objects (services, configurations, revisions, routes) read the store, whose
/// watch tells every change, and the fleet, which tells every change of replicas: a look
/// at all of them is only a safety net, taken every this many resyncs (10 minutes, where
/// Knative's informers take 10 hours), so that an idle platform does no work per service.
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
            if k.kind == Revision::KIND {
                forget_deleted_revisions(ctx).await;
            }
            if k.kind == Route::KIND {
                reconcile::route::unpublish(ctx, &k.namespace, &k.name);
            }
            if k.kind == Trigger::KIND {
                // Its consumer group goes too, in the background.
                ctx.dispatchers
                    .forget(&format!("{}/{}", k.namespace, k.name));
            }
            let flow_prefix = if k.kind == Sequence::KIND {
                Some(reconcile::sequence::dispatcher_prefix(
                    &k.namespace,
                    &k.name,
                ))
            } else if k.kind == Parallel::KIND {
                Some(reconcile::parallel::dispatcher_prefix(
                    &k.namespace,
                    &k.name,
                ))
            } else {
                None
            };
            if let Some(prefix) = flow_prefix {
                // A flow's dispatchers stop, and its channels go with their events.
                let mut topics: Vec<String> = ctx
                    .dispatchers
                    .stop_where(|d| d.starts_with(&prefix))
                    .into_iter()
                    .map(|spec| spec.topic)
                    .collect();
                topics.sort();
                topics.dedup();
                for topic in topics {
                    if let Err(e) = ctx.event_log.delete_topic(&topic).await {
                        tracing::warn!(%topic, error = %e, "deleting a flow's channel failed");
                    }
                }
            }
            if k.kind == KafkaSource::KIND {
                // The topics are the user's: only the reading stops.
                let prefix = reconcile::kafkasource::dispatcher_prefix(&k.namespace, &k.name);
                ctx.dispatchers.stop_where(|d| d.starts_with(&prefix));
                if let Ok(left) = ctx.store.list::<KafkaSource>(None).await {
                    let in_use: Vec<String> = left.iter().map(|s| s.spec.bootstrap()).collect();
                    ctx.source_clusters.retain(&in_use);
                }
            }
            if k.kind == PingSource::KIND {
                let key = reconcile::pingsource::key(&k.namespace, &k.name);
                ctx.tickers.stop(&key);
                ctx.dispatchers.stop(&key);
                let topic = reconcile::pingsource::topic(&k.namespace, &k.name);
                if let Err(e) = ctx.event_log.delete_topic(&topic).await {
                    tracing::warn!(%topic, error = %e, "deleting a ping source's topic failed");
                }
            }
            if k.kind == Broker::KIND {
                let topic = reconcile::broker::topic(&k.namespace, &k.name);
                if let Err(e) = ctx.event_log.delete_topic(&topic).await {
                    tracing::warn!(%topic, error = %e, "deleting a broker's topic failed");
                }
            }
            k
        }
        Err(RecvError::Lagged(_)) => return enqueue_all(ctx, queue).await,
        Err(RecvError::Closed) => return,
    };
    queue.push(key.clone());
    let ns = key.namespace.as_str();
    // Who reads the changed object.
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
    // Triggers and sequences read their broker and their destinations (services,
    // brokers, sequences).
    if [Broker::KIND, Service::KIND, Sequence::KIND, Parallel::KIND].contains(&key.kind) {
        if let Ok(triggers) = ctx.store.list::<Trigger>(Some(ns)).await {
            for t in triggers {
                queue.push(key_of::<Trigger>(ns, t.name()));
            }
        }
        if let Ok(sequences) = ctx.store.list::<Sequence>(Some(ns)).await {
            for q in sequences
                .iter()
                .filter(|q| q.name() != key.name || key.kind != Sequence::KIND)
            {
                queue.push(key_of::<Sequence>(ns, q.name()));
            }
        }
        if let Ok(sources) = ctx.store.list::<PingSource>(Some(ns)).await {
            for q in sources {
                queue.push(key_of::<PingSource>(ns, q.name()));
            }
        }
        if let Ok(sources) = ctx.store.list::<KafkaSource>(Some(ns)).await {
            for q in sources {
                queue.push(key_of::<KafkaSource>(ns, q.name()));
            }
        }
        if let Ok(parallels) = ctx.store.list::<Parallel>(Some(ns)).await {
            for q in parallels
                .iter()
                .filter(|q| q.name() != key.name || key.kind != Parallel::KIND)
            {
                queue.push(key_of::<Parallel>(ns, q.name()));
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

async fn forget_deleted_revisions(ctx: &Context) {
    if let Ok(revs) = ctx.store.list::<Revision>(None).await {
        let uids: Vec<String> = revs.iter().filter_map(|r| r.metadata.uid.clone()).collect();
        ctx.fleet.retain(&uids);
        ctx.fleet.discard_prepared_except(uids);
        let stored: HashSet<RevisionKey> = revs
            .iter()
            .map(|r| RevisionKey {
                namespace: r.namespace().to_owned(),
                name: r.name().to_owned(),
            })
            .collect();
        for key in ctx.autoscaler.keys() {
            if !stored.contains(&key) {
                ctx.autoscaler.remove(&key);
                ctx.table.forget_revision(&key);
            }
        }
    }
}

async fn enqueue_all(ctx: &Context, queue: &mut WorkQueue) {
    enqueue_serving(ctx, queue).await;
    enqueue_eventing(ctx, queue).await;
}

async fn enqueue_serving(ctx: &Context, queue: &mut WorkQueue) {
    // Revisions first: on a restart they tell the fleet what to keep before anything else.
    if let Ok(all) = ctx.store.list::<Revision>(None).await {
        for o in all {
            queue.push(key_of::<Revision>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<Service>(None).await {
        for o in all {
            queue.push(key_of::<Service>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<Configuration>(None).await {
        for o in all {
            queue.push(key_of::<Configuration>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<Route>(None).await {
        for o in all {
            queue.push(key_of::<Route>(o.namespace(), o.name()));
        }
    }
    forget_deleted_revisions(ctx).await;
}

async fn enqueue_eventing(ctx: &Context, queue: &mut WorkQueue) {
    if let Ok(all) = ctx.store.list::<Broker>(None).await {
        for o in all {
            queue.push(key_of::<Broker>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<Trigger>(None).await {
        for o in all {
            queue.push(key_of::<Trigger>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<Sequence>(None).await {
        for o in all {
            queue.push(key_of::<Sequence>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<Parallel>(None).await {
        for o in all {
            queue.push(key_of::<Parallel>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<PingSource>(None).await {
        for o in all {
            queue.push(key_of::<PingSource>(o.namespace(), o.name()));
        }
    }
    if let Ok(all) = ctx.store.list::<KafkaSource>(None).await {
        for o in all {
            queue.push(key_of::<KafkaSource>(o.namespace(), o.name()));
        }
    }
}

async fn reconcile_key(
    ctx: &Context,
    key: &ObjectKey,
    _queue: &mut WorkQueue,
) -> reconcile::Result<Action> {
    let ns = key.namespace.as_str();
    let name = key.name.as_str();
    match key.kind {
        k if k == Service::KIND => match ctx.store.get::<Service>(ns, name).await? {
            Some(o) => reconcile::service::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Configuration::KIND => match ctx.store.get::<Configuration>(ns, name).await? {
            Some(o) => reconcile::configuration::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Revision::KIND => match ctx.store.get::<Revision>(ns, name).await? {
            Some(o) => reconcile::revision::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Route::KIND => match ctx.store.get::<Route>(ns, name).await? {
            Some(o) => reconcile::route::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Broker::KIND => match ctx.store.get::<Broker>(ns, name).await? {
            Some(o) => reconcile::broker::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Trigger::KIND => match ctx.store.get::<Trigger>(ns, name).await? {
            Some(o) => reconcile::trigger::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Sequence::KIND => match ctx.store.get::<Sequence>(ns, name).await? {
            Some(o) => reconcile::sequence::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == Parallel::KIND => match ctx.store.get::<Parallel>(ns, name).await? {
            Some(o) => reconcile::parallel::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == PingSource::KIND => match ctx.store.get::<PingSource>(ns, name).await? {
            Some(o) => reconcile::pingsource::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        k if k == KafkaSource::KIND => match ctx.store.get::<KafkaSource>(ns, name).await? {
            Some(o) => reconcile::kafkasource::reconcile(&o, ctx).await,
            None => Ok(Action::Done),
        },
        _ => Ok(Action::Done),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use paas_api::keys;
    use paas_api::serving::ConfigurationSpec;
    use paas_autoscaler::{Autoscaler, AutoscalerConfig};
    use paas_eventing::dispatcher::Dispatchers;
    use paas_eventing::log::{EmbeddedLog, Retention};
    use paas_eventing::transport::HttpTransport;
    use paas_eventing::EventLog;
    use paas_gateway::RoutingTable;
    use paas_runtime::process::ProcessRuntime;

    use super::*;
    use crate::clusters::SourceClusters;
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
