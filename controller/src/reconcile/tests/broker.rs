//! Broker → a topic in the event log and the ingress address producers post to.

use paas_eventing::broker_topic;

use super::*;

const BROKER: &str = "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
";

#[tokio::test]
async fn a_broker_gets_its_topic_and_its_ingress_address() {
    let f = Fixture::new();
    f.apply(BROKER).await;
    assert_eq!(f.reconcile::<Broker>("default").await, Action::Done);
    assert_eq!(f.log.topics(), [broker_topic("default", "default")]);
    let broker: Broker = f.get("default").await;
    assert_eq!(broker.status.observed_generation, Some(1));
    assert_eq!(
        broker.status.address.map(|a| a.url).as_deref(),
        Some("http://broker-ingress.localhost:8080/default/default")
    );
    for c in ["TopicReady", "Addressable", "Ready"] {
        assert!(broker.status.conditions.is_true(c), "{c}");
    }
}

#[tokio::test]
async fn a_topic_that_cannot_be_made_leaves_the_broker_not_ready_and_is_tried_again() {
    let f = Fixture::new();
    f.apply(BROKER).await;
    f.log.refuse(Some("the cluster is down"));
    assert_eq!(
        f.reconcile::<Broker>("default").await,
        Action::RequeueAfter(Duration::from_secs(2))
    );
    let broker: Broker = f.get("default").await;
    let message = "event log backend failed on knative-broker-default-default: the cluster is down";
    for c in ["TopicReady", "Ready"] {
        let (status, reason, m) = condition(&broker.status.conditions, c);
        assert_eq!(
            (status, reason.as_str(), m.as_str()),
            (ConditionStatus::False, "TopicFailed", message),
            "{c}"
        );
    }
    assert_eq!(broker.status.address, None, "no address to post to yet");

    f.log.refuse(None);
    assert_eq!(f.reconcile::<Broker>("default").await, Action::Done);
    let broker: Broker = f.get("default").await;
    assert!(broker.status.conditions.is_true("Ready"));
    assert_eq!(f.log.topics(), [broker_topic("default", "default")]);
}

#[tokio::test]
async fn reconciling_a_ready_broker_again_writes_nothing() {
    let f = Fixture::new();
    f.apply(BROKER).await;
    f.reconcile::<Broker>("default").await;
    let mut watch = f.ctx.store.watch();
    f.at(3600);
    f.reconcile::<Broker>("default").await;
    assert!(watch.try_recv().is_err(), "a write without a change");
}

#[tokio::test]
async fn brokers_of_other_namespaces_get_topics_of_their_own() {
    let f = Fixture::new();
    f.apply(BROKER).await;
    f.apply(
        "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  namespace: team-a
",
    )
    .await;
    f.settle().await;
    assert_eq!(
        f.log.topics(),
        [
            broker_topic("default", "default"),
            broker_topic("team-a", "default")
        ]
    );
    let other: Broker = f.ctx.store.get("team-a", "default").await.unwrap().unwrap();
    assert_eq!(
        other.status.address.map(|a| a.url).as_deref(),
        Some("http://broker-ingress.localhost:8080/team-a/default")
    );
}
