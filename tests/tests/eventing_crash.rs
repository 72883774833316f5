//! `kill -9` of `paas up` in the middle of an event stream, with either event log: every
//! event that got a 202 is delivered at least once after the restart; duplicates are
//! counted and reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use paas_e2e::{event_sink, Platform, RuntimeKind};

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
    p.trigger_everything_to(port);

    let mut accepted: HashSet<String> = HashSet::new();
    let mut refused = 0;
    let mut killed = false;
    for batch in 0..EVENTS / PER_BATCH {
        let ids: Vec<String> = (0..PER_BATCH)
            .map(|i| format!("ev-{}", batch * PER_BATCH + i))
            .collect();
        if p.post_batch(&ids) {
            accepted.extend(ids);
        } else {
            refused += 1;
        }
        if !killed && accepted.len() >= EVENTS / 2 {
            // Mid-stream: no chance to flush offsets or finish deliveries.
            p.kill9();
            killed = true;
            // While nobody listens, a batch gets no 202 and does not count as accepted.
            assert!(!p.post_batch(&["ev-down".to_owned()]));
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
