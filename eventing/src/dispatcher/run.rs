//! The loop of one trigger's dispatcher: read, filter, deliver, commit.
//!
//! Unordered, up to [`DEFAULT_PARALLELISM`] events are in flight at once. Ordered, each
//! partition has one event in flight and the rest wait behind it, so events with the
//! same partition key reach the subscriber in the order they were accepted. Either way
//! a partition's offset is committed only up to the first event not yet finished, and
//! an event whose subscriber replied is finished only once its reply is stored (or the
//! event dead-lettered): see [`store_reply`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::metrics::TriggerMetrics;
use super::{DispatchSpec, Records, ReplyTo, DEFAULT_PARALLELISM};
use crate::cloudevent::kafka_record::{self, RecordOrigin};
use crate::cloudevent::{kafka_binding, CloudEvent};
use crate::delivery::{
    deliver, to_dead_letter_sink, with_error_extensions, Attempt, Destination, Outcome, Transport,
};
use crate::offsets::OffsetTracker;
use crate::{Delivery, EventLog, Position, Record, Subscription, CHANNEL_PREFIX};

/// Ordered: events read ahead of delivery, across partitions, before reading pauses.
const ORDERED_READ_AHEAD: usize = 1_000;

/// Between two rounds of attempts to store a reply the log keeps refusing: at least
/// this long, so that a log that is down is not hammered...
const REPLY_PAUSE_MIN: Duration = Duration::from_secs(1);
/// ...and at most this long, so that it is stored soon after the log is back.
const REPLY_PAUSE_MAX: Duration = Duration::from_secs(30);

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

/// The spec's URLs, parsed once for the dispatcher's life rather than at each attempt.
#[derive(Debug)]
struct Destinations {
    subscriber: Destination,
    dead_letter: Option<Destination>,
    /// Where replies go when the spec's `reply` is a URL (and only then).
    reply: Option<Destination>,
}

impl Destinations {
    fn of(spec: &DispatchSpec) -> Self {
        Self {
            subscriber: Destination::new(&spec.subscriber),
            dead_letter: spec.dead_letter.as_deref().map(Destination::new),
            reply: match &spec.reply {
                ReplyTo::Url(url) => Some(Destination::new(url)),
                _ => None,
            },
        }
    }
}

pub(super) struct Dispatch {
    log: Arc<dyn EventLog>,
    transport: Arc<dyn Transport>,
    spec: Arc<DispatchSpec>,
    to: Arc<Destinations>,
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
        to: Arc::new(Destinations::of(&spec)),
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
        let (log, transport, spec, to, metrics, done) = (
            self.log.clone(),
            self.transport.clone(),
            self.spec.clone(),
            self.to.clone(),
            self.metrics.clone(),
            self.done.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = deliver(
                &*transport,
                &event,
                &to.subscriber,
                to.dead_letter.as_ref(),
                &spec.policy,
            )
            .await;
            let (outcome, why) = match outcome {
                Outcome::Delivered { reply: Some(reply) } => tokio::select! {
                    forwarded = forward_reply(&*log, &*transport, &spec, &to, &metrics, &event, reply) => forwarded,
                    // The dispatcher stopped while the reply waited for the log: the
                    // event stays uncommitted, and the group's next reader delivers it
                    // again.
                    () = done.closed() => return,
                },
                outcome => (outcome, None),
            };
            match &outcome {
                Outcome::Delivered { .. } => {}
                Outcome::DeadLettered { status } => {
                    tracing::info!(group = %spec.group, id = %event.id, ?status, why = why.as_deref(), "event dead-lettered");
                }
                Outcome::Dropped { reason } => {
                    tracing::error!(group = %spec.group, id = %event.id, %reason, "event dropped: out of retries and no dead-letter sink took it");
                }
            }
            metrics.finished_because(&outcome, why, started.elapsed(), &event.id);
            let _ = done.send(Finished { position, epoch });
        });
    }
}

async fn commit(sub: &mut dyn Subscription, spec: &DispatchSpec, partition: i32, offset: i64) {
    if let Err(e) = sub.commit(Position { partition, offset }).await {
        tracing::warn!(topic = %spec.topic, group = %spec.group, partition, offset, error = %e, "committing failed; the events since the last commit will be delivered again");
    }
}

/// Send a reply where the spec says. The event's outcome is delivered, unless its
/// reply could not be stored and the event was dead-lettered instead (with why).
async fn forward_reply(
    log: &dyn EventLog,
    transport: &dyn Transport,
    spec: &DispatchSpec,
    to: &Destinations,
    metrics: &TriggerMetrics,
    event: &CloudEvent,
    reply: Box<CloudEvent>,
) -> (Outcome, Option<String>) {
    if let Some(destination) = &to.reply {
        // A destination of the user's, delivered to as the event was.
        let outcome = deliver(
            transport,
            &reply,
            destination,
            to.dead_letter.as_ref(),
            &spec.policy,
        )
        .await;
        match &outcome {
            Outcome::Delivered { .. } => metrics.count(&metrics.replies),
            Outcome::DeadLettered { .. } => {}
            Outcome::Dropped { reason } => {
                tracing::error!(group = %spec.group, id = %reply.id, %reason, "reply dropped: out of retries and no dead-letter sink took it");
            }
        }
        return (Outcome::Delivered { reply: Some(reply) }, None);
    }
    let topic = match &spec.reply {
        // A URL was sent to above, as `to.reply`.
        ReplyTo::Drop | ReplyTo::Url(_) => {
            return (Outcome::Delivered { reply: Some(reply) }, None)
        }
        ReplyTo::SameTopic => &spec.topic,
        ReplyTo::Topic(t) => t,
    };
    let record = if topic.starts_with(CHANNEL_PREFIX) {
        // The next hop of a flow: the reply carries the path so far.
        let mut reply = reply.clone();
        reply.add_history(topic);
        kafka_binding::to_record(&reply)
    } else {
        kafka_binding::to_record(&reply)
    };
    match store_reply(
        log,
        transport,
        spec,
        to.dead_letter.as_ref(),
        metrics,
        event,
        topic,
        record,
    )
    .await
    {
        None => (Outcome::Delivered { reply: Some(reply) }, None),
        Some(why) => (Outcome::DeadLettered { status: None }, Some(why)),
    }
}

/// Store a reply in `topic` (the broker's, or a flow's next channel), retried as the
/// delivery policy retries a delivery. Returns once it is stored (`None`), or once the
/// event went to the dead-letter sink because it could not be (why).
///
/// Knative's Kafka dispatcher treats a reply it could not send on like a failed
/// delivery: the event goes to the dead-letter sink, and when there is none, or the
/// sink refuses it too, the offset is committed anyway and the event is lost. Here a
/// log that refuses the reply is this platform's failure, not the subscriber's, and an
/// accepted event is never lost: without a sink that takes it, the event stays
/// uncommitted (holding back the commits after it) and its reply is tried again, round
/// after round of the policy's attempts, until the log takes it or the dispatcher
/// stops (the group's next reader then delivers the event again).
#[allow(clippy::too_many_arguments)]
async fn store_reply(
    log: &dyn EventLog,
    transport: &dyn Transport,
    spec: &DispatchSpec,
    dead_letter: Option<&Destination>,
    metrics: &TriggerMetrics,
    event: &CloudEvent,
    topic: &str,
    record: Record,
) -> Option<String> {
    let policy = &spec.policy;
    let mut waiting = None;
    let mut round = 0u32;
    loop {
        round = round.saturating_add(1);
        let mut failure = String::new();
        for attempt in 0..=policy.retry {
            if attempt > 0 {
                tokio::time::sleep(policy.backoff(attempt)).await;
            }
            match log.append(topic, vec![record.clone()]).await {
                Ok(_) => {
                    metrics.count(&metrics.replies);
                    return None;
                }
                Err(e) => {
                    metrics.count(&metrics.reply_failures);
                    tracing::warn!(group = %spec.group, id = %event.id, %topic, error = %e, "storing a reply failed");
                    failure = e.to_string();
                }
            }
        }
        let why = format!("its reply could not be stored in {topic}: {failure}");
        if let Some(dls) = dead_letter {
            let dead = with_error_extensions(
                event,
                topic,
                &Attempt::Failed {
                    reason: why.clone(),
                },
            );
            if to_dead_letter_sink(transport, &dead, dls, policy).await {
                return Some(why);
            }
        }
        let pause = policy
            .backoff(policy.retry.saturating_add(round))
            .clamp(REPLY_PAUSE_MIN, REPLY_PAUSE_MAX);
        tracing::error!(group = %spec.group, id = %event.id, %why, retry_in = ?pause, "the event stays uncommitted until its reply is stored");
        waiting.get_or_insert_with(|| Waiting::new(metrics));
        tokio::time::sleep(pause).await;
    }
}

/// Counts an event in `replies_waiting` while it lives.
struct Waiting<'m>(&'m TriggerMetrics);

impl<'m> Waiting<'m> {
    fn new(metrics: &'m TriggerMetrics) -> Self {
        metrics.replies_waiting.fetch_add(1, Ordering::Relaxed);
        Self(metrics)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.replies_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;
    use paas_api::eventing::BackoffPolicy;

    use super::*;
    use crate::delivery::tests::{status, Scripted};
    use crate::delivery::{DeliveryPolicy, ERROR_CODE, ERROR_DATA, ERROR_DEST};
    use crate::filter::Filter;
    use crate::{InitialOffset, LogError};

    /// A log whose appends fail `refusals` times, then succeed; it records when each
    /// append was tried.
    #[derive(Debug)]
    struct Refusing {
        refusals: AtomicUsize,
        tried: Mutex<Vec<tokio::time::Instant>>,
        stored: Mutex<Vec<(String, Record)>>,
    }

    impl Refusing {
        fn new(refusals: usize) -> Self {
            Self {
                refusals: AtomicUsize::new(refusals),
                tried: Mutex::new(Vec::new()),
                stored: Mutex::new(Vec::new()),
            }
        }

        fn gaps(&self) -> Vec<Duration> {
            let tried = self.tried.lock().unwrap();
            tried.windows(2).map(|w| w[1] - w[0]).collect()
        }
    }

    #[async_trait]
    impl EventLog for Refusing {
        async fn ensure_topic(&self, _: &str) -> Result<(), LogError> {
            Ok(())
        }

        async fn delete_topic(&self, _: &str) -> Result<(), LogError> {
            Ok(())
        }

        async fn append(
            &self,
            topic: &str,
            records: Vec<Record>,
        ) -> Result<Vec<Position>, LogError> {
            self.tried.lock().unwrap().push(tokio::time::Instant::now());
            let refused = self
                .refusals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if refused {
                return Err(LogError::Backend {
                    topic: topic.to_owned(),
                    message: "the disk is full".into(),
                });
            }
            let mut stored = self.stored.lock().unwrap();
            stored.extend(records.into_iter().map(|r| (topic.to_owned(), r)));
            Ok(vec![])
        }

        async fn subscribe(
            &self,
            topic: &str,
            _: &str,
            _: InitialOffset,
        ) -> Result<Box<dyn Subscription>, LogError> {
            Err(LogError::NoSuchTopic {
                topic: topic.to_owned(),
            })
        }

        async fn delete_group(&self, _: &str, _: &str) -> Result<(), LogError> {
            Ok(())
        }
    }

    fn spec(retry: u32, dead_letter: Option<&str>) -> DispatchSpec {
        DispatchSpec {
            topic: "knative-channel-ns-step-0".into(),
            group: "g".into(),
            filter: Arc::new(Filter::Everything),
            subscriber: "http://step/".into(),
            dead_letter: dead_letter.map(str::to_owned),
            policy: DeliveryPolicy {
                retry,
                backoff: BackoffPolicy::Linear,
                delay: Duration::from_millis(100),
                ..DeliveryPolicy::default()
            },
            ordered: false,
            reply: ReplyTo::Topic(NEXT.into()),
            records: Records::CloudEvents,
        }
    }

    const NEXT: &str = "knative-channel-ns-step-1";

    async fn store(
        log: &Refusing,
        t: &Scripted,
        spec: &DispatchSpec,
        m: &TriggerMetrics,
    ) -> Option<String> {
        let event = CloudEvent::new("e-1", "/s", "t");
        let record = Record {
            value: Bytes::from_static(b"reply"),
            ..Record::default()
        };
        let dead_letter = spec.dead_letter.as_deref().map(Destination::new);
        store_reply(log, t, spec, dead_letter.as_ref(), m, &event, NEXT, record).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_reply_is_retried_with_the_delivery_policys_backoff() {
        let log = Refusing::new(2);
        let t = Scripted::new(vec![]);
        let m = TriggerMetrics::default();
        assert_eq!(store(&log, &t, &spec(3, None), &m).await, None);
        assert_eq!(log.stored.lock().unwrap().len(), 1, "stored once");
        assert_eq!(
            log.gaps(),
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!((get(&m.reply_failures), get(&m.replies)), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_retries_the_event_goes_to_the_dead_letter_sink_with_why() {
        let log = Refusing::new(usize::MAX);
        let t = Scripted::new(vec![]);
        let m = TriggerMetrics::default();
        let why = store(&log, &t, &spec(2, Some("http://dls/")), &m)
            .await
            .expect("dead-lettered");
        assert!(
            why.contains(NEXT) && why.contains("the disk is full"),
            "{why}"
        );
        assert_eq!(log.tried.lock().unwrap().len(), 3, "the policy's attempts");
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (url, _, dead) = &seen[0];
        assert_eq!(url, "http://dls/");
        assert_eq!(dead.id, "e-1", "the event itself, as Knative sends it");
        assert_eq!(dead.attribute(ERROR_DEST).as_deref(), Some(NEXT));
        assert_eq!(dead.attribute(ERROR_CODE).as_deref(), Some("0"));
        assert!(dead.attribute(ERROR_DATA).is_some());
        assert_eq!(m.reply_failures.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_sink_that_takes_it_the_event_waits_round_after_round_until_stored() {
        // Two rounds of three attempts fail; the dead-letter sink refuses the event
        // both times (a final 400).
        let log = Arc::new(Refusing::new(6));
        let t = Arc::new(Scripted::new(vec![status(400), status(400)]));
        let m = Arc::new(TriggerMetrics::default());
        let s = spec(2, Some("http://dls/"));
        let storing = tokio::spawn({
            let (log, t, m) = (log.clone(), t.clone(), m.clone());
            async move { store(&log, &t, &s, &m).await }
        });
        // On the paused clock the first round ends at 300 ms (attempts at 0, 100 and
        // 300 ms), and the pause after it lasts REPLY_PAUSE_MIN.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(log.tried.lock().unwrap().len(), 3, "one round so far");
        assert_eq!(
            m.replies_waiting.load(Ordering::Relaxed),
            1,
            "held, counted"
        );
        assert_eq!(storing.await.unwrap(), None, "stored in the end");
        assert_eq!(log.stored.lock().unwrap().len(), 1);
        assert_eq!(log.tried.lock().unwrap().len(), 7);
        let gaps = log.gaps();
        // Within a round, the policy's backoff; between rounds, a pause of at least
        // REPLY_PAUSE_MIN.
        assert_eq!(gaps[0], Duration::from_millis(100));
        assert_eq!(gaps[1], Duration::from_millis(200));
        assert!(gaps[2] >= REPLY_PAUSE_MIN, "{gaps:?}");
        assert!(gaps[5] >= REPLY_PAUSE_MIN, "{gaps:?}");
        assert_eq!(
            t.seen.lock().unwrap().len(),
            2,
            "the sink was asked each round"
        );
        assert_eq!(m.replies_waiting.load(Ordering::Relaxed), 0);
        assert_eq!(m.reply_failures.load(Ordering::Relaxed), 6);
    }
}
