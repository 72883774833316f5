//! The Kafka backend (`paas up --kafka HOST:PORT`), through rdkafka and its bundled
//! librdkafka: a topic per broker, records in the CloudEvents Kafka binding's binary
//! mode, an idempotent producer per topic that waits for every in-sync replica, and one
//! consumer group per trigger that commits only what the dispatcher reports done.
//!
//! A topic's producer is dropped before the topic is deleted: a librdkafka 2.12 client
//! that still knows a deleted topic crashed on tansu's next metadata answer, and a
//! fresh producer also starts the idempotence sequence of a re-made topic from zero.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{Delivery, EventLog, InitialOffset, LogError, Position, Record, Subscription};

/// How long a metadata or offset request to the cluster may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reader keeps its group membership without an answer from the group
/// coordinator (`session.timeout.ms`): Kafka's and librdkafka's default.
///
/// Not shorter: tansu 0.6 serves every request from one storage task, one at a time,
/// and reads each fetched record's headers by scanning all the headers it stores (no
/// index on them: 4 ms a record once it holds 50,000), so the first fetch of a
/// backlog holds it for long, answering no heartbeat meanwhile. After a `kill -9`
/// mid-stream in the e2e crash test, the restarted dispatcher's first fetch (1.2 MB)
/// took 34 s and a heartbeat 13 s. With the 10-s session readers had, the session ran
/// out during every such fetch: librdkafka dropped the assignment with the records
/// fetched, joined again and fetched the same offsets again, and nothing was ever
/// delivered (Kafka answers heartbeats apart from fetches). A restarted paas does not
/// wait for this long: its readers are static members ([`KafkaConfig::instance`]) and
/// take their partitions back at once. Test: kafka_stall.
const SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// How long deleting a group waits for it to empty: a static member (see
/// [`KafkaConfig::instance`]) does not leave its group when it closes, it is dropped
/// when its session ([`SESSION_TIMEOUT`]) runs out.
const GROUP_EMPTY_WAIT: Duration = Duration::from_secs(SESSION_TIMEOUT.as_secs() + 15);

/// Where the cluster is and how topics are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `HOST:PORT[,HOST:PORT...]`
    pub bootstrap: String,
    /// Partitions of a new broker topic (Knative's default is 10).
    pub partitions: i32,
    pub replication: i32,
    /// A name of this installation that survives restarts. With it, readers join
    /// their groups as static members (`group.instance.id`), so a paas restarted
    /// after a crash takes its partitions back at once, rather than after the dead
    /// members' sessions expire (and a broker that mishandles that expiry, as tansu
    /// 0.6 can, does not leave the group stuck).
    pub instance: Option<String>,
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            partitions: 10,
            replication: 1,
            instance: None,
        }
    }
}

/// A `group.instance.id` for `reader` of installation `instance`: Kafka's legal
/// characters only, at most 249 of them, and the reader's exact name in a checksum
/// so that two readers never share one.
fn static_member(instance: &str, reader: &str) -> String {
    let legal: String = reader
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    let mut id = format!("{instance}-{legal}");
    id.truncate(240);
    format!("{id}-{:08x}", crc32fast::hash(reader.as_bytes()))
}

pub struct KafkaLog {
    config: KafkaConfig,
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// The producer of each topic known to exist. An append to any other topic is
    /// refused at once (a POST to an unknown broker is a 404) rather than left to wait
    /// for metadata that never comes.
    producers: Mutex<HashMap<String, FutureProducer>>,
    closing: Arc<Closing>,
}

/// Readers still leaving their groups, by group: a reader commits its last offsets as
/// it closes, so a group is deleted only after its readers are gone.
#[derive(Debug, Default)]
struct Closing {
    groups: Mutex<HashMap<String, usize>>,
    done: tokio::sync::Notify,
}

impl Closing {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self, group: &str) {
        *self.lock().entry(group.to_owned()).or_default() += 1;
    }

    fn finish(&self, group: &str) {
        let mut groups = self.lock();
        if let Some(n) = groups.get_mut(group) {
            *n -= 1;
            if *n == 0 {
                groups.remove(group);
            }
        }
        drop(groups);
        self.done.notify_waiters();
    }

    /// Wait until no reader of `group` is closing, or `deadline`.
    async fn wait(&self, group: &str, deadline: tokio::time::Instant) {
        loop {
            // Registered before the check, so that a finish in between is not missed.
            let finished = self.done.notified();
            if !self.lock().contains_key(group) {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return;
            }
        }
    }
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn failed(topic: &str, what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Backend {
        topic: topic.to_owned(),
        message: format!("{what}: {e}"),
    }
}

/// Run one of librdkafka's blocking calls off the async workers.
async fn blocking<T: Send + 'static>(
    topic: &str,
    what: &str,
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| failed(topic, what, e))?
        .map_err(|e| failed(topic, what, e))
}

impl KafkaLog {
    /// Connect to the cluster, failing early (with what to check) when no broker answers.
    pub async fn connect(config: KafkaConfig) -> Result<Arc<Self>, LogError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap)
            // Topics are made by ensure_topic only, never by a metadata request.
            .set("allow.auto.create.topics", "false");
        let admin: AdminClient<DefaultClientContext> = client
            .create()
            .map_err(|e| failed("*", "creating the Kafka admin client", e))?;
        let log = Self {
            config,
            admin: Arc::new(admin),
            producers: Mutex::new(HashMap::new()),
            closing: Arc::default(),
        };
        log.check().await?;
        Ok(Arc::new(log))
    }

    /// One metadata round trip, so a wrong address is reported at start.
    async fn check(&self) -> Result<(), LogError> {
        let admin = self.admin.clone();
        let answer = tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map(|_| ())
        })
        .await;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LogError::Unreachable {
                bootstrap: self.config.bootstrap.clone(),
                reason: e.to_string(),
            }),
            Err(e) => Err(failed("*", "reading metadata", e)),
        }
    }

    fn producers(&self) -> std::sync::MutexGuard<'_, HashMap<String, FutureProducer>> {
        self.producers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every topic's metadata, from the admin client (which produces to nothing, so
    /// keeps no topic it could trip over once deleted). Asking for one topic that
    /// does not exist would leave it in the asking client's cache.
    async fn all_metadata(&self, topic: &str) -> Result<rdkafka::metadata::Metadata, LogError> {
        let admin = self.admin.clone();
        blocking(topic, "reading metadata", move || {
            admin.inner().fetch_metadata(None, REQUEST_TIMEOUT)
        })
        .await
    }

    fn new_producer(&self, topic: &str) -> Result<FutureProducer, LogError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.config.bootstrap)
            .set("allow.auto.create.topics", "false")
            // Durable before the 202: every in-sync replica has it, written once.
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // Group appends from concurrent producers into one request.
            .set("linger.ms", "1")
            // An append fails (the ingress answers 503) rather than waiting minutes.
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| failed(topic, "creating the Kafka producer", e))
    }

    /// Which of `topics` the cluster lacks (or has without partitions), from one
    /// metadata request.
    pub async fn missing_topics<'t>(&self, topics: &'t [String]) -> Result<Vec<&'t str>, LogError> {
        let metadata = self.all_metadata("*").await?;
        let present = |topic: &str| {
            metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        };
        Ok(topics
            .iter()
            .map(String::as_str)
            .filter(|t| !present(t))
            .collect())
    }

    /// Whether the cluster has `topic`, with its partitions.
    pub async fn has_topic(&self, topic: &str) -> Result<bool, LogError> {
        let topics = [topic.to_owned()];
        Ok(self.missing_topics(&topics).await?.is_empty())
    }

    /// The topic's producer; `None` when the cluster has no such topic.
    async fn producer(&self, topic: &str) -> Result<Option<FutureProducer>, LogError> {
        if let Some(p) = self.producers().get(topic) {
            return Ok(Some(p.clone()));
        }
        if !self.has_topic(topic).await? {
            return Ok(None);
        }
        let producer = self.new_producer(topic)?;
        Ok(Some(
            self.producers()
                .entry(topic.to_owned())
                .or_insert(producer)
                .clone(),
        ))
    }

    fn consumer(
        &self,
        group: &str,
        member: Option<&str>,
        initial: InitialOffset,
    ) -> Result<StreamConsumer, KafkaError> {
        let mut config = ClientConfig::new();
        if let Some(member) = member {
            config.set("group.instance.id", member);
        }
        // librdkafka's own tracing, for diagnosing a cluster (e.g. `cgrp,fetch`).
        if let Ok(contexts) = std::env::var("PAAS_KAFKA_DEBUG") {
            config.set("debug", contexts);
        }
        config
            .set("bootstrap.servers", &self.config.bootstrap)
            .set("group.id", group)
            // Offsets are stored only for events the dispatcher finished, and
            // committed from there in the background (and on leaving the group).
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "100")
            .set(
                "auto.offset.reset",
                match initial {
                    InitialOffset::Earliest => "earliest",
                    InitialOffset::Latest => "latest",
                },
            )
            // A fetch returns after this long even when there is little to read:
            // brokers that do not answer a waiting fetch as soon as data arrives (tansu)
            // would otherwise add the whole default half second to every event.
            .set("fetch.wait.max.ms", "20")
            .set(
                "session.timeout.ms",
                SESSION_TIMEOUT.as_millis().to_string(),
            )
            .set("heartbeat.interval.ms", "1000")
            .create()
    }
}

/// Fix a new group's starting point now: commit where it starts on every partition
/// that has no committed offset, so events appended after `subscribe` returns are
/// seen even though partitions are assigned later.
fn pin_start(
    consumer: &StreamConsumer,
    topic: &str,
    initial: InitialOffset,
) -> Result<(), KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let mut all = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            all.add_partition(topic, p.id());
        }
    }
    let committed = consumer.committed_offsets(all, REQUEST_TIMEOUT)?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Offset(_)) {
            continue;
        }
        let (low, high) = consumer.fetch_watermarks(topic, e.partition(), REQUEST_TIMEOUT)?;
        let at = match initial {
            InitialOffset::Earliest => low,
            InitialOffset::Latest => high,
        };
        start.add_partition_offset(topic, e.partition(), Offset::Offset(at))?;
    }
    if start.count() > 0 {
        consumer.commit(&start, CommitMode::Sync)?;
    }
    Ok(())
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        let new = NewTopic::new(
            topic,
            self.config.partitions,
            TopicReplication::Fixed(self.config.replication),
        );
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| failed(topic, "creating the topic", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(failed(topic, "creating the topic", code)),
            }
        }
        if !self.producers().contains_key(topic) {
            let producer = self.new_producer(topic)?;
            self.producers().entry(topic.to_owned()).or_insert(producer);
        }
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let producer = self.producers().remove(topic);
        if let Some(p) = producer {
            // Whatever is still queued is flushed (or fails) before the topic goes.
            let _ = blocking(topic, "flushing", move || p.flush(REQUEST_TIMEOUT)).await;
        }
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .admin
            .delete_topics(&[topic], &opts)
            .await
            .map_err(|e| failed(topic, "deleting the topic", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((_, code)) => return Err(failed(topic, "deleting the topic", code)),
            }
        }
        Ok(())
    }

    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>, LogError> {
        let Some(producer) = self.producer(topic).await? else {
            return Err(LogError::NoSuchTopic {
                topic: topic.to_owned(),
            });
        };
        // Enqueue all first (keeping their order), then wait for every acknowledgement.
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_ref()),
                });
            }
            let mut message = FutureRecord::to(topic)
                .payload(record.value.as_ref())
                .headers(headers);
            if let Some(key) = &record.key {
                message = message.key(key.as_ref());
            }
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue is full: let it drain a little.
                        message = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(failed(topic, "appending", e)),
                }
            }
        }
        let mut positions = Vec::with_capacity(pending.len());
        for delivery in pending {
            let (partition, offset) = delivery
                .await
                .map_err(|e| failed(topic, "appending", e))?
                .map_err(|(e, _)| failed(topic, "appending", e))?;
            positions.push(Position { partition, offset });
        }
        Ok(positions)
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.join(topic, group, None, initial).await
    }

    /// Deletes the whole group: a paas group reads one topic only.
    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), LogError> {
        let what = format!("deleting consumer group {group}");
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let deadline = tokio::time::Instant::now() + GROUP_EMPTY_WAIT;
        self.closing.wait(group, deadline).await;
        loop {
            let results = self
                .admin
                .delete_groups(&[group], &opts)
                .await
                .map_err(|e| failed(topic, &what, e))?;
            let mut not_empty = false;
            for r in results {
                match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                    Err((_, RDKafkaErrorCode::NonEmptyGroup)) => not_empty = true,
                    Err((_, code)) => return Err(failed(topic, &what, code)),
                }
            }
            if !not_empty {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(
                    topic,
                    &what,
                    format!(
                        "it still has members after {} s: stop the dispatcher reading it first",
                        GROUP_EMPTY_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn subscribe_as(
        &self,
        topic: &str,
        group: &str,
        reader: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let member = self
            .config
            .instance
            .as_deref()
            .map(|instance| static_member(instance, reader));
        self.join(topic, group, member.as_deref(), initial).await
    }
}

impl KafkaLog {
    /// Join `group` on `topic`, as a static member when `member` is given.
    async fn join(
        &self,
        topic: &str,
        group: &str,
        member: Option<&str>,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let consumer = Arc::new(
            self.consumer(group, member, initial)
                .map_err(|e| failed(topic, "creating the consumer", e))?,
        );
        let (c, t) = (consumer.clone(), topic.to_owned());
        blocking(topic, "fixing the group's start", move || {
            pin_start(&c, &t, initial)
        })
        .await?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| failed(topic, "subscribing", e))?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            topic: topic.to_owned(),
            group: group.to_owned(),
            closing: self.closing.clone(),
        }))
    }
}

struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    topic: String,
    group: String,
    closing: Arc<Closing>,
}

impl std::fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        // Leaving the group waits for the coordinator, for ever when the cluster is
        // down: do it on a thread of its own rather than on an async worker (this runs
        // when a dispatcher is stopped, and at shutdown).
        let consumer = self.consumer.clone();
        let (closing, group) = (self.closing.clone(), self.group.clone());
        self.closing.start(&group);
        let spawned = std::thread::Builder::new()
            .name("kafka-consumer-close".into())
            .spawn(move || {
                drop(consumer);
                closing.finish(&group);
            });
        if spawned.is_err() {
            // The consumer was dropped here, with the closure.
            self.closing.finish(&self.group);
        }
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        let message = loop {
            match self.consumer.recv().await {
                Ok(m) => break m,
                // librdkafka reports what it retries by itself (a topic whose metadata
                // has not reached every broker yet, a lost connection): wait, go on.
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            Bytes::copy_from_slice(h.value.unwrap_or_default()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Delivery {
            position: Position {
                partition: message.partition(),
                offset: message.offset(),
            },
            record: Record {
                key: message.key().map(Bytes::copy_from_slice),
                headers,
                value: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            },
            timestamp_ms: message.timestamp().to_millis(),
        })
    }

    async fn commit(&mut self, position: Position) -> Result<(), LogError> {
        // librdkafka commits the stored offset plus one, in the background.
        match self
            .consumer
            .store_offset(&self.topic, position.partition, position.offset)
        {
            Ok(()) => Ok(()),
            // The partition went to another member in a rebalance; it resumes from
            // the last commit there (at least once).
            Err(e) => {
                tracing::debug!(topic = %self.topic, ?position, error = %e, "offset not stored");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_members_are_legal_and_distinct() {
        let a = static_member("paas-1a2b", "kafkasource:default/orders/my.topic/0");
        assert!(
            a.starts_with("paas-1a2b-kafkasource.default.orders.my.topic.0-"),
            "{a}"
        );
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        // Names that read alike once made legal still differ.
        assert_ne!(
            a,
            static_member("paas-1a2b", "kafkasource:default/orders/my/topic/0")
        );
        assert!(static_member("paas-1a2b", &"x".repeat(400)).len() <= 249);
    }
}
