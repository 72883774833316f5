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

/// Everything is looked at again this often, whatever the events said.
const RESYNC: Duration = Duration::from_secs(30);

type WorkQueue = crate::work_queue::WorkQueue<ObjectKey>;

/// Run the controller until the task is dropped.
pub async fn run(ctx: Arc<Context>, fleet_changes: Arc<Changed<RevisionKey>>) {
    let mut watch = ctx.store.watch();
    let mut queue = WorkQueue::default();
    enqueue_all(&ctx, &mut queue).await;
    let mut adopted = false;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
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
            _ = resync.tick() => enqueue_all(&ctx, &mut queue).await,
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
    forget_deleted_revisions(ctx).await;
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
