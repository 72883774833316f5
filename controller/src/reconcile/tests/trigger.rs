//! Trigger → its broker, its subscriber and dead-letter sink resolved to URLs, and a
//! dispatcher reading the broker's topic as the trigger's group.

use paas_eventing::broker_topic;
use paas_eventing::dispatcher::{Records, ReplyTo};
use paas_eventing::filter::Filter;

use super::*;

const BROKER: &str = "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
";

const TRIGGER: &str = "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: on-order
spec:
  broker: default
  filter:
    attributes:
      type: order.created
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: hello
";

const KEY: &str = "default/on-order";

fn trigger_status(t: &Trigger, c: &str) -> (ConditionStatus, String, String) {
    condition(&t.status.conditions, c)
}

#[tokio::test]
async fn a_trigger_whose_broker_does_not_exist_is_not_ready_saying_what_to_do() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.apply(TRIGGER).await;
    assert_eq!(f.reconcile::<Trigger>("on-order").await, Action::Done);
    let t: Trigger = f.get("on-order").await;
    let message = "broker default does not exist: create it (kind: Broker) or fix spec.broker";
    for c in ["BrokerReady", "Ready"] {
        let (status, reason, m) = trigger_status(&t, c);
        assert_eq!(
            (status, reason.as_str(), m.as_str()),
            (ConditionStatus::False, "BrokerDoesNotExist", message),
            "{c}"
        );
    }
    assert_eq!(trigger_status(&t, "DispatcherReady").1, "NotReady");
    assert_eq!(f.dispatcher(KEY), None);
    assert_eq!(t.status.observed_generation, Some(1));
}

#[tokio::test]
async fn a_trigger_waits_for_its_broker_to_be_ready() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.apply(BROKER).await;
    f.apply(TRIGGER).await;
    f.reconcile::<Trigger>("on-order").await;
    let t: Trigger = f.get("on-order").await;
    let (status, reason, message) = trigger_status(&t, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::Unknown,
            "BrokerNotReady",
            "broker default is not ready yet"
        )
    );
    assert_eq!(f.dispatcher(KEY), None);

    f.reconcile::<Broker>("default").await;
    f.reconcile::<Trigger>("on-order").await;
    let t: Trigger = f.get("on-order").await;
    assert!(t.status.conditions.is_true("Ready"), "{:?}", t.status);
}

#[tokio::test]
async fn a_ready_trigger_reads_its_brokers_topic_as_its_group_through_its_filter() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.apply(BROKER).await;
    f.apply(TRIGGER).await;
    f.settle().await;
    let t: Trigger = f.get("on-order").await;
    for c in [
        "BrokerReady",
        "SubscriberResolved",
        "DeadLetterSinkResolved",
        "DispatcherReady",
        "Ready",
    ] {
        assert!(t.status.conditions.is_true(c), "{c}: {:?}", t.status);
    }
    assert_eq!(
        t.status.subscriber_uri.as_deref(),
        Some("http://hello.default.localhost:8080")
    );
    assert_eq!(t.status.dead_letter_sink_uri, None);

    let spec = f.dispatcher(KEY).unwrap();
    let topic = broker_topic("default", "default");
    assert_eq!(spec.topic, topic);
    assert_eq!(spec.group, "knative-trigger-default-on-order");
    assert_eq!(spec.subscriber, "http://hello.default.localhost:8080");
    assert_eq!(spec.dead_letter, None);
    assert_eq!(
        spec.reply,
        ReplyTo::SameTopic,
        "replies go back to the broker"
    );
    assert_eq!(spec.records, Records::CloudEvents);
    assert!(!spec.ordered);
    let filter = Filter::of_trigger(&t.spec).unwrap();
    assert_eq!(format!("{:?}", spec.filter), format!("{filter:?}"));
    assert!(
        format!("{filter:?}").contains("order.created"),
        "{filter:?}"
    );
    assert_eq!(
        f.log.subscribed(),
        [(topic, "knative-trigger-default-on-order".to_owned())]
    );
}

#[tokio::test]
async fn a_trigger_whose_subscriber_goes_away_stops_delivering() {
    let f = Fixture::new();
    f.apply(&service_yaml("hello", "1")).await;
    f.apply(BROKER).await;
    f.apply(TRIGGER).await;
    f.settle().await;
    assert!(f.dispatcher(KEY).is_some());

    f.ctx
        .store
        .delete::<Service>("default", "hello")
        .await
        .unwrap();
    f.reconcile::<Trigger>("on-order").await;
    let t: Trigger = f.get("on-order").await;
    let message = "Service default/hello not found or not addressable yet";
    for c in ["SubscriberResolved", "Ready"] {
        let (status, reason, m) = trigger_status(&t, c);
        assert_eq!(
            (status, reason.as_str(), m.as_str()),
            (ConditionStatus::False, "Unresolved", message),
            "{c}"
        );
    }
    assert_eq!(t.status.subscriber_uri, None);
    assert_eq!(f.dispatcher(KEY), None, "the dispatcher was stopped");
}

#[tokio::test]
async fn a_trigger_takes_its_brokers_delivery_unless_it_has_its_own_and_may_be_ordered() {
    let f = Fixture::new();
    f.apply(
        "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
spec:
  delivery:
    retry: 5
    deadLetterSink:
      uri: http://dead.default.localhost:8080/broker
",
    )
    .await;
    f.apply(
        "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: inherits
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
spec:
  broker: default
  subscriber:
    uri: http://sink.default.localhost:8080/
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: own
spec:
  broker: default
  subscriber:
    uri: http://sink.default.localhost:8080/
  delivery:
    retry: 1
    deadLetterSink:
      uri: http://dead.default.localhost:8080/own
",
    )
    .await;
    f.settle().await;
    let inherits = f.dispatcher("default/inherits").unwrap();
    assert_eq!(
        inherits.dead_letter.as_deref(),
        Some("http://dead.default.localhost:8080/broker")
    );
    assert_eq!(inherits.policy.retry, 5);
    assert!(inherits.ordered);
    let t: Trigger = f.get("inherits").await;
    assert_eq!(
        t.status.dead_letter_sink_uri.as_deref(),
        Some("http://dead.default.localhost:8080/broker")
    );
    let own = f.dispatcher("default/own").unwrap();
    assert_eq!(
        own.dead_letter.as_deref(),
        Some("http://dead.default.localhost:8080/own")
    );
    assert_eq!(own.policy.retry, 1);
    assert!(!own.ordered);
}

#[tokio::test]
async fn a_dead_letter_sink_that_does_not_resolve_keeps_the_trigger_from_delivering() {
    let f = Fixture::new();
    f.apply(BROKER).await;
    f.apply(
        "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
spec:
  broker: default
  subscriber:
    uri: http://sink.default.localhost:8080/
  delivery:
    deadLetterSink:
      ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: graveyard
",
    )
    .await;
    f.settle().await;
    let t: Trigger = f.get("t").await;
    let (status, reason, message) = trigger_status(&t, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "Unresolved",
            "Service default/graveyard not found or not addressable yet"
        )
    );
    assert_eq!(
        trigger_status(&t, "DeadLetterSinkResolved").0,
        ConditionStatus::False
    );
    assert_eq!(f.dispatcher("default/t"), None);
}
