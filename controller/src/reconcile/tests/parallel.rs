//! Parallel → an ingress channel every branch reads in a group of its own; a branch
//! with a filter has the filter's answers put in a channel of its own, which its
//! subscriber reads; replies go to the branch's reply, else the Parallel's.

use paas_eventing::channel_topic;
use paas_eventing::dispatcher::ReplyTo;

use super::*;

const PARALLEL: &str = "apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: fan
spec:
  branches:
    - filter:
        uri: http://only-orders.default.localhost:8080/
      subscriber:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: orders
      reply:
        uri: http://audit.default.localhost:8080/
    - subscriber:
        uri: http://everything.default.localhost:8080/
      delivery:
        retry: 4
  reply:
    uri: http://replies.default.localhost:8080/
";

const PREFIX: &str = "parallel:default/fan/";

fn ingress() -> String {
    channel_topic("default", "fan-kn-parallel")
}

fn filtered(branch: usize) -> String {
    channel_topic("default", &format!("fan-kn-parallel-{branch}"))
}

#[tokio::test]
async fn each_branch_reads_the_ingress_channel_through_its_filter_if_it_has_one() {
    let f = Fixture::new();
    f.apply(&service_yaml("orders", "1")).await;
    f.apply(PARALLEL).await;
    f.settle().await;
    let par: Parallel = f.get("fan").await;
    assert!(par.status.conditions.is_true("Ready"), "{:?}", par.status);
    assert_eq!(par.status.observed_generation, Some(1));
    assert_eq!(
        par.status.address.map(|a| a.url).as_deref(),
        Some("http://channel-ingress.localhost:8080/default/fan-kn-parallel")
    );
    assert_eq!(par.status.branches.len(), 2);
    assert_eq!(
        par.status.branches[0].filter_uri.as_deref(),
        Some("http://only-orders.default.localhost:8080/")
    );
    assert_eq!(
        par.status.branches[0].subscriber_uri,
        "http://orders.default.localhost:8080"
    );
    assert_eq!(par.status.branches[1].filter_uri, None);
    // Channels: the ingress, and one for what branch 0's filter lets through.
    let mut topics = vec![ingress(), filtered(0)];
    topics.sort();
    assert_eq!(f.log.topics(), topics);

    assert_eq!(
        f.dispatchers(PREFIX),
        [
            "parallel:default/fan/0",
            "parallel:default/fan/1",
            "parallel:default/fan/filter-0"
        ]
    );
    let filter = f.dispatcher("parallel:default/fan/filter-0").unwrap();
    assert_eq!(filter.topic, ingress());
    assert_eq!(filter.group, "knative-parallel-default-fan-filter-0");
    assert_eq!(
        filter.subscriber,
        "http://only-orders.default.localhost:8080/"
    );
    assert_eq!(filter.reply, ReplyTo::Topic(filtered(0)));

    let orders = f.dispatcher("parallel:default/fan/0").unwrap();
    assert_eq!(orders.topic, filtered(0));
    assert_eq!(orders.group, "knative-parallel-default-fan-0");
    assert_eq!(orders.subscriber, "http://orders.default.localhost:8080");
    assert_eq!(
        orders.reply,
        ReplyTo::Url("http://audit.default.localhost:8080/".into()),
        "the branch's own reply"
    );

    let everything = f.dispatcher("parallel:default/fan/1").unwrap();
    assert_eq!(everything.topic, ingress(), "no filter: the ingress itself");
    assert_eq!(everything.group, "knative-parallel-default-fan-1");
    assert_eq!(
        everything.reply,
        ReplyTo::Url("http://replies.default.localhost:8080/".into()),
        "the Parallel's reply"
    );
    assert_eq!(everything.policy.retry, 4);
    // Every branch has a group of its own on the ingress: each gets every event.
    let ingress_groups: Vec<String> = f
        .log
        .subscribed()
        .into_iter()
        .filter(|(t, _)| *t == ingress())
        .map(|(_, g)| g)
        .collect();
    assert_eq!(ingress_groups.len(), 2, "{ingress_groups:?}");
}

#[tokio::test]
async fn a_branch_that_does_not_resolve_keeps_the_parallel_from_delivering() {
    let f = Fixture::new();
    f.apply(PARALLEL).await;
    assert_eq!(
        f.reconcile::<Parallel>("fan").await,
        Action::RequeueAfter(Duration::from_secs(2))
    );
    let par: Parallel = f.get("fan").await;
    let (status, reason, message) = condition(&par.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "BranchUnresolved",
            "branch 0: Service default/orders not found or not addressable yet"
        )
    );
    assert_eq!(f.dispatchers(PREFIX), Vec::<String>::new());

    f.apply(&service_yaml("orders", "1")).await;
    assert_eq!(f.reconcile::<Parallel>("fan").await, Action::Done);
    assert_eq!(f.dispatchers(PREFIX).len(), 3);
}

#[tokio::test]
async fn a_branch_taken_away_stops_its_dispatchers() {
    let f = Fixture::new();
    f.apply(&service_yaml("orders", "1")).await;
    f.apply(PARALLEL).await;
    f.settle().await;
    f.apply(
        "apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: fan
spec:
  branches:
    - subscriber:
        uri: http://everything.default.localhost:8080/
",
    )
    .await;
    f.reconcile::<Parallel>("fan").await;
    assert_eq!(f.dispatchers(PREFIX), ["parallel:default/fan/0"]);
    let only = f.dispatcher("parallel:default/fan/0").unwrap();
    assert_eq!(only.topic, ingress());
    assert_eq!(only.reply, ReplyTo::Drop, "no reply anywhere");
}
