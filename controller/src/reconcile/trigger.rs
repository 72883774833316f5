//! Trigger → its broker, and its subscriber and dead-letter sink resolved to URLs.

use std::sync::Arc;

use paas_api::condition::ConditionStatus;
use paas_api::eventing::{Broker, Trigger, DELIVERY_ORDER};
use paas_api::Object;
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Records, ReplyTo};
use paas_eventing::filter::Filter;

use super::destination::resolve;
use super::{Action, Context, Result};
use crate::store::StoreExt;

pub async fn reconcile(trigger: &Trigger, ctx: &Context) -> Result<Action> {
    let ns = trigger.namespace();
    let now = ctx.now();
    let mut status = trigger.status.clone();
    status.observed_generation = trigger.metadata.generation;

    let broker = ctx.store.get::<Broker>(ns, &trigger.spec.broker).await?;
    let broker_ready = match &broker {
        Some(b) if b.status.conditions.is_true("Ready") => {
            status.conditions.set_true("BrokerReady", now);
            true
        }
        Some(_) => {
            let m = format!("broker {} is not ready yet", trigger.spec.broker);
            status.conditions.set(
                "BrokerReady",
                ConditionStatus::Unknown,
                Some("BrokerNotReady"),
                Some(&m),
                now,
            );
            false
        }
        None => {
            let m = format!(
                "broker {} does not exist: create it (kind: Broker) or fix spec.broker",
                trigger.spec.broker
            );
            status.conditions.set(
                "BrokerReady",
                ConditionStatus::False,
                Some("BrokerDoesNotExist"),
                Some(&m),
                now,
            );
            false
        }
    };

    let subscriber = resolve(&trigger.spec.subscriber, ns, ctx).await?;
    let subscriber_ok = match subscriber {
        Ok(uri) => {
            status.subscriber_uri = Some(uri);
            status.conditions.set_true("SubscriberResolved", now);
            true
        }
        Err(why) => {
            status.subscriber_uri = None;
            status.conditions.set(
                "SubscriberResolved",
                ConditionStatus::False,
                Some("Unresolved"),
                Some(&why),
                now,
            );
            false
        }
    };

    // The trigger's own delivery, else its broker's.
    let delivery_spec = trigger
        .spec
        .delivery
        .clone()
        .or_else(|| broker.as_ref().and_then(|b| b.spec.delivery.clone()));
    let dls_ok = match delivery_spec
        .as_ref()
        .and_then(|d| d.dead_letter_sink.clone())
    {
        None => {
            status.dead_letter_sink_uri = None;
            status.conditions.set_true("DeadLetterSinkResolved", now);
            true
        }
        Some(dls) => match resolve(&dls, ns, ctx).await? {
            Ok(uri) => {
                status.dead_letter_sink_uri = Some(uri);
                status.conditions.set_true("DeadLetterSinkResolved", now);
                true
            }
            Err(why) => {
                status.dead_letter_sink_uri = None;
                status.conditions.set(
                    "DeadLetterSinkResolved",
                    ConditionStatus::False,
                    Some("Unresolved"),
                    Some(&why),
                    now,
                );
                false
            }
        },
    };

    // The dispatcher subscribes before the trigger says Ready, so that an event posted
    // once it is ready is delivered.
    let key = format!("{ns}/{}", trigger.name());
    if broker_ready && subscriber_ok && dls_ok {
        let spec = DispatchSpec {
            topic: super::broker::topic(ns, &trigger.spec.broker),
            group: format!("knative-trigger-{ns}-{}", trigger.name()),
            filter: Arc::new(Filter::of_trigger(&trigger.spec).unwrap_or(Filter::Everything)),
            subscriber: status.subscriber_uri.clone().unwrap_or_default(),
            dead_letter: status.dead_letter_sink_uri.clone(),
            policy: DeliveryPolicy::from_spec(delivery_spec.as_ref()),
            ordered: trigger
                .metadata
                .annotations
                .get(DELIVERY_ORDER)
                .map(String::as_str)
                == Some("ordered"),
            reply: ReplyTo::SameTopic,
            records: Records::CloudEvents,
        };
        match ctx.dispatchers.ensure(&key, spec).await {
            Ok(()) => status.conditions.set_true("DispatcherReady", now),
            Err(e) => {
                let m = e.to_string();
                status.conditions.set(
                    "DispatcherReady",
                    ConditionStatus::False,
                    Some("DispatcherFailed"),
                    Some(&m),
                    now,
                );
            }
        }
    } else {
        ctx.dispatchers.stop(&key);
        status.conditions.set(
            "DispatcherReady",
            ConditionStatus::Unknown,
            Some("NotReady"),
            None,
            now,
        );
    }

    let not_ready = [
        "BrokerReady",
        "SubscriberResolved",
        "DeadLetterSinkResolved",
        "DispatcherReady",
    ]
    .into_iter()
    .find_map(|c| {
        status
            .conditions
            .get(c)
            .filter(|c| c.status != ConditionStatus::True)
            .cloned()
    });
    match not_ready {
        None if broker_ready && subscriber_ok && dls_ok => status.conditions.set_true("Ready", now),
        Some(c) => status.conditions.set(
            "Ready",
            c.status,
            c.reason.as_deref(),
            c.message.as_deref(),
            now,
        ),
        None => status.conditions.set(
            "Ready",
            ConditionStatus::Unknown,
            Some("Pending"),
            None,
            now,
        ),
    }

    if status != trigger.status {
        let mut next = trigger.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(Action::Done)
}
