//! One dispatcher per trigger: consume the broker's topic as the trigger's group,
//! filter, deliver (bounded parallelism, or one at a time when ordered), put replies
//! back into the broker, and commit an offset only once every event up to it was
//! delivered, dead-lettered or filtered out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::cloudevent::kafka_binding;
use crate::delivery::{deliver, DeliveryPolicy, Outcome, Transport};
use crate::filter::Filter;
use crate::offsets::OffsetTracker;
use crate::{EventLog, InitialOffset, LogError, Position};

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
    }
}

#[derive(Debug)]
struct Running {
    spec: DispatchSpec,
    task: JoinHandle<()>,
}

/// The dispatchers of every ready trigger, by trigger key.
#[derive(Debug)]
pub struct Dispatchers {
    log: Arc<dyn EventLog>,
    transport: Arc<dyn Transport>,
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
        if self
            .lock()
            .get(key)
            .is_some_and(|r| r.spec == spec && !r.task.is_finished())
        {
            return Ok(());
        }
        let sub = self
            .log
            .subscribe(&spec.topic, &spec.group, InitialOffset::Latest)
            .await?;
        let task = tokio::spawn(run(
            self.log.clone(),
            self.transport.clone(),
            spec.clone(),
            sub,
        ));
        if let Some(old) = self.lock().insert(key.to_owned(), Running { spec, task }) {
            old.task.abort();
        }
        tracing::info!(trigger = %key, "dispatcher started");
        Ok(())
    }

    pub fn stop(&self, key: &str) {
        if let Some(r) = self.lock().remove(key) {
            r.task.abort();
            tracing::info!(trigger = %key, "dispatcher stopped");
        }
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
}

async fn run(
    log: Arc<dyn EventLog>,
    transport: Arc<dyn Transport>,
    spec: DispatchSpec,
    mut sub: Box<dyn crate::Subscription>,
) {
    let parallelism = if spec.ordered { 1 } else { DEFAULT_PARALLELISM };
    let slots = Arc::new(Semaphore::new(parallelism));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Position>();
    let mut tracker = OffsetTracker::new();
    loop {
        tokio::select! {
            Some(position) = done_rx.recv() => {
                if let Some(upto) = tracker.complete(position.offset) {
                    let _ = sub.commit(Position { partition: position.partition, offset: upto }).await;
                }
            }
            // Reading stops while every slot is taken; completions still commit.
            next = sub.next(), if slots.available_permits() > 0 => {
                let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                let delivery = match next {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(topic = %spec.topic, group = %spec.group, error = %e, "reading the log failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        continue;
                    }
                };
                tracker.start(delivery.position.offset);
                let event = match kafka_binding::from_record(&delivery.record) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(topic = %spec.topic, offset = delivery.position.offset, error = %e, "skipping a record that is not a CloudEvent");
                        let _ = done_tx.send(delivery.position);
                        continue;
                    }
                };
                if !spec.filter.matches(&event) {
                    let _ = done_tx.send(delivery.position);
                    continue;
                }
                let (log, transport, spec, done) = (log.clone(), transport.clone(), spec.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let outcome = deliver(&*transport, &event, &spec.subscriber, spec.dead_letter.as_deref(), &spec.policy).await;
                    match outcome {
                        Outcome::Delivered { reply: Some(reply) } => {
                            // A reply goes back into the broker, and is not lost either.
                            let record = kafka_binding::to_record(&reply);
                            if let Err(e) = log.append(&spec.topic, vec![record]).await {
                                tracing::warn!(topic = %spec.topic, error = %e, "storing a reply failed");
                            }
                        }
                        Outcome::Delivered { reply: None } => {}
                        Outcome::DeadLettered { status } => {
                            tracing::info!(group = %spec.group, id = %event.id, ?status, "event dead-lettered");
                        }
                        Outcome::Dropped { reason } => {
                            tracing::error!(group = %spec.group, id = %event.id, %reason, "event dropped: out of retries and no dead-letter sink took it");
                        }
                    }
                    let _ = done.send(delivery.position);
                });
            }
        }
    }
}
