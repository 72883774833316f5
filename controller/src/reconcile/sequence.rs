//! Sequence → a channel (a topic of its own) per step, and a dispatcher per step that
//! delivers the channel's events to the step, with the step's delivery spec, and puts
//! the step's reply into the next channel; the last step's reply goes to `reply`, or
//! nowhere. A step that answers without an event ends that event's path. Every hop is
//! durable and committed only once done, as a trigger's is.

use std::sync::Arc;

use paas_api::eventing::DELIVERY_ORDER;
use paas_api::flows::Sequence;
use paas_api::serving::Addressable;
use paas_api::Object;
use paas_eventing::channel_topic;
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Records, ReplyTo};
use paas_eventing::filter::Filter;

use super::{destination, set_ready, Action, Context, Result};
use crate::store::StoreExt;

/// The channel in front of step `step`, named as Knative names a sequence's channels.
pub fn channel(sequence: &str, step: usize) -> String {
    format!("{sequence}-kn-sequence-{step}")
}

/// Where a channel takes events, on the gateway's port.
pub fn channel_url(namespace: &str, channel: &str, http_port: u16) -> String {
    format!("http://channel-ingress.localhost:{http_port}/{namespace}/{channel}")
}

/// The dispatcher of a step, among all the platform's dispatchers.
pub fn dispatcher_key(namespace: &str, sequence: &str, step: usize) -> String {
    format!("sequence:{namespace}/{sequence}/{step}")
}

/// The prefix every dispatcher key of a sequence starts with.
pub fn dispatcher_prefix(namespace: &str, sequence: &str) -> String {
    format!("sequence:{namespace}/{sequence}/")
}

pub async fn reconcile(seq: &Sequence, ctx: &Context) -> Result<Action> {
    let ns = seq.namespace();
    let name = seq.name();
    let now = ctx.now();
    // As a trigger: one event in flight per partition, so each partition key's order
    // holds through every hop.
    let ordered = seq
        .metadata
        .annotations
        .get(DELIVERY_ORDER)
        .is_some_and(|o| o == "ordered");
    let mut status = seq.status.clone();
    status.observed_generation = seq.metadata.generation;
    let steps = &seq.spec.steps;

    let mut problem: Option<(&str, String)> = None;
    for i in 0..steps.len() {
        if let Err(e) = ctx
            .event_log
            .ensure_topic(&channel_topic(ns, &channel(name, i)))
            .await
        {
            problem.get_or_insert(("ChannelFailed", e.to_string()));
        }
    }
    let mut uris = Vec::with_capacity(steps.len());
    let mut dead_letters = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        match destination::resolve(&step.destination(), ns, ctx).await? {
            Ok(uri) => uris.push(uri),
            Err(why) => {
                problem.get_or_insert(("StepUnresolved", format!("step {i}: {why}")));
            }
        }
        let dls = step
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.as_ref());
        match dls {
            None => dead_letters.push(None),
            Some(d) => match destination::resolve(d, ns, ctx).await? {
                Ok(uri) => dead_letters.push(Some(uri)),
                Err(why) => {
                    problem.get_or_insert((
                        "DeadLetterSinkUnresolved",
                        format!("step {i}'s dead-letter sink: {why}"),
                    ));
                }
            },
        }
    }
    let reply = match &seq.spec.reply {
        None => None,
        Some(d) => match destination::resolve(d, ns, ctx).await? {
            Ok(uri) => Some(uri),
            Err(why) => {
                problem.get_or_insert(("ReplyUnresolved", format!("reply: {why}")));
                None
            }
        },
    };

    if problem.is_none() {
        for (i, step) in steps.iter().enumerate() {
            let next = if i + 1 < steps.len() {
                ReplyTo::Topic(channel_topic(ns, &channel(name, i + 1)))
            } else {
                reply.clone().map_or(ReplyTo::Drop, ReplyTo::Url)
            };
            let spec = DispatchSpec {
                topic: channel_topic(ns, &channel(name, i)),
                group: format!("knative-sequence-{ns}-{name}-{i}"),
                filter: Arc::new(Filter::Everything),
                subscriber: uris[i].clone(),
                dead_letter: dead_letters[i].clone(),
                policy: DeliveryPolicy::from_spec(step.delivery.as_ref()),
                ordered,
                reply: next,
                records: Records::CloudEvents,
            };
            if let Err(e) = ctx
                .dispatchers
                .ensure(&dispatcher_key(ns, name, i), spec)
                .await
            {
                problem.get_or_insert(("DispatcherFailed", e.to_string()));
            }
        }
        // A sequence that got shorter keeps no dispatcher for the steps it lost.
        let keep: Vec<String> = (0..steps.len())
            .map(|i| dispatcher_key(ns, name, i))
            .collect();
        ctx.dispatchers.stop_where(|k| {
            k.starts_with(&dispatcher_prefix(ns, name)) && !keep.contains(&k.to_owned())
        });
    }

    status.step_uris = uris;
    status.reply_uri = reply;
    status.address = Some(Addressable {
        url: channel_url(ns, &channel(name, 0), ctx.http_port),
    });
    let retry = set_ready(&mut status.conditions, problem, now);
    if status != seq.status {
        let mut next = seq.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(retry.map_or(Action::Done, Action::RequeueAfter))
}
