//! `sources.knative.dev/v1beta1` KafkaSource, in Knative's shape: the records of
//! topics someone else writes, read with a consumer group and delivered to a sink as
//! CloudEvents.

use serde::{Deserialize, Serialize};

use crate::condition::Conditions;
use crate::eventing::{DeliverySpec, Destination};
use crate::serving::Unsupported;

pub const KAFKA_SOURCE_API_VERSION: &str = "sources.knative.dev/v1beta1";
/// How a record's key becomes the `key` extension, as Knative's annotation says.
pub const KEY_TYPE: &str = "kafkasources.sources.knative.dev/key-type";

resource!(KafkaSource, KafkaSourceSpec, KafkaSourceStatus);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// `HOST:PORT` of the cluster's brokers.
    #[serde(default)]
    pub bootstrap_servers: Vec<String>,
    #[serde(default)]
    pub topics: Vec<String>,
    /// The group whose committed offsets say where reading resumes; defaults to one
    /// of the source's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Where a group with no committed offset starts (Knative's default: latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_offset: Option<InitialOffset>,
    /// Consumers in the group, sharing each topic's partitions (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<Ordering>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    #[serde(default)]
    pub sink: Destination,
    /// SASL and TLS settings: not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Unsupported,
}

impl KafkaSourceSpec {
    pub fn consumer_group_or_default(&self, namespace: &str, name: &str) -> String {
        self.consumer_group
            .clone()
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| format!("knative-kafka-source-{namespace}-{name}"))
    }

    /// The brokers as librdkafka takes them.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_servers.join(",")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitialOffset {
    Earliest,
    #[default]
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Each partition waits for its event's delivery before the next one goes.
    Ordered,
    #[default]
    Unordered,
}

/// How the bytes of a record's key are read (the [`KEY_TYPE`] annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    #[default]
    String,
    /// A big-endian integer of 1, 2, 4 or 8 bytes.
    Int,
    /// A big-endian IEEE 754 float of 4 or 8 bytes.
    Float,
    /// Any bytes, carried base64-encoded.
    ByteArray,
}

impl KeyType {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "string" => Ok(Self::String),
            "int" => Ok(Self::Int),
            "float" => Ok(Self::Float),
            "byte-array" => Ok(Self::ByteArray),
            other => Err(format!(
                "{other:?} is not a key type: use string, int, float or byte-array"
            )),
        }
    }
}

impl KafkaSource {
    pub fn key_type(&self) -> Result<KeyType, String> {
        self.metadata
            .annotations
            .get(KEY_TYPE)
            .map_or(Ok(KeyType::String), |t| KeyType::parse(t))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSourceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    /// Consumers running in the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knatives_example_parses() {
        let yaml = "apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: kafka-source
spec:
  consumerGroup: knative-group
  bootstrapServers:
    - my-cluster-kafka-bootstrap.kafka:9092
  topics:
    - knative-demo-topic
  initialOffset: earliest
  ordering: ordered
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
";
        let s: KafkaSource = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(s.spec.initial_offset, Some(InitialOffset::Earliest));
        assert_eq!(s.spec.ordering, Some(Ordering::Ordered));
        assert_eq!(
            s.spec.consumer_group_or_default("default", "kafka-source"),
            "knative-group"
        );
        assert_eq!(
            s.spec.bootstrap(),
            "my-cluster-kafka-bootstrap.kafka:9092".to_owned()
        );
        assert_eq!(s.key_type(), Ok(KeyType::String));
    }

    #[test]
    fn key_types_parse() {
        assert_eq!(KeyType::parse("byte-array"), Ok(KeyType::ByteArray));
        assert!(KeyType::parse("bytes").unwrap_err().contains("byte-array"));
    }
}
