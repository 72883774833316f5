//! Dispatching from the embedded log to real HTTP subscribers: filtering, retries,
//! dead letters, replies, and nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paas_api::eventing::{TriggerFilter, TriggerSpec};
use paas_eventing::cloudevent::{from_http, kafka_binding, CloudEvent};
use paas_eventing::delivery::DeliveryPolicy;
use paas_eventing::dispatcher::{DispatchSpec, Dispatchers};
use paas_eventing::filter::Filter;
use paas_eventing::log::{EmbeddedLog, Retention};
use paas_eventing::transport::HttpTransport;
use paas_eventing::EventLog;
use tokio::net::TcpListener;

/// What a subscriber does with the n-th request it gets.
type Behaviour = Arc<dyn Fn(usize, &CloudEvent) -> Response<Full<Bytes>> + Send + Sync>;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<CloudEvent>>>);

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

fn status(s: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::from_u16(s).unwrap();
    r
}

async fn log(name: &str) -> Arc<EmbeddedLog> {
    let dir = std::env::temp_dir().join(format!("paas-dispatch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = EmbeddedLog::open(&dir, Retention::default()).unwrap();
    log.ensure_topic("broker").await.unwrap();
    log
}

fn event(i: usize, ty: &str) -> CloudEvent {
    CloudEvent::new(format!("e-{i}"), "/tests", ty)
}

fn spec(subscriber: SocketAddr, ty: Option<&str>, dead_letter: Option<SocketAddr>) -> DispatchSpec {
    let trigger = TriggerSpec {
        filter: ty.map(|t| TriggerFilter {
            attributes: [("type".to_owned(), t.to_owned())].into(),
        }),
        ..TriggerSpec::default()
    };
    DispatchSpec {
        topic: "broker".into(),
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

#[tokio::test]
async fn with_a_flaky_subscriber_every_matching_event_is_delivered_or_dead_lettered() {
    let log = log("flaky").await;
    // Half of all requests fail with 500; some events fail all their attempts.
    let (addr, seen) =
        subscriber(Arc::new(|n, _| status(if n % 2 == 0 { 500 } else { 202 }))).await;
    let (dls, dead) = subscriber(Arc::new(|_, _| status(200))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    let mut s = spec(addr, Some("wanted"), Some(dls));
    s.policy.retry = 3;
    dispatchers.ensure("t1", s).await.unwrap();
    let records = (0..200)
        .map(|i| kafka_binding::to_record(&event(i, if i % 4 == 0 { "other" } else { "wanted" })))
        .collect();
    log.append("broker", records).await.unwrap();
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

#[tokio::test]
async fn a_refused_event_goes_to_the_dead_letter_sink_with_why() {
    let log = log("dls").await;
    let (sub, _) = subscriber(Arc::new(|_, _| status(400))).await;
    let (dls, dead) = subscriber(Arc::new(|_, _| status(200))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    dispatchers
        .ensure("t1", spec(sub, None, Some(dls)))
        .await
        .unwrap();
    log.append("broker", vec![kafka_binding::to_record(&event(1, "x"))])
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

#[tokio::test]
async fn a_reply_reenters_the_broker_and_reaches_another_trigger() {
    let log = log("reply").await;
    // The first subscriber answers each "order" with a "receipt" event.
    let (first, _) = subscriber(Arc::new(|_, e: &CloudEvent| {
        let mut r = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
        let h = r.headers_mut();
        h.insert("ce-specversion", "1.0".parse().unwrap());
        h.insert("ce-id", format!("receipt-{}", e.id).parse().unwrap());
        h.insert("ce-source", "/first".parse().unwrap());
        h.insert("ce-type", "receipt".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        r
    }))
    .await;
    let (second, receipts) = subscriber(Arc::new(|_, _| status(202))).await;
    let dispatchers = Dispatchers::new(log.clone(), Arc::new(HttpTransport::new()));
    dispatchers
        .ensure("orders", spec(first, Some("order"), None))
        .await
        .unwrap();
    dispatchers
        .ensure("receipts", spec(second, Some("receipt"), None))
        .await
        .unwrap();
    log.append("broker", vec![kafka_binding::to_record(&event(7, "order"))])
        .await
        .unwrap();
    wait_for(&receipts, 1).await;
    assert_eq!(receipts.0.lock().unwrap()[0].id, "receipt-e-7");
}
