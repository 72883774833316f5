//! An event log in memory that records what the reconcilers did to it: the topics
//! made, the records appended, the groups subscribed. Its readers wait for
//! ever, so a dispatcher started on it delivers nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use paas_eventing::{Delivery, EventLog, InitialOffset, LogError, Position, Record, Subscription};

#[derive(Debug, Default)]
pub(crate) struct MemoryLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    topics: BTreeSet<String>,
    records: BTreeMap<String, Vec<Record>>,
    /// (topic, group) of every subscription, in order.
    subscribed: Vec<(String, String)>,
    /// While set, making a topic fails with this message (a cluster that is down).
    refusing: Option<String>,
}

impl MemoryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The topics that exist now.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.lock().topics.iter().cloned().collect()
    }

    /// What was appended to `topic`.
    pub(crate) fn records(&self, topic: &str) -> Vec<Record> {
        self.lock().records.get(topic).cloned().unwrap_or_default()
    }

    /// Make topics fail with `why` from now on (`None`: work again).
    pub(crate) fn refuse(&self, why: Option<&str>) {
        self.lock().refusing = why.map(str::to_owned);
    }

    pub(crate) fn subscribed(&self) -> Vec<(String, String)> {
        self.lock().subscribed.clone()
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        let mut inner = self.lock();
        if let Some(why) = &inner.refusing {
            return Err(LogError::Backend {
                topic: topic.to_owned(),
                message: why.clone(),
            });
        }
        inner.topics.insert(topic.to_owned());
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let mut inner = self.lock();
        inner.topics.remove(topic);
        inner.records.remove(topic);
        Ok(())
    }

    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>, LogError> {
        let mut inner = self.lock();
        if !inner.topics.contains(topic) {
            return Err(LogError::NoSuchTopic {
                topic: topic.to_owned(),
            });
        }
        let kept = inner.records.entry(topic.to_owned()).or_default();
        let mut positions = Vec::new();
        for r in records {
            positions.push(Position {
                partition: 0,
                offset: i64::try_from(kept.len()).unwrap_or(i64::MAX),
            });
            kept.push(r);
        }
        Ok(positions)
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        _initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.lock()
            .subscribed
            .push((topic.to_owned(), group.to_owned()));
        Ok(Box::new(Waiting))
    }

    async fn delete_group(&self, _topic: &str, _group: &str) -> Result<(), LogError> {
        Ok(())
    }
}

/// A reader that never gets a record.
#[derive(Debug)]
struct Waiting;

#[async_trait]
impl Subscription for Waiting {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        std::future::pending().await
    }

    async fn commit(&mut self, _position: Position) -> Result<(), LogError> {
        Ok(())
    }
}
