//! KafkaSource end to end: topics written by a separate Kafka client (plain records,
//! and records in the CloudEvents binding's binary and structured modes) reach a
//! Service through paas, every record once; the consumer group resumes where it
//! stopped; a kill -9 loses no record; and a source that cannot read says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paas_e2e::kafka::{broker, create_topic, produce, uncommitted, Plain};
use paas_e2e::{event_server, wait_all_delivered, write_manifest, Hop, Platform, RuntimeKind};
use serde_json::Value;

/// Topic names of this run: the shared broker outlives a test binary only when
/// PAAS_TEST_KAFKA points at one, and then names must not collide.
fn topic(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn plain(topic: &str, range: std::ops::Range<usize>) -> Vec<Plain> {
    range
        .map(|i| Plain {
            key: Some(format!("customer-{}", i % 7).into_bytes()),
            headers: vec![
                ("trace".into(), format!("t{i}").into_bytes()),
                ("content-type".into(), b"application/json".to_vec()),
            ],
            value: format!(r#"{{"record":"{topic}-{i}"}}"#).into_bytes(),
            partition: None,
        })
        .collect()
}

/// Records in the CloudEvents Kafka binding, binary mode.
fn binary_events(range: std::ops::Range<usize>) -> Vec<Plain> {
    range
        .map(|i| Plain {
            key: None,
            headers: vec![
                ("ce_specversion".into(), b"1.0".to_vec()),
                ("ce_id".into(), format!("bin-{i}").into_bytes()),
                ("ce_source".into(), b"/shop".to_vec()),
                ("ce_type".into(), b"dev.shop.order".to_vec()),
                ("content-type".into(), b"application/json".to_vec()),
            ],
            value: format!(r#"{{"record":"bin-{i}"}}"#).into_bytes(),
            partition: None,
        })
        .collect()
}

/// Records in the CloudEvents Kafka binding, structured mode.
fn structured_events(range: std::ops::Range<usize>) -> Vec<Plain> {
    range
        .map(|i| Plain {
            key: None,
            headers: vec![(
                "content-type".into(),
                b"application/cloudevents+json".to_vec(),
            )],
            value: format!(
                r#"{{"specversion":"1.0","id":"json-{i}","source":"/shop","type":"dev.shop.payment","datacontenttype":"application/json","data":{{"record":"json-{i}"}}}}"#
            )
            .into_bytes(),
            partition: None,
        })
        .collect()
}

fn received(p: &Platform) -> Vec<Value> {
    p.displayed("display")
}

/// Wait until the display service holds `n` events and source `orders` has finished
/// every record it read (delivered it to the display); returns what the display holds
/// then: all the records read, more than `n` when one was read twice.
fn wait_events(p: &Platform, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while received(p).len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} events arrived\n{}",
            received(p).len(),
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    p.wait_deliveries(
        "kafkasources",
        "orders",
        Duration::from_secs(30),
        "every record read delivered",
        |hops| !hops.is_empty() && hops.iter().all(Hop::settled),
    );
    received(p)
}

/// What identifies a record's event: the data each record carries is unique.
fn records_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let data: Value = serde_json::from_str(e["data"].as_str().unwrap()).unwrap();
            data["record"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn ready_message(o: &Value) -> String {
    o["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["message"]
        .to_string()
}

/// A group of its own per test: the tests run at once on one broker.
fn group_of(topics: &[&str]) -> String {
    format!("e2e-{}", topics[0])
}

fn source_manifest(bootstrap: &str, topics: &[&str]) -> String {
    let group = group_of(topics);
    let topics: String = topics.iter().map(|t| format!("    - {t}\n")).collect();
    format!(
        "apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: orders
spec:
  bootstrapServers:
    - {bootstrap}
  topics:
{topics}  consumerGroup: {group}
  initialOffset: earliest
  consumers: 2
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: display
",
    )
}

#[test]
fn a_kafka_source_delivers_every_record_once_to_a_service() {
    let kafka = broker();
    let (orders, payments) = (topic("orders"), topic("payments"));
    create_topic(kafka, &orders, 3);
    create_topic(kafka, &payments, 1);
    // Written before the source exists: initialOffset earliest reads them.
    produce(kafka, &orders, &plain(&orders, 0..150));
    produce(kafka, &orders, &binary_events(0..50));
    produce(kafka, &orders, &structured_events(0..50));
    produce(kafka, &payments, &plain(&payments, 0..50));

    let mut p = Platform::start(RuntimeKind::Process);
    p.deploy_event_display("display");
    let manifest = write_manifest(
        &p.data_dir,
        "source.yaml",
        &source_manifest(kafka, &[&orders, &payments]),
    );
    p.paas_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let source = p.wait_ready("kafkasource", "orders", Duration::from_secs(60));
    assert_eq!(source["status"]["consumers"], 2, "{source}");
    // Written while it runs.
    produce(kafka, &orders, &plain(&orders, 150..250));

    let events = wait_events(&p, 400);
    let records = records_of(&events);
    let unique: HashSet<&String> = records.iter().collect();
    assert_eq!(
        (records.len(), unique.len()),
        (400, 400),
        "every record once"
    );
    let mut expected: HashSet<String> = (0..250).map(|i| format!("{orders}-{i}")).collect();
    expected.extend((0..50).map(|i| format!("{payments}-{i}")));
    expected.extend((0..50).map(|i| format!("bin-{i}")));
    expected.extend((0..50).map(|i| format!("json-{i}")));
    assert_eq!(unique, expected.iter().collect());

    // A plain record became a dev.knative.kafka.event, as Knative makes it.
    let first = events
        .iter()
        .find(|e| {
            e["data"]
                .as_str()
                .unwrap()
                .contains(&format!("\"{orders}-7\""))
        })
        .unwrap();
    let a = &first["attributes"];
    assert_eq!(a["type"], "dev.knative.kafka.event", "{first}");
    assert_eq!(
        a["source"],
        format!("/apis/v1/namespaces/default/kafkasources/orders#{orders}")
    );
    assert_eq!(a["key"], "customer-0");
    assert_eq!(a["kafkaheadertrace"], "t7");
    let subject = a["subject"].as_str().unwrap();
    let (partition, offset) = subject
        .strip_prefix("partition:")
        .unwrap()
        .split_once('#')
        .unwrap();
    assert_eq!(a["id"], format!("partition:{partition}/offset:{offset}"));
    assert!(a["time"].as_str().unwrap().ends_with('Z'), "{first}");
    // Records in the CloudEvents binding are their own events.
    let bin = events
        .iter()
        .find(|e| e["attributes"]["id"] == "bin-3")
        .unwrap();
    assert_eq!(bin["attributes"]["type"], "dev.shop.order");
    let json = events
        .iter()
        .find(|e| e["attributes"]["id"] == "json-3")
        .unwrap();
    assert_eq!(json["attributes"]["type"], "dev.shop.payment");

    let table = p.paas_ok(&["get", "kafkasources"]);
    assert!(
        table.contains("orders") && table.contains(&orders),
        "{table}"
    );
    let described = p.paas_ok(&["describe", "kafkasource", "orders"]);
    for hop in [
        format!("topic {orders}, consumer 0: {orders} -> http://display.default.localhost"),
        format!("topic {orders}, consumer 1: {orders} -> http://display.default.localhost"),
        format!("topic {payments}, consumer 0: {payments} -> http://display.default.localhost"),
    ] {
        assert!(described.contains(&hop), "{hop}\n{described}");
    }
    assert!(described.contains("last: delivered "), "{described}");

    // The group resumes where it stopped: after a restart only what was written
    // meanwhile arrives (the display service starts empty with paas). Stopped once
    // the broker records the group's commits up to the end of both topics.
    let group = group_of(&[&orders, &payments]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = uncommitted(kafka, &group, &[&orders, &payments]);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} records delivered but not committed by group {group}\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p.stop();
    produce(kafka, &orders, &plain(&orders, 250..300));
    p.boot();
    let events = wait_events(&p, 50);
    let mut after: Vec<String> = records_of(&events);
    after.sort();
    let mut expected: Vec<String> = (250..300).map(|i| format!("{orders}-{i}")).collect();
    expected.sort();
    assert_eq!(
        after, expected,
        "only the records written while paas was down"
    );
    println!("delivered 400 records once each, then the 50 written during a restart");
}

#[test]
fn a_kafka_source_that_cannot_read_says_why() {
    let kafka = broker();
    let later = topic("later");
    let p = Platform::start(RuntimeKind::Process);
    p.deploy_event_display("display");
    let manifest = write_manifest(
        &p.data_dir,
        "source.yaml",
        &source_manifest(kafka, &[&later]),
    );
    p.paas_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let missing = p.wait_condition("kafkasource", "orders", Duration::from_secs(60), |c| {
        c["type"] == "Ready" && c["reason"] == "TopicsNotFound"
    });
    let message = ready_message(&missing);
    assert!(message.contains(&later), "{missing}");
    // Once the topic exists the source reads it, without being applied again.
    create_topic(kafka, &later, 1);
    produce(kafka, &later, &plain(&later, 0..5));
    p.wait_ready("kafkasource", "orders", Duration::from_secs(60));
    assert_eq!(records_of(&wait_events(&p, 5)).len(), 5);

    // No broker at that address: the condition says so and what to check. A socket
    // bound and not listening holds the port for the test (nothing else can take it)
    // and refuses every connection.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let nowhere = closed.local_addr().unwrap().to_string();
    let manifest = write_manifest(
        &p.data_dir,
        "source.yaml",
        &source_manifest(&nowhere, &[&later]),
    );
    p.paas_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let down = p.wait_condition("kafkasource", "orders", Duration::from_secs(60), |c| {
        c["type"] == "Ready" && c["reason"] == "ClusterUnreachable"
    });
    let message = ready_message(&down);
    assert!(
        message.contains(&nowhere) && message.contains("spec.bootstrapServers"),
        "{down}"
    );

    let deleted = p.paas_ok(&["delete", "kafkasource", "orders"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = p.paas(&["get", "kafkasource", "orders"]);
    assert!(!gone.status.success());
}

#[test]
fn a_kafka_source_loses_no_record_when_paas_is_killed() {
    let kafka = broker();
    let crash = topic("crash");
    create_topic(kafka, &crash, 3);
    // Record i goes to partition i % 3, at offset i / 3 of the fresh topic.
    let n = 3_000;
    let records: Vec<Plain> = (0..n)
        .map(|i| Plain {
            value: format!("{i}").into_bytes(),
            partition: Some((i % 3) as i32),
            ..Plain::default()
        })
        .collect();
    produce(kafka, &crash, &records);
    let expected: HashSet<String> = (0..n)
        .map(|i| format!("partition:{}/offset:{}", i % 3, i / 3))
        .collect();
    // A sink owned by the test (it outlives paas), slow enough that the kill lands
    // mid-stream: ordered, one record in flight per partition, 5 ms each.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let sink = event_server(move |event| {
        std::thread::sleep(Duration::from_millis(5));
        *s.lock()
            .unwrap()
            .entry(event.header("ce-id").to_owned())
            .or_default() += 1;
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned()
    });
    let mut p = Platform::start(RuntimeKind::Process);
    let manifest = format!(
        "apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: crash
spec:
  bootstrapServers: [{kafka}]
  topics: [{crash}]
  initialOffset: earliest
  ordering: ordered
  sink:
    uri: http://127.0.0.1:{sink}/
"
    );
    let path = write_manifest(&p.data_dir, "crash.yaml", &manifest);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 500 {
        assert!(Instant::now() < deadline, "{}", p.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    p.kill9();
    let before = seen.lock().unwrap().len();
    assert!(before < n, "the kill came after the last record");
    p.boot();
    let duplicates = wait_all_delivered(&p, &seen, &expected);
    assert_eq!(seen.lock().unwrap().len(), n, "only the records written");
    println!(
        "killed after {before} of {n} records; all {n} delivered at least once, {duplicates} twice"
    );
}
