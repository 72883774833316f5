//! The two event log backends, for suites that must hold on both: the embedded log in
//! a temporary directory, and Kafka (a real tansu broker over TCP, see
//! `paas_test_kafka`).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use paas_eventing::log::{EmbeddedLog, KafkaConfig, KafkaLog, Retention};
use paas_eventing::{Delivery, EventLog, Record, Subscription};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Embedded,
    Kafka,
}

/// A fresh log with an empty topic; returns the log and the topic's name.
pub(crate) async fn fresh_log(backend: Backend, test: &str) -> (Arc<dyn EventLog>, String) {
    // Kafka tests share one broker per binary: names stay unique per run.
    let topic = format!("{test}-{}", std::process::id());
    let log: Arc<dyn EventLog> = match backend {
        Backend::Embedded => {
            let dir = embedded_dir(&topic);
            let _ = std::fs::remove_dir_all(&dir);
            EmbeddedLog::open(&dir, Retention::default()).unwrap()
        }
        Backend::Kafka => kafka_log(3).await,
    };
    log.ensure_topic(&topic).await.unwrap();
    (log, topic)
}

/// Where [`fresh_log`] keeps the embedded log whose topic is `topic`.
pub(crate) fn embedded_dir(topic: &str) -> PathBuf {
    std::env::temp_dir().join(format!("paas-log-{topic}"))
}

/// A Kafka log on the shared broker whose new topics get `partitions` partitions.
pub(crate) async fn kafka_log(partitions: i32) -> Arc<KafkaLog> {
    let mut config = KafkaConfig::new(paas_test_kafka::broker());
    config.partitions = partitions;
    // Dispatchers join as static members, as under `paas up`.
    config.instance = Some(format!("test-{}", std::process::id()));
    KafkaLog::connect(config).await.unwrap()
}

/// A keyed record carrying its number in `ce_id`.
pub(crate) fn record(n: usize) -> Record {
    Record {
        key: Some(Bytes::from(format!("key-{}", n % 7))),
        headers: vec![
            ("ce_id".into(), Bytes::from(n.to_string())),
            ("content-type".into(), Bytes::from_static(b"text/plain")),
        ],
        value: Bytes::from(format!("event {n}")),
    }
}

pub(crate) async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("no record within 30 s")
        .unwrap()
}

/// Generate, for each named `async fn NAME(Backend)`, one test per backend:
/// `embedded::NAME` and `kafka::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Embedded).await
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Kafka).await
                }
            )*
        }
    };
}
