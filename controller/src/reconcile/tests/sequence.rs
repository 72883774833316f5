//! Sequence → a channel (a topic) per step, and a dispatcher per step that delivers
//! its channel to the step and puts the reply in the next channel, the last one's in
//! the sequence's reply.

use paas_eventing::channel_topic;
use paas_eventing::dispatcher::ReplyTo;

use super::*;

const SEQUENCE: &str = "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: seq
spec:
  steps:
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: first
    - uri: http://second.default.localhost:8080/
      delivery:
        retry: 2
        deadLetterSink:
          uri: http://dead.default.localhost:8080/
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: first
      uri: /third
  reply:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
";

const BROKER: &str = "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
";

fn topic(step: usize) -> String {
    channel_topic("default", &format!("seq-kn-sequence-{step}"))
}

#[tokio::test]
async fn a_sequence_chains_a_channel_and_a_dispatcher_per_step_to_its_reply() {
    let f = Fixture::new();
    f.apply(&service_yaml("first", "1")).await;
    f.apply(BROKER).await;
    f.apply(SEQUENCE).await;
    f.settle().await;
    let seq: Sequence = f.get("seq").await;
    assert!(seq.status.conditions.is_true("Ready"), "{:?}", seq.status);
    assert_eq!(seq.status.observed_generation, Some(1));
    assert_eq!(
        seq.status.step_uris,
        [
            "http://first.default.localhost:8080",
            "http://second.default.localhost:8080/",
            "http://first.default.localhost:8080/third",
        ]
    );
    let broker = "http://broker-ingress.localhost:8080/default/default";
    assert_eq!(seq.status.reply_uri.as_deref(), Some(broker));
    // Producers post to the first channel.
    assert_eq!(
        seq.status.address.map(|a| a.url).as_deref(),
        Some("http://channel-ingress.localhost:8080/default/seq-kn-sequence-0")
    );
    for step in 0..3 {
        assert!(f.log.topics().contains(&topic(step)), "step {step}");
    }

    assert_eq!(
        f.dispatchers("sequence:default/seq/"),
        [
            "sequence:default/seq/0",
            "sequence:default/seq/1",
            "sequence:default/seq/2"
        ]
    );
    let steps: Vec<_> = (0..3)
        .map(|i| f.dispatcher(&format!("sequence:default/seq/{i}")).unwrap())
        .collect();
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s.topic, topic(i));
        assert_eq!(s.group, format!("knative-sequence-default-seq-{i}"));
        assert_eq!(s.subscriber, seq.status.step_uris[i]);
    }
    assert_eq!(steps[0].reply, ReplyTo::Topic(topic(1)));
    assert_eq!(steps[1].reply, ReplyTo::Topic(topic(2)));
    assert_eq!(steps[2].reply, ReplyTo::Url(broker.into()));
    // A step's own delivery spec.
    assert_eq!(
        steps[1].dead_letter.as_deref(),
        Some("http://dead.default.localhost:8080/")
    );
    assert_eq!(steps[1].policy.retry, 2);
    assert_eq!(steps[0].dead_letter, None);
}

#[tokio::test]
async fn a_sequence_without_a_reply_drops_what_its_last_step_answers() {
    let f = Fixture::new();
    f.apply(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: seq
spec:
  steps:
    - uri: http://only.default.localhost:8080/
",
    )
    .await;
    assert_eq!(f.reconcile::<Sequence>("seq").await, Action::Done);
    let last = f.dispatcher("sequence:default/seq/0").unwrap();
    assert_eq!(last.reply, ReplyTo::Drop);
    let seq: Sequence = f.get("seq").await;
    assert_eq!(seq.status.reply_uri, None);
}

#[tokio::test]
async fn a_step_that_does_not_resolve_keeps_the_sequence_from_delivering() {
    let f = Fixture::new();
    f.apply(BROKER).await;
    f.reconcile::<Broker>("default").await;
    f.apply(SEQUENCE).await;
    // Service `first` does not exist.
    assert_eq!(
        f.reconcile::<Sequence>("seq").await,
        Action::RequeueAfter(Duration::from_secs(2))
    );
    let seq: Sequence = f.get("seq").await;
    let (status, reason, message) = condition(&seq.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "StepUnresolved",
            "step 0: Service default/first not found or not addressable yet"
        )
    );
    assert_eq!(f.dispatchers("sequence:default/seq/"), Vec::<String>::new());
    // The channels exist already: producers may post before the steps are there.
    assert!(f.log.topics().contains(&topic(0)));
}

#[tokio::test]
async fn a_sequence_that_gets_shorter_stops_the_dispatchers_of_the_steps_it_lost() {
    let f = Fixture::new();
    f.apply(&service_yaml("first", "1")).await;
    f.apply(BROKER).await;
    f.apply(SEQUENCE).await;
    f.settle().await;
    assert_eq!(f.dispatchers("sequence:default/seq/").len(), 3);
    f.apply(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: seq
spec:
  steps:
    - uri: http://only.default.localhost:8080/
",
    )
    .await;
    f.reconcile::<Sequence>("seq").await;
    assert_eq!(
        f.dispatchers("sequence:default/seq/"),
        ["sequence:default/seq/0"]
    );
    let seq: Sequence = f.get("seq").await;
    assert_eq!(seq.metadata.generation, Some(2));
    assert_eq!(seq.status.observed_generation, Some(2));
    assert_eq!(
        seq.status.step_uris,
        ["http://only.default.localhost:8080/"]
    );
}

#[tokio::test]
async fn channels_that_cannot_be_made_leave_the_sequence_not_ready() {
    let f = Fixture::new();
    f.apply(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: seq
spec:
  steps:
    - uri: http://only.default.localhost:8080/
",
    )
    .await;
    f.log.refuse(Some("the cluster is down"));
    f.reconcile::<Sequence>("seq").await;
    let seq: Sequence = f.get("seq").await;
    let (status, reason, message) = condition(&seq.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "ChannelFailed")
    );
    assert!(message.ends_with("the cluster is down"), "{message}");
    assert_eq!(f.dispatchers("sequence:"), Vec::<String>::new());
}
