//! Broker → a topic in the event log, and the ingress address producers post to.

use paas_api::condition::ConditionStatus;
use paas_api::eventing::Broker;
use paas_api::serving::Addressable;
use paas_api::Object;

use super::{set_ready, Action, Context, Result};
use crate::store::StoreExt;

pub use paas_eventing::broker_topic as topic;

/// Where producers POST events for a broker, on the gateway's port.
pub fn ingress_url(namespace: &str, name: &str, http_port: u16) -> String {
    format!("http://broker-ingress.localhost:{http_port}/{namespace}/{name}")
}

pub async fn reconcile(broker: &Broker, ctx: &Context) -> Result<Action> {
    let ns = broker.namespace();
    let name = broker.name();
    let now = ctx.now();
    let mut status = broker.status.clone();
    status.observed_generation = broker.metadata.generation;
    let problem = match ctx.event_log.ensure_topic(&topic(ns, name)).await {
        Ok(()) => {
            status.conditions.set_true("TopicReady", now);
            status.address = Some(Addressable {
                url: ingress_url(ns, name, ctx.http_port),
            });
            status.conditions.set_true("Addressable", now);
            None
        }
        Err(e) => {
            let message = e.to_string();
            status.conditions.set(
                "TopicReady",
                ConditionStatus::False,
                Some("TopicFailed"),
                Some(&message),
                now,
            );
            Some(("TopicFailed", message))
        }
    };
    // A topic that could not be made (the cluster is down) is tried again shortly.
    let retry = set_ready(&mut status.conditions, problem, now);
    if status != broker.status {
        let mut next = broker.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(retry.map_or(Action::Done, Action::RequeueAfter))
}
