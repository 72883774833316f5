//! KafkaSource → dispatchers reading its topics from its own cluster. Reading a real
//! cluster is the end-to-end tests' part (tests/tests/kafka_source.rs, on tansu);
//! here: the sink, and a cluster being connected to or not answering.

use tokio::net::TcpSocket;

use super::*;

/// A socket bound on the loopback and not listening: connections to it are refused,
/// and no other test can take its port meanwhile.
fn unlistened() -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket
}

fn source(bootstrap: &str) -> String {
    format!(
        "apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: orders
spec:
  bootstrapServers:
    - {bootstrap}
  topics:
    - orders
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: display
"
    )
}

const PREFIX: &str = "kafkasource:default/orders/";

#[tokio::test]
async fn a_kafka_source_without_its_sink_reads_nothing_and_says_why() {
    let socket = unlistened();
    let f = Fixture::new();
    f.apply(&source(&socket.local_addr().unwrap().to_string()))
        .await;
    assert_eq!(
        f.reconcile::<KafkaSource>("orders").await,
        Action::RequeueAfter(Duration::from_secs(2))
    );
    let s: KafkaSource = f.get("orders").await;
    let (status, reason, message) = condition(&s.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "SinkUnresolved",
            "Service default/display not found or not addressable yet"
        )
    );
    assert_eq!(s.status.sink_uri, None);
    assert_eq!(s.status.consumers, None);
    assert_eq!(s.status.observed_generation, Some(1));
    assert_eq!(f.dispatchers(PREFIX), Vec::<String>::new());
}

#[tokio::test]
async fn a_kafka_source_waits_for_its_cluster_then_says_it_does_not_answer() {
    let socket = unlistened();
    let bootstrap = socket.local_addr().unwrap().to_string();
    let f = Fixture::new();
    f.apply(&service_yaml("display", "1")).await;
    f.apply(&source(&bootstrap)).await;
    assert_eq!(
        f.reconcile::<KafkaSource>("orders").await,
        Action::RequeueAfter(Duration::from_secs(2))
    );
    let s: KafkaSource = f.get("orders").await;
    assert_eq!(
        s.status.sink_uri.as_deref(),
        Some("http://display.default.localhost:8080")
    );
    let (status, reason, message) = condition(&s.status.conditions, "Ready");
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (
            ConditionStatus::False,
            "Connecting",
            format!("connecting to the Kafka cluster at {bootstrap}").as_str()
        )
    );
    assert_eq!(f.dispatchers(PREFIX), Vec::<String>::new());

    // The connection is tried in the background (its metadata request times out in
    // 10 s of real time); each look meanwhile says Connecting.
    let mut reason = String::new();
    for _ in 0..600 {
        f.reconcile::<KafkaSource>("orders").await;
        let s: KafkaSource = f.get("orders").await;
        reason = condition(&s.status.conditions, "Ready").1;
        if reason != "Connecting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reason, "ClusterUnreachable");
    let s: KafkaSource = f.get("orders").await;
    let message = condition(&s.status.conditions, "Ready").2;
    assert!(
        message.starts_with(&format!("no Kafka broker answered at {bootstrap}")),
        "{message}"
    );
    assert!(
        message.ends_with("is the cluster up, and are those spec.bootstrapServers?"),
        "{message}"
    );
    assert_eq!(s.status.consumers, None);
    assert_eq!(f.dispatchers(PREFIX), Vec::<String>::new());
}
