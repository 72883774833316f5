//! Automated canary: a new revision answering 500 half the time is rolled back by the
//! platform itself, with the figures on the Service and an event; a healthy one is
//! promoted to 100%.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paas_e2e::{binary, event_sink, http, Platform, RuntimeKind};

fn canary_condition(p: &Platform) -> (String, String, String) {
    let svc: serde_json::Value =
        serde_json::from_str(&p.paas_ok(&["get", "ksvc", "hello", "-o", "json"])).unwrap();
    let c = svc["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Canary")
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    (text("status"), text("reason"), text("message"))
}

fn wait_canary(p: &Platform, status: &str) -> (String, String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = canary_condition(p);
        if c.0 == status {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "canary never {status}: {c:?}\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failing_canary_is_rolled_back_and_a_healthy_one_promoted() {
    let p = Platform::start(RuntimeKind::Process);
    let (port, events) = event_sink();
    p.trigger_everything_to(port);
    let hello = binary("hello");
    p.paas_ok(&[
        "deploy",
        "hello",
        "--cmd",
        hello.to_str().unwrap(),
        "--annotation",
        "canary.paas.dev/steps=20,50,100",
        "--annotation",
        "canary.paas.dev/step-duration=2s",
        "--annotation",
        "canary.paas.dev/success-rate=95",
        "--annotation",
        "canary.paas.dev/min-requests=20",
    ]);
    // A bad setting is refused at apply time, naming the annotation.
    let bad = p.paas(&[
        "deploy",
        "hello",
        "--annotation",
        "canary.paas.dev/steps=50,10",
    ]);
    assert!(!bad.status.success());
    assert!(paas_e2e::stderr(&bad).contains("canary.paas.dev/steps"));

    // Users keep coming all along.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, port) = (stop.clone(), p.http_port);
            std::thread::spawn(move || {
                let host = format!("hello.default.localhost:{port}");
                while !stop.load(Ordering::Relaxed) {
                    let _ = http(port, &host, "GET", "/", &[], None);
                }
            })
        })
        .collect();

    // hello-00002 fails every other request.
    p.paas_ok(&["deploy", "hello", "--env", "FAIL_EVERY=2"]);
    let (_, reason, message) = wait_canary(&p, "False");
    println!("rolled back: {message}");
    assert_eq!(reason, "CanaryFailed");
    assert!(
        message.contains("hello-00002") && message.contains("success rate"),
        "{message}"
    );
    assert_eq!(p.route_split("hello"), [("hello-00001".to_owned(), 100)]);
    for _ in 0..20 {
        assert_eq!(p.get("hello", "/").body, "Hello World!\n");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no canary event reached the broker"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // hello-00003 is healthy: through 20%, 50% and 100%, then promoted.
    p.paas_ok(&[
        "deploy",
        "hello",
        "--env",
        "FAIL_EVERY-",
        "--env",
        "TARGET=Good",
    ]);
    let (_, reason, message) = wait_canary(&p, "True");
    println!("promoted: {message}");
    assert_eq!(reason, "Promoted");
    assert_eq!(p.route_split("hello"), [("hello-00003".to_owned(), 100)]);
    assert_eq!(p.get("hello", "/").body, "Hello Good!\n");
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(
        events.lock().unwrap().len(),
        2,
        "a failed and a promoted event"
    );
}
