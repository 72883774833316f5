//! Sequences through the CLI and the gateway: each step's reply feeds the next, the
//! last reply reaches `reply`, and nothing is lost on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paas_e2e::{event_server, http, write_manifest, Platform, RuntimeKind};

/// A step that answers each event with the same event, its data (a JSON string)
/// extended by ` word`. With `flaky`, the first attempt at each event gets a 503: half
/// of all requests fail.
fn appender(word: &'static str, flaky: bool) -> u16 {
    let tried: Arc<Mutex<HashSet<String>>> = Arc::default();
    event_server(move |event| {
        if flaky
            && tried
                .lock()
                .unwrap()
                .insert(event.header("ce-id").to_owned())
        {
            return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_owned();
        }
        let data: String = serde_json::from_str(&event.body).unwrap();
        let body = serde_json::to_string(&format!("{data} {word}")).unwrap();
        let mut resp = "HTTP/1.1 200 OK\r\n".to_owned();
        for (k, v) in &event.headers {
            if k.starts_with("ce-") {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        resp.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ));
        resp
    })
}

#[test]
fn a_sequence_of_three_steps_carries_every_event_to_its_reply() {
    let p = Platform::start(RuntimeKind::Process);
    let received: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let r = received.clone();
    let reply = event_server(move |event| {
        r.lock()
            .unwrap()
            .insert(event.header("ce-id").to_owned(), event.body);
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned()
    });
    // The middle step fails half of its requests: retries carry the events through.
    let (one, two, three) = (
        appender("one", false),
        appender("two", true),
        appender("three", false),
    );
    let manifest = format!(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: words
spec:
  steps:
    - uri: http://127.0.0.1:{one}/
    - uri: http://127.0.0.1:{two}/
      delivery:
        retry: 5
        backoffDelay: PT0.01S
    - uri: http://127.0.0.1:{three}/
  reply:
    uri: http://127.0.0.1:{reply}/
"
    );
    let path = write_manifest(&p.data_dir, "sequence.yaml", &manifest);
    let applied = p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(applied.contains("created"), "{applied}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let seq: serde_json::Value =
            serde_json::from_str(&p.paas_ok(&["get", "sequence", "words", "-o", "json"])).unwrap();
        let ready = seq["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if ready {
            break seq["status"]["address"]["url"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "{}", seq["status"]);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        address,
        format!(
            "http://channel-ingress.localhost:{}/default/words-kn-sequence-0",
            p.http_port
        )
    );
    let listed = p.paas_ok(&["get", "sequences"]);
    assert!(listed.contains("words") && listed.contains('3'), "{listed}");

    let host = format!("channel-ingress.localhost:{}", p.http_port);
    for i in 0..100 {
        let id = format!("w-{i}");
        let r = http(
            p.http_port,
            &host,
            "POST",
            "/default/words-kn-sequence-0",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", &id),
                ("ce-source", "/e2e"),
                ("ce-type", "dev.paas.words"),
                ("content-type", "application/json"),
            ],
            Some(&format!("\"{i}\"")),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < 100 {
        assert!(
            Instant::now() < deadline,
            "{} of 100 reached the reply\n{}",
            received.lock().unwrap().len(),
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let received = received.lock().unwrap();
    for i in 0..100 {
        assert_eq!(
            received[&format!("w-{i}")],
            format!("\"{i} one two three\""),
            "event w-{i}"
        );
    }

    // Deleting the sequence takes its channels with it.
    p.paas_ok(&["delete", "sequence", "words"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http(
            p.http_port,
            &host,
            "POST",
            "/default/words-kn-sequence-0",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "late"),
                ("ce-source", "/e2e"),
                ("ce-type", "dev.paas.words"),
            ],
            Some(""),
        )
        .unwrap();
        if r.status == 404 {
            assert!(r.body.contains("no channel"), "{}", r.body);
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", r.status, r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}
