//! One dispatcher per trigger: consume the broker's topic as the trigger's group,
//! filter, deliver (bounded parallelism, or one at a time per partition when ordered),
//! put replies back into the broker, and commit an offset only once every event up to
//! it was delivered, dead-lettered or filtered out.

mod metrics;
mod run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use paas_api::kafka_source::KeyType;
use tokio::task::JoinHandle;

pub use self::metrics::{LastOutcome, TriggerMetrics};
use crate::delivery::{DeliveryPolicy, Transport};
use crate::filter::Filter;
use crate::{EventLog, InitialOffset, LogError};

/// In flight per trigger when delivery is unordered (Knative's default).
pub const DEFAULT_PARALLELISM: usize = 100;

/// Everything a trigger's dispatcher needs; a change means a new dispatcher.
#[derive(Debug, Clone)]
pub struct DispatchSpec {
    /// The broker's topic; replies go back into it.
    pub topic: String,
    pub group: String,
    pub filter: Arc<Filter>,
    pub subscriber: String,
    pub dead_letter: Option<String>,
    pub policy: DeliveryPolicy,
    pub ordered: bool,
    /// Where a subscriber's reply event goes.
    pub reply: ReplyTo,
    pub records: Records,
}

/// What the records read are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Records {
    /// Events paas stored, in the CloudEvents Kafka binding; any other record is
    /// skipped as malformed.
    #[default]
    CloudEvents,
    /// Records someone else wrote, read by a KafkaSource: each becomes an event as
    /// Knative's KafkaSource makes them (see `cloudevent::kafka_record`).
    Foreign {
        /// The `source` of events made from plain records.
        source: String,
        key_type: KeyType,
    },
}

/// Where a reply (a 2xx answer carrying a CloudEvent) goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReplyTo {
    /// Back into the topic the event came from: a broker's triggers see it.
    #[default]
    SameTopic,
    /// Into another topic: the next hop of a flow.
    Topic(String),
    /// To a destination, delivered as the event was (retries, dead letters).
    Url(String),
    /// Nowhere: the end of a flow that has no reply.
    Drop,
}

impl PartialEq for DispatchSpec {
    fn eq(&self, other: &Self) -> bool {
        // Filters compare by what they were compiled from, through their debug form.
        self.topic == other.topic
            && self.group == other.group
            && format!("{:?}", self.filter) == format!("{:?}", other.filter)
            && self.subscriber == other.subscriber
            && self.dead_letter == other.dead_letter
            && self.policy == other.policy
            && self.ordered == other.ordered
            && self.reply == other.reply
            && self.records == other.records
    }
}

#[derive(Debug)]
struct Running {
    spec: DispatchSpec,
    /// The log it reads: the platform's, or a KafkaSource's cluster.
    log: Arc<dyn EventLog>,
    task: JoinHandle<()>,
    /// Kept across restarts of the trigger's dispatcher (a changed spec).
    metrics: Arc<TriggerMetrics>,
}

/// The dispatchers of every ready trigger, by trigger key.
#[derive(Debug)]
pub struct Dispatchers {
    log: Arc<dyn EventLog>,
    transport: Arc<dyn Transport>,
    /// A Mutex<HashMap> rather than a `DashMap`: it is locked when a trigger, flow or
    /// source is reconciled or deleted, a deliveries view is read and the metrics are
    /// scraped, never per event (each dispatcher's loop owns its own state), so nothing
    /// contends for it; and `render_metrics` and `views` want one consistent view of
    /// every dispatcher, which shards locked one at a time would not give.
    running: Mutex<HashMap<String, Running>>,
}

impl Dispatchers {
    pub fn new(log: Arc<dyn EventLog>, transport: Arc<dyn Transport>) -> Arc<Self> {
        Arc::new(Self {
            log,
            transport,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a dispatcher for `key` with `spec`. The group is subscribed before this
    /// returns, so events posted after a trigger is ready reach it.
    pub async fn ensure(&self, key: &str, spec: DispatchSpec) -> Result<(), LogError> {
        self.ensure_on(key, spec, self.log.clone(), InitialOffset::Latest)
            .await
    }

    /// Run a dispatcher reading another log (a KafkaSource's cluster), its group
    /// starting at `initial` when it has no committed offset. Replies, if the spec
    /// keeps any, are stored in this log.
    pub async fn ensure_on(
        &self,
        key: &str,
        spec: DispatchSpec,
        log: Arc<dyn EventLog>,
        initial: InitialOffset,
    ) -> Result<(), LogError> {
        if self
            .lock()
            .get(key)
            .is_some_and(|r| r.spec == spec && Arc::ptr_eq(&r.log, &log) && !r.task.is_finished())
        {
            return Ok(());
        }
        let sub = log
            .subscribe_as(&spec.topic, &spec.group, key, initial)
            .await?;
        let metrics = self
            .lock()
            .get(key)
            .map(|r| r.metrics.clone())
            .unwrap_or_default();
        let task = tokio::spawn(run::run(
            self.log.clone(),
            self.transport.clone(),
            spec.clone(),
            metrics.clone(),
            sub,
        ));
        let running = Running {
            spec,
            log,
            task,
            metrics,
        };
        if let Some(old) = self.lock().insert(key.to_owned(), running) {
            old.task.abort();
        }
        tracing::info!(dispatcher = %key, "dispatcher started");
        Ok(())
    }

    pub fn stop(&self, key: &str) {
        if let Some(r) = self.lock().remove(key) {
            r.task.abort();
            tracing::info!(dispatcher = %key, "dispatcher stopped");
        }
    }

    /// Stop the dispatcher of a deleted trigger and delete its consumer group, as
    /// Knative does, so that no committed offset is left behind. The group goes in the
    /// background once the dispatcher has ended (so that no commit of its comes after;
    /// Kafka may also wait for the group to empty); the handle says when it is gone.
    pub fn forget(&self, key: &str) -> Option<JoinHandle<()>> {
        let r = self.lock().remove(key)?;
        r.task.abort();
        tracing::info!(dispatcher = %key, "dispatcher stopped");
        let key = key.to_owned();
        Some(tokio::spawn(async move {
            // Aborted: this returns once the task, and its reader, are dropped.
            let _ = r.task.await;
            match r.log.delete_group(&r.spec.topic, &r.spec.group).await {
                Ok(()) => {
                    tracing::info!(dispatcher = %key, group = %r.spec.group, "consumer group deleted")
                }
                Err(e) => tracing::warn!(
                    dispatcher = %key,
                    group = %r.spec.group,
                    error = %e,
                    "deleting the consumer group failed: its committed offsets stay in the log"
                ),
            }
        }))
    }

    /// Stop the dispatchers whose key `stop` picks; returns what they were doing.
    pub fn stop_where(&self, stop: impl Fn(&str) -> bool) -> Vec<DispatchSpec> {
        let mut stopped = Vec::new();
        self.lock().retain(|k, r| {
            let stopping = stop(k);
            if stopping {
                r.task.abort();
                tracing::info!(dispatcher = %k, "dispatcher stopped");
                stopped.push(r.spec.clone());
            }
            !stopping
        });
        stopped
    }

    /// Stop the dispatchers whose key is not in `keep`.
    pub fn retain(&self, keep: &[String]) {
        self.lock().retain(|k, r| {
            let kept = keep.contains(k);
            if !kept {
                r.task.abort();
            }
            kept
        });
    }

    /// What the dispatchers whose key `pick` takes are doing, by key.
    pub fn views(
        &self,
        pick: impl Fn(&str) -> bool,
    ) -> Vec<(String, DispatchSpec, Arc<TriggerMetrics>)> {
        let mut views: Vec<_> = self
            .lock()
            .iter()
            .filter(|(k, _)| pick(k))
            .map(|(k, r)| (k.clone(), r.spec.clone(), r.metrics.clone()))
            .collect();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        views
    }

    /// The counters of the trigger `key`, while it has a dispatcher.
    pub fn metrics(&self, key: &str) -> Option<Arc<TriggerMetrics>> {
        self.lock().get(key).map(|r| r.metrics.clone())
    }

    /// Prometheus text for every running dispatcher.
    pub fn render_metrics(&self, out: &mut String) {
        let running = self.lock();
        let mut keys: Vec<_> = running.keys().collect();
        keys.sort();
        metrics::render(
            out,
            keys.into_iter().map(|k| (k.as_str(), &*running[k].metrics)),
        );
    }
}
