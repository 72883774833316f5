//! Eventing: CloudEvents ingress, the event log, triggers and the dispatcher.
//!
//! This crate starts with its seam, [`EventLog`]: brokers append CloudEvents to a log
//! (one topic per broker) and each trigger consumes it as a group, committing an
//! offset only after its event was delivered or dead-lettered. Two backends will
//! implement it: an embedded segment log in the data directory, and Kafka.

use std::fmt;

use async_trait::async_trait;

pub mod cesql;
pub mod cloudevent;
pub mod delivery;
pub mod dispatcher;
pub mod filter;
pub mod ingress;
pub mod log;
pub mod offsets;
pub mod sources;
pub mod transport;
use bytes::Bytes;

/// The event log topic of a broker, named as Knative's Kafka broker names it.
pub fn broker_topic(namespace: &str, broker: &str) -> String {
    format!("knative-broker-{namespace}-{broker}")
}

/// The event log topic of a channel (a hop of a flow), as Knative's Kafka channel
/// names its topics.
pub fn channel_topic(namespace: &str, channel: &str) -> String {
    format!("{CHANNEL_PREFIX}{namespace}-{channel}")
}

/// What every channel topic starts with.
pub const CHANNEL_PREFIX: &str = "knative-channel-";

/// One record in the CloudEvents Kafka binding's binary mode: `ce_` headers carry the
/// attributes, the value carries the data, `partitionkey` becomes the key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    pub value: Bytes,
}

/// Where a record sits in its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// A record handed to a consumer, with its position for the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub position: Position,
    pub record: Record,
    /// When the record was written, in milliseconds since the epoch, if the log
    /// keeps it (Kafka does).
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("topic {topic} does not exist")]
    NoSuchTopic { topic: String },
    #[error("event log backend failed on {topic}: {message}")]
    Backend { topic: String, message: String },
    #[error("no Kafka broker answered at {bootstrap} ({reason}): is the cluster up, and is that the address to give --kafka?")]
    Unreachable { bootstrap: String, reason: String },
}

/// Where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    Earliest,
    Latest,
}

/// The event log seam.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug + 'static {
    /// Create the topic if it does not exist.
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError>;

    /// Remove the topic and everything in it.
    async fn delete_topic(&self, topic: &str) -> Result<(), LogError>;

    /// Append records; returns once they are durable (fsynced, or acknowledged by all
    /// in-sync replicas), so that the ingress may answer 202.
    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>, LogError>;

    /// Join consumer group `group` on `topic`, resuming after its committed offsets, or
    /// at `initial` when it has none.
    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError>;

    /// As [`EventLog::subscribe`], for a reader with a stable name (a dispatcher's
    /// key) that is the same after a restart: a backend with group membership (Kafka)
    /// lets the restarted reader take its place in the group at once.
    async fn subscribe_as(
        &self,
        topic: &str,
        group: &str,
        reader: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let _ = reader;
        self.subscribe(topic, group, initial).await
    }

    /// Forget consumer group `group` of `topic` and its committed offsets (its trigger
    /// was deleted). Its readers must be stopped first. A group that does not exist is
    /// not an error.
    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), LogError>;

    /// Save whatever is buffered (committed offsets) before the process exits.
    fn flush(&self) {}
}

/// One group member's view of a topic.
#[async_trait]
pub trait Subscription: Send + fmt::Debug {
    /// The next record, waiting for one to be appended.
    async fn next(&mut self) -> Result<Delivery, LogError>;

    /// Everything up to and including `position` in its partition is done.
    async fn commit(&mut self, position: Position) -> Result<(), LogError>;
}
