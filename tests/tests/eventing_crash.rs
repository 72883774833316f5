//! `kill -9` of `paas up` in the middle of an event stream, with either event log: once
//! the restarted paas answers, every batch is accepted again; every event that got a
//! 202 is delivered at least once after the restart; duplicates are counted and
//! reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use paas_e2e::{event_sink, stream_events, wait_all_delivered, Platform, RuntimeKind};

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

    let stream = stream_events(&mut p, EVENTS, PER_BATCH, |p| {
        // Mid-stream, once deliveries are under way (a Kafka consumer may still be
        // joining its group when half the events are in): no chance to flush offsets
        // or finish deliveries.
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "nothing delivered within 60 s\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let delivered = seen.lock().unwrap().len();
        p.kill9();
        println!("killed with {delivered} events delivered");
        // While nobody listens, a batch gets no 202 and does not count as accepted.
        assert!(!p.post_batch(&["ev-down".to_owned()]));
        p.boot();
        1
    });
    let log = if flags.is_empty() {
        "embedded"
    } else {
        "kafka"
    };
    println!("{log}: {stream}");
    assert!(
        stream.refused_before.is_empty(),
        "refused before the crash: {:?}",
        stream.refused_before
    );
    // boot() returned once /healthz answered: from then on every batch is accepted.
    assert!(
        stream.refused_after.is_empty(),
        "a restarted paas refused events: {:?}\n--- paas up log ---\n{}",
        stream.refused_after,
        p.log_text()
    );
    assert_eq!(
        stream.accepted.len(),
        EVENTS,
        "every event but the one posted while paas was down"
    );
    let duplicates = wait_all_delivered(&p, &seen, &stream.accepted);
    println!(
        "{log}: all {} accepted events delivered at least once; {duplicates} duplicate deliveries after the crash",
        stream.accepted.len()
    );
}
