//! `kill -9` of `paas up` in the middle of an event stream, with either event log: every
//! event that got a 202 is delivered at least once after the restart; duplicates are
//! counted and reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use paas_e2e::{event_sink, http, write_manifest, Platform, RuntimeKind};

const EVENTS: usize = 10_000;
const PER_BATCH: usize = 20;

#[test]
fn a_crash_mid_stream_loses_no_accepted_event() {
    crash_mid_stream(&[]);
}

#[test]
fn with_kafka_a_crash_mid_stream_loses_no_accepted_event() {
    crash_mid_stream(&[
        "--kafka",
        paas_e2e::kafka::broker(),
        "--kafka-partitions",
        "3",
    ]);
}

fn crash_mid_stream(flags: &[&str]) {
    let (port, seen) = event_sink();
    let mut p = Platform::start_with(RuntimeKind::Process, flags);
    let manifests = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: all\nspec:\n  broker: default\n  subscriber:\n    uri: http://127.0.0.1:{port}/\n"
    );
    let path = write_manifest(&p.data_dir, "eventing.yaml", &manifests);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p
        .paas_ok(&["get", "trigger", "all", "-o", "json"])
        .contains("\"DispatcherReady\"")
    {
        assert!(
            Instant::now() < deadline,
            "the trigger never got a dispatcher"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let host = format!("broker-ingress.localhost:{}", p.http_port);
    let gateway = p.http_port;
    let mut accepted: HashSet<String> = HashSet::new();
    let mut refused = 0;
    let mut killed = false;
    for batch in 0..EVENTS / PER_BATCH {
        let ids: Vec<String> = (0..PER_BATCH)
            .map(|i| format!("ev-{}", batch * PER_BATCH + i))
            .collect();
        let body = format!(
            "[{}]",
            ids.iter()
                .map(|id| format!(r#"{{"specversion":"1.0","id":"{id}","source":"/crash","type":"dev.paas.crash","data":{{"n":1}}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let answer = http(
            gateway,
            &host,
            "POST",
            "/default/default",
            &[("content-type", "application/cloudevents-batch+json")],
            Some(&body),
        );
        match answer {
            Ok(r) if r.status == 202 => accepted.extend(ids),
            _ => refused += 1,
        }
        if !killed && accepted.len() >= EVENTS / 2 {
            // Mid-stream: no chance to flush offsets or finish deliveries.
            p.kill9();
            killed = true;
            // While nobody listens, a batch gets no 202 and does not count as accepted.
            let down = http(
                gateway,
                &host,
                "POST",
                "/default/default",
                &[("content-type", "application/cloudevents-batch+json")],
                Some(&body),
            );
            assert!(down.is_err() || down.is_ok_and(|r| r.status != 202));
            refused += 1;
            p.boot();
        }
    }
    assert!(killed);

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: HashSet<String> = seen.lock().unwrap().keys().cloned().collect();
        let missing = accepted.difference(&got).count();
        if missing == 0 {
            break;
        }
        if Instant::now() > deadline {
            let mut numbers: Vec<usize> = accepted
                .difference(&got)
                .filter_map(|id| id.strip_prefix("ev-")?.parse().ok())
                .collect();
            numbers.sort_unstable();
            panic!(
                "{missing} of {} accepted events never arrived (ev-{} to ev-{})\n--- paas up log ---\n{}",
                accepted.len(),
                numbers.first().unwrap_or(&0),
                numbers.last().unwrap_or(&0),
                p.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = seen.lock().unwrap();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "{}: accepted {} events ({} batches refused while paas was down), all delivered at least once; {} duplicate deliveries after the crash",
        if flags.is_empty() { "embedded" } else { "kafka" },
        accepted.len(),
        refused,
        duplicates
    );
    // Every delivery is of an accepted event (or of one stored just before the crash
    // whose 202 never reached the sender).
    assert!(seen.len() >= accepted.len());
}
