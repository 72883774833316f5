//! KafkaSource → dispatchers reading its topics from its own cluster, in its consumer
//! group, each record made a CloudEvent and delivered to the sink with the same
//! retries, dead letters and commits as a trigger's. The topics are the user's: paas
//! reads them and never makes or deletes them.

use std::sync::Arc;

use paas_api::eventing::DELIVERY_ORDER;
use paas_api::kafka_source::{InitialOffset, KafkaSource, Ordering};
use paas_api::Object;
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Records, ReplyTo};
use paas_eventing::filter::Filter;
use paas_eventing::sources::kafka_clusters::Cluster;
use paas_eventing::EventLog;

use super::{destination, set_ready, Action, Context, Result};
use crate::store::StoreExt;

/// What the keys of a source's dispatchers start with: one per topic and consumer,
/// `kafkasource:{ns}/{name}/{topic}/{i}`.
pub fn dispatcher_prefix(namespace: &str, name: &str) -> String {
    format!("kafkasource:{namespace}/{name}/")
}

/// The `source` of the events made from a topic's plain records, as Knative writes it.
pub fn event_source(namespace: &str, name: &str, topic: &str) -> String {
    format!("/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}")
}

pub async fn reconcile(source: &KafkaSource, ctx: &Context) -> Result<Action> {
    let ns = source.namespace();
    let name = source.name();
    let spec = &source.spec;
    let mut status = source.status.clone();
    status.observed_generation = source.metadata.generation;
    let mut problem: Option<(&str, String)> = None;

    match destination::resolve(&spec.sink, ns, ctx).await? {
        Ok(uri) => status.sink_uri = Some(uri),
        Err(why) => {
            status.sink_uri = None;
            problem = Some(("SinkUnresolved", why));
        }
    }
    let dead_letter = match spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
    {
        None => None,
        Some(dls) => match destination::resolve(dls, ns, ctx).await? {
            Ok(uri) => Some(uri),
            Err(why) => {
                problem.get_or_insert(("DeadLetterSinkUnresolved", why));
                None
            }
        },
    };
    let bootstrap = spec.bootstrap();
    let cluster = match ctx.source_clusters.get(&bootstrap) {
        Cluster::Connected(log) => Some(log),
        Cluster::Connecting => {
            problem.get_or_insert((
                "Connecting",
                format!("connecting to the Kafka cluster at {bootstrap}"),
            ));
            None
        }
        Cluster::Failed(why) => {
            problem.get_or_insert(("ClusterUnreachable", why));
            None
        }
    };
    if let Some(cluster) = &cluster {
        let missing = match cluster.missing_topics(&spec.topics).await {
            Ok(missing) => missing,
            Err(e) => {
                problem.get_or_insert(("ClusterUnreachable", e.to_string()));
                Vec::new()
            }
        };
        if !missing.is_empty() {
            problem.get_or_insert((
                "TopicsNotFound",
                format!(
                    "no topic {} on the cluster at {bootstrap}: create it (a KafkaSource reads topics, it does not make them)",
                    missing.join(", ")
                ),
            ));
        }
    }

    let prefix = dispatcher_prefix(ns, name);
    let mut keep = Vec::new();
    if let (None, Some(cluster)) = (&problem, cluster) {
        let log: Arc<dyn EventLog> = cluster;
        let consumers = spec.consumers.unwrap_or(1).max(1);
        let initial = match spec.initial_offset.unwrap_or_default() {
            InitialOffset::Earliest => paas_eventing::InitialOffset::Earliest,
            InitialOffset::Latest => paas_eventing::InitialOffset::Latest,
        };
        let ordered = spec.ordering == Some(Ordering::Ordered)
            || source
                .metadata
                .annotations
                .get(DELIVERY_ORDER)
                .map(String::as_str)
                == Some("ordered");
        // Validation refused any other key type.
        let key_type = source.key_type().unwrap_or_default();
        let group = spec.consumer_group_or_default(ns, name);
        for topic in &spec.topics {
            for i in 0..consumers {
                let key = format!("{prefix}{topic}/{i}");
                let dispatch = DispatchSpec {
                    topic: topic.clone(),
                    group: group.clone(),
                    filter: Arc::new(Filter::Everything),
                    subscriber: status.sink_uri.clone().unwrap_or_default(),
                    dead_letter: dead_letter.clone(),
                    policy: DeliveryPolicy::from_spec(spec.delivery.as_ref()),
                    ordered,
                    // A sink's reply has nowhere to go: sources have no reply.
                    reply: ReplyTo::Drop,
                    records: Records::Foreign {
                        source: event_source(ns, name, topic),
                        key_type,
                    },
                };
                if let Err(e) = ctx
                    .dispatchers
                    .ensure_on(&key, dispatch, log.clone(), initial)
                    .await
                {
                    problem.get_or_insert(("DispatcherFailed", e.to_string()));
                }
                keep.push(key);
            }
        }
        status.consumers = Some(consumers);
    }
    if problem.is_some() {
        // Nothing is read while the source cannot deliver: the records wait in Kafka,
        // and the group resumes from its last commit.
        keep.clear();
        status.consumers = None;
    }
    ctx.dispatchers
        .stop_where(|k| k.starts_with(&prefix) && !keep.iter().any(|kept| kept == k));
    let retry = set_ready(&mut status.conditions, problem, ctx.now());
    if status != source.status {
        let mut next = source.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(retry.map_or(Action::Done, Action::RequeueAfter))
}
