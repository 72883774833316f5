//! The dispatcher suite, run on both event log backends (the embedded log, and Kafka
//! through a real tansu broker): filtering, retries, dead letters, replies, ordering,
//! and nothing lost. Subscribers are real HTTP servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paas_api::eventing::{TriggerFilter, TriggerSpec};
use paas_eventing::cloudevent::{from_http, kafka_binding, CloudEvent, ExtensionValue};
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Dispatchers, Records, ReplyTo};
use paas_eventing::filter::Filter;
use paas_eventing::transport::HttpTransport;
use paas_eventing::{EventLog, InitialOffset, LogError, Position, Record, Subscription};
use support::{fresh_log, Backend};
use tokio::net::TcpListener;

/// What a subscriber does with the n-th request it gets.
type Behaviour = Arc<dyn Fn(usize, &CloudEvent) -> Response<Full<Bytes>> + Send + Sync>;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<CloudEvent>>>);

impl Seen {
    fn ids(&self) -> HashSet<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }
}

async fn subscriber(behaviour: Behaviour) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let count = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (s, behaviour, count) = (s.clone(), behaviour.clone(), count.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (s, behaviour, count) = (s.clone(), behaviour.clone(), count.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let event = from_http(&parts.headers, body).unwrap().remove(0);
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        let resp = behaviour(n, &event);
                        if resp.status().is_success() {
                            s.0.lock().unwrap().push(event);
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A 200 whose body is a reply: a "receipt" event for `e`, with id `receipt-{e.id}`.
fn receipt(e: &CloudEvent) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    let h = r.headers_mut();
    h.insert("ce-specversion", "1.0".parse().unwrap());
    h.insert("ce-id", format!("receipt-{}", e.id).parse().unwrap());
    h.insert("ce-source", "/first".parse().unwrap());
    h.insert("ce-type", "receipt".parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    r
}

fn status(s: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::from_u16(s).unwrap();
    r
}

fn event(i: usize, ty: &str) -> CloudEvent {
    CloudEvent::new(format!("e-{i}"), "/tests", ty)
}

fn spec(
    topic: &str,
    subscriber: SocketAddr,
    ty: Option<&str>,
    dead_letter: Option<SocketAddr>,
) -> DispatchSpec {
    let trigger = TriggerSpec {
        filter: ty.map(|t| TriggerFilter {
            attributes: [("type".to_owned(), t.to_owned())].into(),
        }),
        ..TriggerSpec::default()
    };
    DispatchSpec {
        topic: topic.to_owned(),
        group: format!("g-{subscriber}"),
        filter: Arc::new(Filter::of_trigger(&trigger).unwrap()),
        subscriber: format!("http://{subscriber}/"),
        dead_letter: dead_letter.map(|a| format!("http://{a}/")),
        policy: DeliveryPolicy {
            retry: 5,
            delay: Duration::from_millis(10),
            ..DeliveryPolicy::default()
        },
        ordered: false,
        reply: ReplyTo::SameTopic,
        records: Records::CloudEvents,
    }
}

async fn wait_for(seen: &Seen, n: usize) {
    for _ in 0..500 {
        if seen.0.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "only {} of {n} events arrived",
        seen.0.lock().unwrap().len()
    );
}

/// Wait, bounded, until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 30 s: {what}");
}

/// The log, except that appends to one topic are refused while `refusals` lasts: a
/// flow's next hop whose log fails for a while.
#[derive(Debug)]
struct RefusingAppends {
    inner: Arc<dyn EventLog>,
    topic: String,
    refusals: AtomicUsize,
}

impl RefusingAppends {
    fn new(inner: Arc<dyn EventLog>, topic: &str, refusals: usize) -> Arc<Self> {
        Arc::new(Self {
            inner,
            topic: topic.to_owned(),
            refusals: AtomicUsize::new(refusals),
        })
    }
}

#[async_trait]
impl EventLog for RefusingAppends {
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        self.inner.ensure_topic(topic).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        self.inner.delete_topic(topic).await
    }

    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>, LogError> {
        let refused = topic == self.topic
            && self
                .refusals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if refused {
            return Err(LogError::Backend {
                topic: topic.to_owned(),
                message: "refused by the test".into(),
            });
        }
        self.inner.append(topic, records).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.inner.subscribe(topic, group, initial).await
    }

    async fn subscribe_as(
        &self,
        topic: &str,
        group: &str,
        reader: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.inner.subscribe_as(topic, group, reader, initial).await
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), LogError> {
        self.inner.delete_group(topic, group).await
    }
}

/// A fresh log with a topic and its next hop (`{topic}-next`), and the same log
/// refusing `refusals` appends to the next hop.
async fn two_hops(
    backend: Backend,
    test: &str,
    refusals: usize,
) -> (Arc<dyn EventLog>, String, String, Arc<RefusingAppends>) {
    let (log, topic) = fresh_log(backend, test).await;
    let next = format!("{topic}-next");
    log.ensure_topic(&next).await.unwrap();
    let refusing = RefusingAppends::new(log.clone(), &next, refusals);
    (log, topic, next, refusing)
}

/// Append events `e-0` to `e-{n-1}` to `topic`.
async fn append_events(log: &dyn EventLog, topic: &str, n: usize) {
    let records = (0..n)
        .map(|i| kafka_binding::to_record(&event(i, "t")))
        .collect();
    log.append(topic, records).await.unwrap();
}

/// A flow step (its reply goes into the topic `next`) on `topic`, whose subscriber
/// answers each event with a receipt; the dispatchers store replies through `log`.
async fn step(topic: &str, next: &str, dead_letter: Option<SocketAddr>) -> (DispatchSpec, Seen) {
    let (addr, seen) = subscriber(Arc::new(|_, e: &CloudEvent| receipt(e))).await;
    let mut s = spec(topic, addr, None, dead_letter);
    s.reply = ReplyTo::Topic(next.to_owned());
    s.policy.retry = 2;
    s.policy.delay = Duration::from_millis(1);
    (s, seen)
}

/// The ids of the first `n` events in `topic`, read from its start.
async fn read_ids(log: &dyn EventLog, topic: &str, n: usize) -> HashSet<String> {
    let mut sub = log
        .subscribe(topic, &format!("{topic}-reader"), InitialOffset::Earliest)
        .await
        .unwrap();
    let mut ids = HashSet::new();
    while ids.len() < n {
        let d = support::next(&mut sub).await;
        ids.insert(kafka_binding::from_record(&d.record).unwrap().id);
    }
    ids
}

async fn every_reply_reaches_the_next_hop_while_its_appends_fail_for_a_while(backend: Backend) {
    // 50 events, 3 attempts each per round: most of them go through a second round.
    let (log, topic, next, refusing) = two_hops(backend, "refused", 120).await;
    let dispatchers = Dispatchers::new(refusing.clone(), Arc::new(HttpTransport::new()));
    let (s, _) = step(&topic, &next, None).await;
    dispatchers.ensure("step", s).await.unwrap();
    append_events(&*log, &topic, 50).await;
    let expected: HashSet<String> = (0..50).map(|i| format!("receipt-e-{i}")).collect();
    assert_eq!(
        read_ids(&*log, &next, 50).await,
        expected,
        "a reply was lost"
    );
    let m = dispatchers.metrics("step").unwrap();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    eventually("every event finished", || get(&m.delivered) == 50).await;
    assert_eq!(get(&m.reply_failures), 120);
    assert_eq!(get(&m.replies), 50);
    assert_eq!(get(&m.dropped) + get(&m.dead_lettered), 0);
    assert_eq!(get(&m.replies_waiting), 0);
    println!("50 events, 120 appends of their replies refused, 50 replies stored, 0 lost");
}

async fn an_event_whose_reply_is_not_stored_is_not_committed(backend: Backend) {
    let (log, topic, next, refusing) = two_hops(backend, "held", usize::MAX).await;
    let (s, seen) = step(&topic, &next, None).await;
    let first = Dispatchers::new(refusing.clone(), Arc::new(HttpTransport::new()));
    first.ensure("step", s.clone()).await.unwrap();
    append_events(&*log, &topic, 10).await;
    // No dead-letter sink: each event waits, uncommitted, for its reply to be stored.
    let m = first.metrics("step").unwrap();
    eventually("every event waits for its reply to be stored", || {
        m.replies_waiting.load(Ordering::Relaxed) == 10
    })
    .await;
    // Stopped (a crash, or an update of the step); the log works again.
    first.stop("step");
    drop(first);
    refusing.refusals.store(0, Ordering::SeqCst);
    let second = Dispatchers::new(refusing.clone(), Arc::new(HttpTransport::new()));
    second.ensure("step", s).await.unwrap();
    let expected: HashSet<String> = (0..10).map(|i| format!("receipt-e-{i}")).collect();
    assert_eq!(
        read_ids(&*log, &next, 10).await,
        expected,
        "a reply was lost"
    );
    println!(
        "10 events held uncommitted, then delivered again: {} deliveries",
        seen.0.lock().unwrap().len()
    );
}

async fn an_event_whose_reply_cannot_be_stored_goes_to_the_dead_letter_sink(backend: Backend) {
    let (log, topic, next, refusing) = two_hops(backend, "reply-dls", usize::MAX).await;
    let (dls, dead) = subscriber(Arc::new(|_, _| status(200))).await;
    let (s, _) = step(&topic, &next, Some(dls)).await;
    let dispatchers = Dispatchers::new(refusing.clone(), Arc::new(HttpTransport::new()));
    dispatchers.ensure("step", s).await.unwrap();
    append_events(&*log, &topic, 10).await;
    wait_for(&dead, 10).await;
    let expected: HashSet<String> = (0..10).map(|i| format!("e-{i}")).collect();
    assert_eq!(
        dead.ids(),
        expected,
        "the events themselves, as Knative sends them"
    );
    for e in dead.0.lock().unwrap().iter() {
        assert_eq!(e.attribute("knativeerrordest").as_deref(), Some(&*next));
        assert_eq!(e.attribute("knativeerrorcode").as_deref(), Some("0"));
    }
    let m = dispatchers.metrics("step").unwrap();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    eventually("every event finished", || get(&m.dead_lettered) == 10).await;
    assert_eq!(get(&m.reply_failures), 30, "the policy's 3 attempts each");
    assert_eq!(get(&m.delivered) + get(&m.dropped), 0);
}

async fn with_a_flaky_subscriber_every_matching_event_is_delivered_or_dead_lettered(
    backend: Backend,
) {
    let (log, topic) = fresh_log(backend, "flaky").await;
    // Half of all requests fail with 500; some events fail all their attempts.
    let (addr, seen) =
        subscriber(Arc::new(|n, _| status(if n % 2 == 0 { 500 } else { 202 }))).await;
    let (dls, dead) = subscriber(Arc::new(|_, _| status(200))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    let mut s = spec(&topic, addr, Some("wanted"), Some(dls));
    s.policy.retry = 3;
    dispatchers.ensure("t1", s).await.unwrap();
    let records = (0..200)
        .map(|i| kafka_binding::to_record(&event(i, if i % 4 == 0 { "other" } else { "wanted" })))
        .collect();
    log.append(&topic, records).await.unwrap();
    let expected: HashSet<String> = (0..200)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("e-{i}"))
        .collect();
    let mut got = HashSet::new();
    for _ in 0..500 {
        got = seen
            .0
            .lock()
            .unwrap()
            .iter()
            .chain(dead.0.lock().unwrap().iter())
            .map(|e| e.id.clone())
            .collect();
        if got.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, expected, "lost or extra events");
    let delivered = seen.0.lock().unwrap().len();
    let dead_lettered = dead.0.lock().unwrap().len();
    println!("delivered {delivered}, dead-lettered {dead_lettered}, lost 0");
    assert!(dead
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|e| e.attribute("knativeerrorcode").as_deref() == Some("500")));
    assert!(seen.0.lock().unwrap().iter().all(|e| e.ty == "wanted"));
}

async fn a_refused_event_goes_to_the_dead_letter_sink_with_why(backend: Backend) {
    let (log, topic) = fresh_log(backend, "dls").await;
    let (sub, _) = subscriber(Arc::new(|_, _| status(400))).await;
    let (dls, dead) = subscriber(Arc::new(|_, _| status(200))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    dispatchers
        .ensure("t1", spec(&topic, sub, None, Some(dls)))
        .await
        .unwrap();
    log.append(&topic, vec![kafka_binding::to_record(&event(1, "x"))])
        .await
        .unwrap();
    wait_for(&dead, 1).await;
    let e = dead.0.lock().unwrap()[0].clone();
    assert_eq!(e.id, "e-1");
    assert_eq!(e.attribute("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(
        e.attribute("knativeerrordest"),
        Some(format!("http://{sub}/"))
    );
}

async fn a_reply_reenters_the_broker_and_reaches_another_trigger(backend: Backend) {
    let (log, topic) = fresh_log(backend, "reply").await;
    // The first subscriber answers each "order" with a "receipt" event.
    let (first, _) = subscriber(Arc::new(|_, e: &CloudEvent| receipt(e))).await;
    let (second, receipts) = subscriber(Arc::new(|_, _| status(202))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    dispatchers
        .ensure("orders", spec(&topic, first, Some("order"), None))
        .await
        .unwrap();
    dispatchers
        .ensure("receipts", spec(&topic, second, Some("receipt"), None))
        .await
        .unwrap();
    log.append(&topic, vec![kafka_binding::to_record(&event(7, "order"))])
        .await
        .unwrap();
    wait_for(&receipts, 1).await;
    assert_eq!(receipts.0.lock().unwrap()[0].id, "receipt-e-7");
}

async fn ordered_delivery_keeps_each_partition_keys_order_through_retries(backend: Backend) {
    let (log, topic) = fresh_log(backend, "ordered").await;
    // Every third request fails, and answers take a little while, so that unordered
    // delivery would overtake.
    let (addr, seen) = subscriber(Arc::new(|n, _| {
        std::thread::sleep(Duration::from_micros(300 * (n % 4) as u64));
        status(if n % 3 == 0 { 503 } else { 200 })
    }))
    .await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    let mut s = spec(&topic, addr, None, None);
    s.ordered = true;
    s.policy.retry = 10;
    s.policy.delay = Duration::from_millis(1);
    dispatchers.ensure("ordered", s).await.unwrap();
    let keys = 4;
    let per_key = 60;
    let records = (0..keys * per_key)
        .map(|i| {
            let mut e = event(i, "t");
            e.extensions.insert(
                "partitionkey".into(),
                ExtensionValue::String(format!("k{}", i % keys)),
            );
            kafka_binding::to_record(&e)
        })
        .collect();
    log.append(&topic, records).await.unwrap();
    wait_for(&seen, keys * per_key).await;
    let seen = seen.0.lock().unwrap();
    for k in 0..keys {
        let order: Vec<usize> = seen
            .iter()
            .filter(|e| e.attribute("partitionkey") == Some(format!("k{k}")))
            .map(|e| e.id[2..].parse().unwrap())
            .collect();
        let expected: Vec<usize> = (0..keys * per_key).filter(|i| i % keys == k).collect();
        assert_eq!(order, expected, "key k{k} arrived out of order");
    }
}

async fn the_triggers_counters_add_up(backend: Backend) {
    let (log, topic) = fresh_log(backend, "counters").await;
    let (addr, seen) =
        subscriber(Arc::new(|n, _| status(if n % 2 == 0 { 500 } else { 200 }))).await;
    let (dls, dead) = subscriber(Arc::new(|_, _| status(200))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    let mut s = spec(&topic, addr, Some("wanted"), Some(dls));
    s.policy.retry = 1;
    dispatchers.ensure("ns/counted", s).await.unwrap();
    let records = (0..100)
        .map(|i| kafka_binding::to_record(&event(i, if i % 5 == 0 { "other" } else { "wanted" })))
        .collect();
    log.append(&topic, records).await.unwrap();
    let m = dispatchers.metrics("ns/counted").unwrap();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    for _ in 0..500 {
        if get(&m.delivered) + get(&m.dead_lettered) >= 80 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&m.received), 100);
    assert_eq!(get(&m.filtered), 20);
    assert_eq!(get(&m.delivered), seen.0.lock().unwrap().len() as u64);
    assert_eq!(get(&m.dead_lettered), dead.0.lock().unwrap().len() as u64);
    assert_eq!(get(&m.delivered) + get(&m.dead_lettered), 80);
    assert_eq!(get(&m.dropped), 0);
    let mut text = String::new();
    dispatchers.render_metrics(&mut text);
    assert!(
        text.contains("paas_trigger_events_total{trigger=\"ns/counted\",outcome=\"filtered\"} 20"),
        "{text}"
    );
}

async fn a_restarted_dispatcher_resumes_where_it_left_off(backend: Backend) {
    let (log, topic) = fresh_log(backend, "restart").await;
    let (addr, seen) = subscriber(Arc::new(|_, _| {
        std::thread::sleep(Duration::from_millis(1));
        status(200)
    }))
    .await;
    let first = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    first
        .ensure("t", spec(&topic, addr, None, None))
        .await
        .unwrap();
    append_events(&*log, &topic, 300).await;
    wait_for(&seen, 50).await;
    // Stopped mid-stream, as a crash or an update of the trigger would.
    first.stop("t");
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    second
        .ensure("t", spec(&topic, addr, None, None))
        .await
        .unwrap();
    log.append(
        &topic,
        (300..320)
            .map(|i| kafka_binding::to_record(&event(i, "t")))
            .collect(),
    )
    .await
    .unwrap();
    let expected: HashSet<String> = (0..320).map(|i| format!("e-{i}")).collect();
    let mut got = HashSet::new();
    for _ in 0..1500 {
        got = seen.ids();
        if got == expected {
            let total = seen.0.lock().unwrap().len();
            println!("320 events, {} delivered twice", total - 320);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("lost: {:?}", expected.difference(&got).collect::<Vec<_>>());
}

/// A deleted trigger's consumer group goes with it: the embedded log keeps no offset
/// file for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_triggers_group_leaves_no_offset_behind() {
    let (log, topic) = fresh_log(Backend::Embedded, "forget").await;
    let (addr, seen) = subscriber(Arc::new(|_, _| status(200))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    let s = spec(&topic, addr, None, None);
    let offsets = support::embedded_dir(&topic)
        .join(&topic)
        .join("groups")
        .join(format!("{}.offset", s.group));
    dispatchers.ensure("ns/t", s).await.unwrap();
    log.append(&topic, vec![kafka_binding::to_record(&event(1, "t"))])
        .await
        .unwrap();
    wait_for(&seen, 1).await;
    assert!(offsets.exists(), "a group's start is saved when it joins");
    dispatchers
        .forget("ns/t")
        .expect("the trigger had a dispatcher")
        .await
        .unwrap();
    assert!(!offsets.exists(), "{} is left behind", offsets.display());
    assert!(
        dispatchers.metrics("ns/t").is_none(),
        "the dispatcher is gone"
    );
}

on_both_backends!(
    with_a_flaky_subscriber_every_matching_event_is_delivered_or_dead_lettered,
    a_refused_event_goes_to_the_dead_letter_sink_with_why,
    a_reply_reenters_the_broker_and_reaches_another_trigger,
    ordered_delivery_keeps_each_partition_keys_order_through_retries,
    the_triggers_counters_add_up,
    a_restarted_dispatcher_resumes_where_it_left_off,
    every_reply_reaches_the_next_hop_while_its_appends_fail_for_a_while,
    an_event_whose_reply_is_not_stored_is_not_committed,
    an_event_whose_reply_cannot_be_stored_goes_to_the_dead_letter_sink,
);
