//! The controller's columns of the table of kinds (api/src/kinds.rs): each kind's
//! reconciler, how often a resync looks at its objects, what it reads of others, and
//! what stops when one of its objects is deleted. The control loop (controller.rs)
//! and the reconcilers' tests reach a kind's typed code from its row with [`visit`];
//! adding a kind is its row in api, its reconciler, and its [`Reconciled`] impl here
//! (which [`visit`]'s match, naming every row, will not compile without).

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use paas_api::eventing::{Broker, Trigger};
use paas_api::flows::{Parallel, Sequence};
use paas_api::kafka_source::KafkaSource;
use paas_api::kinds::{KindId, KindInfo, KINDS};
use paas_api::sources::PingSource;
use paas_api::{Configuration, Object, Revision, RevisionKey, Route, Service};

use crate::reconcile::{self, Action, Context, Result};
use crate::store::StoreExt;

/// How often the periodic resync looks at every object of a kind, whatever the
/// events said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resync {
    /// Every resync (30 s): the reconciler also keeps dispatchers and topics, which
    /// tell the controller nothing when they fail.
    Often,
    /// Every 20th resync (10 minutes): the reconciler reads only the store, whose
    /// watch tells every change, and the fleet, which tells every change of replicas,
    /// so an idle platform does no work per object.
    Rarely,
}

/// What the control loop needs to know of a kind besides its reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Role {
    pub(crate) resync: Resync,
    /// Objects of this kind may be the destination of another (a subscriber, a
    /// reply, a sink, a step, a branch): a change of one is read by every object
    /// that [`Role::reads_destinations`] in its namespace.
    pub(crate) destination: bool,
    /// Objects of this kind resolve destinations (and a trigger its broker).
    pub(crate) reads_destinations: bool,
}

const SERVING: Role = Role {
    resync: Resync::Rarely,
    destination: false,
    reads_destinations: false,
};

const EVENTING: Role = Role {
    resync: Resync::Often,
    destination: false,
    reads_destinations: true,
};

/// A kind and its reconciler.
#[async_trait]
pub(crate) trait Reconciled: Object {
    const ROLE: Role;

    async fn reconcile(&self, ctx: &Context) -> Result<Action>;

    /// What stops once object `namespace/name` of this kind has left the store
    /// (what its reconciler started outside the store); nothing by default.
    async fn on_deleted(_ctx: &Context, _namespace: &str, _name: &str) {}
}

/// A future the control loop awaits for a kind it knows only by its row.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Code that is generic over a kind and its reconciler, run for one row with [`visit`].
pub(crate) trait Visitor {
    type Output;
    fn visit<T: Reconciled>(self) -> Self::Output;
}

/// Run `visitor` with the type of row `kind`.
pub(crate) fn visit<V: Visitor>(kind: &KindInfo, visitor: V) -> V::Output {
    match kind.id {
        KindId::Service => visitor.visit::<Service>(),
        KindId::Route => visitor.visit::<Route>(),
        KindId::Configuration => visitor.visit::<Configuration>(),
        KindId::Revision => visitor.visit::<Revision>(),
        KindId::Broker => visitor.visit::<Broker>(),
        KindId::Trigger => visitor.visit::<Trigger>(),
        KindId::Sequence => visitor.visit::<Sequence>(),
        KindId::Parallel => visitor.visit::<Parallel>(),
        KindId::PingSource => visitor.visit::<PingSource>(),
        KindId::KafkaSource => visitor.visit::<KafkaSource>(),
    }
}

/// The row of the kind an [`crate::store::ObjectKey`] names.
pub(crate) fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().copied().find(|k| k.kind == kind)
}

/// What the control loop needs to know of `kind`.
pub(crate) fn role(kind: &KindInfo) -> Role {
    struct RoleOf;
    impl Visitor for RoleOf {
        type Output = Role;
        fn visit<T: Reconciled>(self) -> Role {
            T::ROLE
        }
    }
    visit(kind, RoleOf)
}

/// Every kind in the order a pass over all objects takes them: revisions first (on a
/// restart they tell the fleet what to keep before anything else), then the table's
/// order.
pub(crate) fn in_pass_order() -> impl Iterator<Item = &'static KindInfo> {
    let revisions = Revision::INFO;
    std::iter::once(revisions).chain(KINDS.iter().copied().filter(move |k| *k != revisions))
}

#[async_trait]
impl Reconciled for Service {
    const ROLE: Role = Role {
        destination: true,
        ..SERVING
    };

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::service::reconcile(self, ctx).await
    }
}

#[async_trait]
impl Reconciled for Route {
    const ROLE: Role = SERVING;

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::route::reconcile(self, ctx).await
    }

    /// Its hosts leave the gateway's table.
    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        reconcile::route::unpublish(ctx, namespace, name);
    }
}

#[async_trait]
impl Reconciled for Configuration {
    const ROLE: Role = SERVING;

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::configuration::reconcile(self, ctx).await
    }
}

#[async_trait]
impl Reconciled for Revision {
    const ROLE: Role = SERVING;

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::revision::reconcile(self, ctx).await
    }

    async fn on_deleted(ctx: &Context, _namespace: &str, _name: &str) {
        forget_deleted_revisions(ctx).await;
    }
}

#[async_trait]
impl Reconciled for Broker {
    const ROLE: Role = Role {
        destination: true,
        reads_destinations: false,
        ..EVENTING
    };

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::broker::reconcile(self, ctx).await
    }

    /// Its topic goes, with the events in it.
    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        let topic = reconcile::broker::topic(namespace, name);
        if let Err(e) = ctx.event_log.delete_topic(&topic).await {
            tracing::warn!(%topic, error = %e, "deleting a broker's topic failed");
        }
    }
}

#[async_trait]
impl Reconciled for Trigger {
    const ROLE: Role = EVENTING;

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::trigger::reconcile(self, ctx).await
    }

    /// Its dispatcher stops; its consumer group goes too, in the background.
    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        ctx.dispatchers.forget(&format!("{namespace}/{name}"));
    }
}

#[async_trait]
impl Reconciled for Sequence {
    const ROLE: Role = Role {
        destination: true,
        ..EVENTING
    };

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::sequence::reconcile(self, ctx).await
    }

    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        stop_flow(
            ctx,
            &reconcile::sequence::dispatcher_prefix(namespace, name),
        )
        .await;
    }
}

#[async_trait]
impl Reconciled for Parallel {
    const ROLE: Role = Role {
        destination: true,
        ..EVENTING
    };

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::parallel::reconcile(self, ctx).await
    }

    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        stop_flow(
            ctx,
            &reconcile::parallel::dispatcher_prefix(namespace, name),
        )
        .await;
    }
}

#[async_trait]
impl Reconciled for PingSource {
    const ROLE: Role = EVENTING;

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::pingsource::reconcile(self, ctx).await
    }

    /// Its clock and dispatcher stop, and its topic goes with its events.
    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        let key = reconcile::pingsource::key(namespace, name);
        ctx.tickers.stop(&key);
        ctx.dispatchers.stop(&key);
        let topic = reconcile::pingsource::topic(namespace, name);
        if let Err(e) = ctx.event_log.delete_topic(&topic).await {
            tracing::warn!(%topic, error = %e, "deleting a ping source's topic failed");
        }
    }
}

#[async_trait]
impl Reconciled for KafkaSource {
    const ROLE: Role = EVENTING;

    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        reconcile::kafkasource::reconcile(self, ctx).await
    }

    /// The topics are the user's: only the reading stops, and the connection to a
    /// cluster no source reads any more.
    async fn on_deleted(ctx: &Context, namespace: &str, name: &str) {
        let prefix = reconcile::kafkasource::dispatcher_prefix(namespace, name);
        ctx.dispatchers.stop_where(|d| d.starts_with(&prefix));
        if let Ok(left) = ctx.store.list::<KafkaSource>(None).await {
            let in_use: Vec<String> = left.iter().map(|s| s.spec.bootstrap()).collect();
            ctx.source_clusters.retain(&in_use);
        }
    }
}

/// A deleted flow's dispatchers stop, and its channels go with their events.
async fn stop_flow(ctx: &Context, prefix: &str) {
    let mut topics: Vec<String> = ctx
        .dispatchers
        .stop_where(|d| d.starts_with(prefix))
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

/// The fleet, the autoscaler and the gateway forget every revision no longer stored
/// (found by the stored ones, so one pass also catches deletions a lagging watch
/// did not tell).
pub(crate) async fn forget_deleted_revisions(ctx: &Context) {
    if let Ok(revs) = ctx.store.list::<Revision>(None).await {
        let uids: Vec<String> = revs.iter().filter_map(|r| r.metadata.uid.clone()).collect();
        ctx.fleet.retain(&uids);
        ctx.fleet.discard_prepared_except(uids);
        let stored: std::collections::HashSet<RevisionKey> = revs
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_takes_every_kind_once_revisions_first() {
        let order: Vec<&str> = in_pass_order().map(|k| k.kind).collect();
        assert_eq!(order[0], "Revision");
        assert_eq!(order.len(), KINDS.len());
        for k in KINDS {
            assert_eq!(by_kind(k.kind), Some(*k));
            assert!(order.contains(&k.kind), "{}", k.kind);
        }
    }

    #[test]
    fn serving_kinds_resync_rarely_and_eventing_kinds_often() {
        for k in KINDS {
            let serving = k.group == "serving.knative.dev";
            let expected = if serving {
                Resync::Rarely
            } else {
                Resync::Often
            };
            assert_eq!(role(k).resync, expected, "{}", k.kind);
        }
        let destinations: Vec<&str> = KINDS
            .iter()
            .filter(|k| role(k).destination)
            .map(|k| k.kind)
            .collect();
        assert_eq!(destinations, ["Service", "Broker", "Sequence", "Parallel"]);
        let readers: Vec<&str> = KINDS
            .iter()
            .filter(|k| role(k).reads_destinations)
            .map(|k| k.kind)
            .collect();
        assert_eq!(
            readers,
            [
                "Trigger",
                "Sequence",
                "Parallel",
                "PingSource",
                "KafkaSource"
            ]
        );
    }
}
