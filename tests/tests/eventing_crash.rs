//! `kill -9` of `paas up` in the middle of an event stream: every event that got a 202
//! is delivered at least once after the restart; duplicates are counted and reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paas_e2e::{http, write_manifest, Platform, RuntimeKind};

/// A subscriber owned by the test, so that what it received survives paas' crash.
fn subscriber() -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut id, mut length) = (String::new(), 0usize);
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_owned();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "ce-id" => id = v.trim().to_owned(),
                                "content-length" => length = v.trim().parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    *s.lock().unwrap().entry(id).or_default() += 1;
                    if writer
                        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

const EVENTS: usize = 10_000;
const PER_BATCH: usize = 20;

#[test]
fn a_crash_mid_stream_loses_no_accepted_event() {
    let (port, seen) = subscriber();
    let mut p = Platform::start(RuntimeKind::Process);
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
        "accepted {} events ({} batches refused while paas was down), all delivered at least once; {} duplicate deliveries after the crash",
        accepted.len(),
        refused,
        duplicates
    );
    // Every delivery is of an accepted event (or of one stored just before the crash
    // whose 202 never reached the sender).
    assert!(seen.len() >= accepted.len());
}
