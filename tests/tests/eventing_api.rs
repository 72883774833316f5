//! Brokers and Triggers through the CLI and the API: apply, status, validation, delete.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paas_e2e::{binary, stderr, write_manifest, Platform, RuntimeKind};

const BROKER: &str = "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
";

const TRIGGER: &str = "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: greetings
spec:
  broker: default
  filter:
    attributes:
      type: dev.paas.greeting
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: hello
";

fn get(p: &Platform, kind: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&p.paas_ok(&["get", kind, name, "-o", "json"])).unwrap()
}

fn wait(
    p: &Platform,
    kind: &str,
    name: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let o = get(p, kind, name);
        if check(&o) {
            return o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{kind} {name}: {}",
            o["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The event-display sample as the `greetings` trigger's subscriber on the default broker.
fn display_behind_trigger(p: &Platform) {
    let display = binary("event-display");
    p.paas_ok(&["deploy", "display", "--cmd", display.to_str().unwrap()]);
    let trigger = TRIGGER.replace("name: hello", "name: display");
    let broker = write_manifest(&p.data_dir, "broker.yaml", BROKER);
    let trigger = write_manifest(&p.data_dir, "trigger.yaml", &trigger);
    p.paas_ok(&[
        "apply",
        "-f",
        broker.to_str().unwrap(),
        "-f",
        trigger.to_str().unwrap(),
    ]);
    wait(p, "trigger", "greetings", ready);
}

fn ready(o: &serde_json::Value) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn a_trigger_resolves_its_subscriber_once_the_service_exists() {
    let p = Platform::start(RuntimeKind::Process);
    let broker = write_manifest(&p.data_dir, "broker.yaml", BROKER);
    let trigger = write_manifest(&p.data_dir, "trigger.yaml", TRIGGER);
    let out = p.paas_ok(&[
        "apply",
        "-f",
        broker.to_str().unwrap(),
        "-f",
        trigger.to_str().unwrap(),
    ]);
    assert!(
        out.contains("broker.eventing.knative.dev/default created"),
        "{out}"
    );
    assert!(
        out.contains("trigger.eventing.knative.dev/greetings created"),
        "{out}"
    );

    let b = wait(&p, "broker", "default", ready);
    assert_eq!(
        b["status"]["address"]["url"],
        format!(
            "http://broker-ingress.localhost:{}/default/default",
            p.http_port
        )
    );
    assert!(p
        .data_dir
        .join("eventlog/knative-broker-default-default")
        .is_dir());

    // The subscriber does not exist yet: not ready, and it says why.
    let t = get(&p, "trigger", "greetings");
    assert!(!ready(&t));
    assert!(
        t["status"]["conditions"].to_string().contains("hello"),
        "{}",
        t["status"]
    );

    let hello = binary("hello");
    p.paas_ok(&["deploy", "hello", "--cmd", hello.to_str().unwrap()]);
    let t = wait(&p, "trigger", "greetings", ready);
    assert_eq!(
        t["status"]["subscriberUri"],
        format!("http://hello.default.localhost:{}", p.http_port)
    );

    let again = p.paas_ok(&["apply", "-f", trigger.to_str().unwrap()]);
    assert!(again.contains("unchanged"), "{again}");

    p.paas_ok(&["delete", "broker", "default"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p
        .data_dir
        .join("eventlog/knative-broker-default-default")
        .exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker's topic was not removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = wait(&p, "trigger", "greetings", |t| !ready(t));
    assert!(
        t["status"]["conditions"]
            .to_string()
            .contains("BrokerDoesNotExist"),
        "{}",
        t["status"]
    );
}

#[test]
fn bad_triggers_name_file_line_and_field() {
    let p = Platform::start(RuntimeKind::Process);
    let bad = TRIGGER.replace("  broker: default\n", "").replace(
        "      type: dev.paas.greeting",
        "      Type: dev.paas.greeting",
    );
    let path = write_manifest(&p.data_dir, "bad.yaml", &bad);
    let out = p.paas(&["apply", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:5: spec.broker: is required"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:8: spec.filter.attributes.Type"),
        "{err}"
    );
    assert!(p
        .paas_ok(&["get", "triggers", "-o", "json"])
        .contains("\"items\": []"));
}

#[test]
fn an_invalid_cesql_filter_is_refused_at_its_line_with_its_position() {
    let p = Platform::start(RuntimeKind::Process);
    let text = TRIGGER.replace(
        "  filter:\n    attributes:\n      type: dev.paas.greeting\n",
        "  filters:\n    - cesql: \"type = 'a' AND\"\n",
    );
    let path = write_manifest(&p.data_dir, "cesql.yaml", &text);
    let out = p.paas(&["apply", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cesql.yaml:8: spec.filters[0].cesql: invalid CloudEvents SQL expression"),
        "{err}"
    );
    assert!(err.contains("position"), "{err}");
}

#[test]
fn a_broker_accepts_valid_cloudevents_and_says_what_is_wrong_with_the_rest() {
    let p = Platform::start(RuntimeKind::Process);
    let broker = write_manifest(&p.data_dir, "broker.yaml", BROKER);
    p.paas_ok(&["apply", "-f", broker.to_str().unwrap()]);
    wait(&p, "broker", "default", ready);
    let host = format!("broker-ingress.localhost:{}", p.http_port);
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        paas_e2e::http(p.http_port, &host, "POST", path, headers, Some(body)).unwrap()
    };
    let binary = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e-1"),
        ("ce-source", "/e2e"),
        ("ce-type", "dev.paas.greeting"),
        ("content-type", "application/json"),
    ];
    assert_eq!(
        post("/default/default", &binary, "{\"hello\":\"world\"}").status,
        202
    );
    let structured = r#"{"specversion":"1.0","id":"e-2","source":"/e2e","type":"dev.paas.greeting","data":{"n":2}}"#;
    let r = post(
        "/default/default",
        &[("content-type", "application/cloudevents+json")],
        structured,
    );
    assert_eq!(r.status, 202, "{}", r.body);

    let no_type: Vec<_> = binary
        .iter()
        .filter(|(k, _)| *k != "ce-type")
        .copied()
        .collect();
    let r = post("/default/default", &no_type, "{}");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("\"type\""), "{}", r.body);
    let bad_time = [binary.as_slice(), &[("ce-time", "yesterday")]].concat();
    let r = post("/default/default", &bad_time, "{}");
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("time") && r.body.contains("RFC 3339"),
        "{}",
        r.body
    );

    let r = post("/default/nope", &binary, "{}");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("default/nope"), "{}", r.body);
    let big = "x".repeat(2 << 20);
    assert_eq!(post("/default/default", &binary, &big).status, 413);

    let metrics = p.metrics();
    assert!(
        metrics.contains("paas_broker_ingress_requests_total{outcome=\"accepted\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paas_broker_ingress_requests_total{outcome=\"refused\"} 4"),
        "{metrics}"
    );
}

#[test]
fn events_posted_to_a_broker_reach_the_triggers_subscriber_filtered() {
    let p = Platform::start(RuntimeKind::Process);
    events_reach_the_subscriber_filtered(&p);
}

#[test]
fn with_kafka_events_posted_to_a_broker_reach_the_triggers_subscriber_filtered() {
    let p = Platform::start_with(
        RuntimeKind::Process,
        &[
            "--kafka",
            paas_e2e::kafka::broker(),
            "--kafka-partitions",
            "3",
        ],
    );
    events_reach_the_subscriber_filtered(&p);
}

fn events_reach_the_subscriber_filtered(p: &Platform) {
    display_behind_trigger(p);
    let host = format!("broker-ingress.localhost:{}", p.http_port);
    for i in 0..20 {
        let ty = if i % 2 == 0 {
            "dev.paas.greeting"
        } else {
            "dev.paas.other"
        };
        let id = format!("e-{i}");
        let headers = [
            ("ce-specversion", "1.0"),
            ("ce-id", id.as_str()),
            ("ce-source", "/e2e"),
            ("ce-type", ty),
            ("content-type", "application/json"),
        ];
        let r = paas_e2e::http(
            p.http_port,
            &host,
            "POST",
            "/default/default",
            &headers,
            Some("{\"n\":1}"),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let r = p.get("display", "/events");
        let events: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap_or_default();
        if events.len() >= 10 || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e["attributes"]["id"].as_str().unwrap_or("").to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..20).step_by(2).map(|i| format!("e-{i}")).collect();
    expected.sort();
    assert_eq!(
        ids,
        expected,
        "events: {events:?}\n--- paas up log ---\n{}",
        p.log_text()
    );
    assert!(events
        .iter()
        .all(|e| e["attributes"]["type"] == "dev.paas.greeting"));
    assert_eq!(events[0]["data"], "{\"n\":1}");

    let metrics = p.metrics();
    for line in [
        "paas_trigger_events_total{trigger=\"default/greetings\",outcome=\"received\"} 20",
        "paas_trigger_events_total{trigger=\"default/greetings\",outcome=\"filtered\"} 10",
        "paas_trigger_events_total{trigger=\"default/greetings\",outcome=\"delivered\"} 10",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[test]
fn paas_event_send_reaches_the_subscriber_and_reports_refusals() {
    let p = Platform::start(RuntimeKind::Process);
    display_behind_trigger(&p);

    let out = p.paas_ok(&[
        "event",
        "send",
        "--type",
        "dev.paas.greeting",
        "--id",
        "cli-1",
        "--data",
        "{\"hi\":1}",
        "--ext",
        "partitionkey=user-7",
    ]);
    assert!(
        out.contains("Event cli-1 sent to broker default/default"),
        "{out}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events: Vec<serde_json::Value> =
            serde_json::from_str(&p.get("display", "/events").body).unwrap_or_default();
        if let Some(e) = events.first() {
            assert_eq!(e["attributes"]["id"], "cli-1");
            assert_eq!(e["attributes"]["partitionkey"], "user-7");
            assert_eq!(e["data"], "{\"hi\":1}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event did not arrive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = p.paas(&[
        "event",
        "send",
        "--type",
        "dev.paas.greeting",
        "--ext",
        "Bad_Name=x",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Bad_Name") && err.contains("lower-case"),
        "{err}"
    );
    // Invalid attribute values are refused by the broker, which says which.
    let out = p.paas(&[
        "event",
        "send",
        "--type",
        "dev.paas.greeting",
        "--source",
        "not a uri ref",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("400") && err.contains("source"), "{err}");
}

#[test]
fn an_event_wakes_a_subscriber_scaled_to_zero() {
    let p = Platform::start_with(RuntimeKind::Process, paas_e2e::FAST_SCALE_TO_ZERO);
    display_behind_trigger(&p);
    p.wait_revision(
        "display-00001",
        Duration::from_secs(40),
        "scale to zero",
        |r| r["status"]["actualReplicas"] == 0 && r["status"]["desiredReplicas"] == 0,
    );

    p.paas_ok(&[
        "event",
        "send",
        "--type",
        "dev.paas.greeting",
        "--id",
        "wake-1",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events: Vec<serde_json::Value> =
            serde_json::from_str(&p.get("display", "/events").body).unwrap_or_default();
        if events.iter().any(|e| e["attributes"]["id"] == "wake-1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event did not wake the subscriber"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
