//! `kill -9` of `paas up` in the middle of an event stream, with either event log: every
//! event that got a 202 is delivered at least once after the restart; duplicates are
//! counted and reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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

    let (accepted, refused) = stream_events(&mut p, EVENTS, PER_BATCH, |p| {
        // Mid-stream: no chance to flush offsets or finish deliveries.
        p.kill9();
        // While nobody listens, a batch gets no 202 and does not count as accepted.
        assert!(!p.post_batch(&["ev-down".to_owned()]));
        p.boot();
        1
    });
    let duplicates = wait_all_delivered(&p, &seen, &accepted);
    println!(
        "{}: accepted {} events ({} batches refused while paas was down), all delivered at least once; {} duplicate deliveries after the crash",
        if flags.is_empty() { "embedded" } else { "kafka" },
        accepted.len(),
        refused,
        duplicates
    );
}
