//! `GET .../namespaces/{ns}/{kind}/{name}/deliveries`: the hops of a trigger, broker,
//! flow or source, each with where it reads, where it delivers, its counters and the
//! last event it finished, for `paas describe`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paas_api::Object;
use paas_eventing::dispatcher::{DispatchSpec, ReplyTo, TriggerMetrics};
use serde_json::{json, Value};

use super::objects::{Api, At};
use super::ApiError;
use crate::reconcile::{kafkasource, parallel, pingsource, sequence};
use crate::store::StoreExt;

/// Which dispatchers belong to an object, and what each is called to a person.
fn hop_of(plural: &str, ns: &str, name: &str, key: &str, spec: &DispatchSpec) -> Option<Hop> {
    let tail = |prefix: String| key.strip_prefix(&prefix).map(str::to_owned);
    let hop = match plural {
        "triggers" => (key == format!("{ns}/{name}")).then(|| Hop::new("trigger", 0, 0))?,
        "brokers" => {
            // The broker's triggers: the dispatchers reading its topic.
            let trigger = key.strip_prefix(&format!("{ns}/"))?;
            (spec.topic == crate::reconcile::broker::topic(ns, name))
                .then(|| Hop::new(&format!("trigger {trigger}"), 0, 0))?
        }
        "sequences" => {
            let step: u32 = tail(sequence::dispatcher_prefix(ns, name))?.parse().ok()?;
            Hop::new(&format!("step {step}"), step, 0)
        }
        "parallels" => {
            let t = tail(parallel::dispatcher_prefix(ns, name))?;
            match t.strip_prefix("filter-") {
                Some(i) => {
                    let i: u32 = i.parse().ok()?;
                    Hop::new(&format!("branch {i} filter"), i, 0)
                }
                None => {
                    let i: u32 = t.parse().ok()?;
                    Hop::new(&format!("branch {i}"), i, 1)
                }
            }
        }
        "pingsources" => (key == pingsource::key(ns, name)).then(|| Hop::new("ticks", 0, 0))?,
        "kafkasources" => {
            let t = tail(kafkasource::dispatcher_prefix(ns, name))?;
            let (topic, i) = t.rsplit_once('/')?;
            let i: u32 = i.parse().ok()?;
            Hop::new(&format!("topic {topic}, consumer {i}"), 0, i)
        }
        _ => return None,
    };
    Some(hop)
}

struct Hop {
    label: String,
    order: (u32, u32),
}

impl Hop {
    fn new(label: &str, major: u32, minor: u32) -> Self {
        Self {
            label: label.to_owned(),
            order: (major, minor),
        }
    }
}

fn view(hop: &Hop, key: &str, spec: &DispatchSpec, metrics: &TriggerMetrics) -> Value {
    let reply = match &spec.reply {
        ReplyTo::SameTopic => format!("topic {}", spec.topic),
        ReplyTo::Topic(t) => format!("topic {t}"),
        ReplyTo::Url(u) => u.clone(),
        ReplyTo::Drop => "dropped".to_owned(),
    };
    let counts: serde_json::Map<String, Value> = metrics
        .counts()
        .into_iter()
        .map(|(name, n)| (name.to_owned(), json!(n)))
        .collect();
    json!({
        "hop": hop.label,
        "dispatcher": key,
        "topic": spec.topic,
        "group": spec.group,
        "subscriber": spec.subscriber,
        "deadLetterSink": spec.dead_letter,
        "reply": reply,
        "ordered": spec.ordered,
        "counts": counts,
        "last": metrics.last().map(|l| json!({
            "outcome": l.outcome,
            "detail": l.detail,
            "eventId": l.event_id,
            "time": l.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })),
    })
}

/// The hops of the `T` named `ns/name`; 404 when there is no such object (rather than
/// an empty list, which would read as an object with nothing delivered yet).
pub(super) async fn deliveries<T: Object>(
    State(state): Api,
    At((ns, name)): At<(String, String)>,
) -> Result<Response, ApiError> {
    let (ns, name) = (ns.as_str(), name.as_str());
    if state.ctx.store.get::<T>(ns, name).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "{} {ns}/{name} not found",
            T::PLURAL
        )));
    }
    let plural = T::PLURAL;
    let mut hops: Vec<(Hop, Value)> = state
        .ctx
        .dispatchers
        .views(|_| true)
        .into_iter()
        .filter_map(|(key, spec, metrics)| {
            let hop = hop_of(plural, ns, name, &key, &spec)?;
            let v = view(&hop, &key, &spec, &metrics);
            Some((hop, v))
        })
        .collect();
    hops.sort_by_key(|(h, _)| h.order);
    let items: Vec<Value> = hops.into_iter().map(|(_, v)| v).collect();
    Ok(Json(json!({"apiVersion": "v1", "kind": "List", "items": items})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_are_named_by_their_place_in_the_object() {
        let spec = DispatchSpec {
            topic: "knative-broker-default-default".into(),
            group: "g".into(),
            filter: std::sync::Arc::new(paas_eventing::filter::Filter::Everything),
            subscriber: "http://x".into(),
            dead_letter: None,
            policy: Default::default(),
            ordered: false,
            reply: ReplyTo::Drop,
            records: Default::default(),
        };
        let label = |plural, key| hop_of(plural, "default", "p", key, &spec).map(|h| h.label);
        assert_eq!(
            label("parallels", "parallel:default/p/filter-1").as_deref(),
            Some("branch 1 filter")
        );
        assert_eq!(
            label("parallels", "parallel:default/p/1").as_deref(),
            Some("branch 1")
        );
        assert_eq!(label("parallels", "parallel:default/pp/1"), None);
        assert_eq!(
            label("sequences", "sequence:default/p/2").as_deref(),
            Some("step 2")
        );
        assert_eq!(
            label("kafkasources", "kafkasource:default/p/orders/1").as_deref(),
            Some("topic orders, consumer 1")
        );
        assert_eq!(
            hop_of("brokers", "default", "default", "default/t1", &spec).map(|h| h.label),
            Some("trigger t1".to_owned())
        );
        assert_eq!(label("triggers", "default/p").as_deref(), Some("trigger"));
    }
}
