//! The loop of one trigger's dispatcher: read, filter, deliver, commit.
//!
//! Unordered, up to [`DEFAULT_PARALLELISM`] events are in flight at once. Ordered, each
//! partition has one event in flight and the rest wait behind it, so events with the
//! same partition key reach the subscriber in the order they were accepted. Either way
//! a partition's offset is committed only up to the first event not yet finished.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::metrics::TriggerMetrics;
use super::{DispatchSpec, Records, ReplyTo, DEFAULT_PARALLELISM};
use crate::cloudevent::kafka_record::{self, RecordOrigin};
use crate::cloudevent::{kafka_binding, CloudEvent};
use crate::delivery::{deliver, Outcome, Transport};
use crate::offsets::OffsetTracker;
use crate::{Delivery, EventLog, Position, Subscription, CHANNEL_PREFIX};

/// Ordered: events read ahead of delivery, across partitions, before reading pauses.
const ORDERED_READ_AHEAD: usize = 1_000;

/// A delivery task's report: which event, read in which epoch of its partition.
#[derive(Debug)]
struct Finished {
    position: Position,
    epoch: u64,
}

#[derive(Debug)]
struct PartitionState {
    /// Bumped when the partition is rewound (it went to another group member and came
    /// back): reports from before belong to a tracker that no longer exists.
    epoch: u64,
    tracker: OffsetTracker,
    /// Ordered delivery: the events waiting behind the one in flight.
    waiting: VecDeque<(Position, CloudEvent)>,
    busy: bool,
}

impl PartitionState {
    fn new(epoch: u64) -> Self {
        Self {
            epoch,
            tracker: OffsetTracker::new(),
            waiting: VecDeque::new(),
            busy: false,
        }
    }
}

pub(super) struct Dispatch {
    log: Arc<dyn EventLog>,
    transport: Arc<dyn Transport>,
    spec: Arc<DispatchSpec>,
    metrics: Arc<TriggerMetrics>,
    done: mpsc::UnboundedSender<Finished>,
    partitions: HashMap<i32, PartitionState>,
    epochs: u64,
    in_flight: usize,
    read_ahead: usize,
}

pub(super) async fn run(
    log: Arc<dyn EventLog>,
    transport: Arc<dyn Transport>,
    spec: DispatchSpec,
    metrics: Arc<TriggerMetrics>,
    mut sub: Box<dyn Subscription>,
) {
    let (done, mut finished) = mpsc::unbounded_channel();
    let mut d = Dispatch {
        log,
        transport,
        spec: Arc::new(spec),
        metrics,
        done,
        partitions: HashMap::new(),
        epochs: 0,
        in_flight: 0,
        read_ahead: 0,
    };
    loop {
        let may_read = if d.spec.ordered {
            d.read_ahead < ORDERED_READ_AHEAD
        } else {
            d.in_flight < DEFAULT_PARALLELISM
        };
        tokio::select! {
            Some(f) = finished.recv() => d.finish(f, &mut *sub).await,
            // Completions keep committing while reading waits for room.
            next = sub.next(), if may_read => match next {
                Ok(delivery) => d.accept(delivery, &mut *sub).await,
                Err(e) => {
                    tracing::warn!(topic = %d.spec.topic, group = %d.spec.group, error = %e, "reading the log failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    }
}

impl Dispatch {
    async fn accept(&mut self, delivery: Delivery, sub: &mut dyn Subscription) {
        self.metrics.count(&self.metrics.received);
        let position = delivery.position;
        let epochs = &mut self.epochs;
        let state = self
            .partitions
            .entry(position.partition)
            .or_insert_with(|| {
                *epochs += 1;
                PartitionState::new(*epochs)
            });
        if state
            .tracker
            .highest()
            .is_some_and(|h| position.offset <= h)
        {
            // The partition was rewound to its last commit: what waited is read again.
            self.epochs += 1;
            self.read_ahead -= state.waiting.len();
            *state = PartitionState::new(self.epochs);
        }
        state.tracker.start(position.offset);
        let decoded = match &self.spec.records {
            Records::CloudEvents => kafka_binding::from_record(&delivery.record),
            Records::Foreign { source, key_type } => kafka_record::from_foreign_record(
                &delivery.record,
                &RecordOrigin {
                    source,
                    position,
                    timestamp_ms: delivery.timestamp_ms,
                    key_type: *key_type,
                },
            ),
        };
        let event = match decoded {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(topic = %self.spec.topic, ?position, error = %e, "skipping a record that is not a CloudEvent");
                self.metrics.count(&self.metrics.malformed);
                return self.done_with(position, sub).await;
            }
        };
        if !self.spec.filter.matches(&event) {
            self.metrics.count(&self.metrics.filtered);
            return self.done_with(position, sub).await;
        }
        if self.spec.ordered {
            state.waiting.push_back((position, event));
            self.read_ahead += 1;
            self.start_next(position.partition);
        } else {
            let epoch = state.epoch;
            self.spawn(position, epoch, event);
        }
    }

    /// An event that needed no delivery is done at once.
    async fn done_with(&mut self, position: Position, sub: &mut dyn Subscription) {
        if let Some(state) = self.partitions.get_mut(&position.partition) {
            if let Some(upto) = state.tracker.complete(position.offset) {
                commit(sub, &self.spec, position.partition, upto).await;
            }
        }
    }

    async fn finish(&mut self, f: Finished, sub: &mut dyn Subscription) {
        self.in_flight -= 1;
        let partition = f.position.partition;
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.epoch != f.epoch {
            return;
        }
        state.busy = false;
        if let Some(upto) = state.tracker.complete(f.position.offset) {
            commit(sub, &self.spec, partition, upto).await;
        }
        if self.spec.ordered {
            self.start_next(partition);
        }
    }

    /// Ordered: deliver the partition's next waiting event unless one is in flight.
    fn start_next(&mut self, partition: i32) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.busy {
            return;
        }
        let Some((position, event)) = state.waiting.pop_front() else {
            return;
        };
        state.busy = true;
        self.read_ahead -= 1;
        let epoch = state.epoch;
        self.spawn(position, epoch, event);
    }

    fn spawn(&mut self, position: Position, epoch: u64, event: CloudEvent) {
        self.in_flight += 1;
        let (log, transport, spec, metrics, done) = (
            self.log.clone(),
            self.transport.clone(),
            self.spec.clone(),
            self.metrics.clone(),
            self.done.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = deliver(
                &*transport,
                &event,
                &spec.subscriber,
                spec.dead_letter.as_deref(),
                &spec.policy,
            )
            .await;
            match &outcome {
                Outcome::Delivered { reply: Some(reply) } => {
                    // A reply is not lost either: the event counts as done only once
                    // its reply is stored or delivered.
                    if forward_reply(&*log, &*transport, &spec, reply).await {
                        metrics.count(&metrics.replies);
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
            metrics.finished(&outcome, started.elapsed(), &event.id);
            let _ = done.send(Finished { position, epoch });
        });
    }
}

async fn commit(sub: &mut dyn Subscription, spec: &DispatchSpec, partition: i32, offset: i64) {
    if let Err(e) = sub.commit(Position { partition, offset }).await {
        tracing::warn!(topic = %spec.topic, group = %spec.group, partition, offset, error = %e, "committing failed; the events since the last commit will be delivered again");
    }
}

/// Send a reply where the spec says; whether it went anywhere.
async fn forward_reply(
    log: &dyn EventLog,
    transport: &dyn Transport,
    spec: &DispatchSpec,
    reply: &CloudEvent,
) -> bool {
    let topic = match &spec.reply {
        ReplyTo::Drop => return false,
        ReplyTo::SameTopic => &spec.topic,
        ReplyTo::Topic(t) => t,
        ReplyTo::Url(url) => {
            let outcome = deliver(
                transport,
                reply,
                url,
                spec.dead_letter.as_deref(),
                &spec.policy,
            )
            .await;
            if let Outcome::Dropped { reason } = &outcome {
                tracing::error!(group = %spec.group, id = %reply.id, %reason, "reply dropped: out of retries and no dead-letter sink took it");
            }
            return matches!(outcome, Outcome::Delivered { .. });
        }
    };
    let record = if topic.starts_with(CHANNEL_PREFIX) {
        // The next hop of a flow: the reply carries the path so far.
        let mut reply = reply.clone();
        reply.add_history(topic);
        kafka_binding::to_record(&reply)
    } else {
        kafka_binding::to_record(reply)
    };
    match log.append(topic, vec![record]).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(%topic, error = %e, "storing a reply failed");
            false
        }
    }
}
