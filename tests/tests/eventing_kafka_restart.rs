//! A restart of the Kafka broker under a running `paas up --kafka`, mid-stream: once
//! the broker is back, every batch is accepted again, and every event that got a 202
//! is delivered at least once, before or after the restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paas_e2e::kafka::Tansu;
use paas_e2e::{event_sink, stream_events, wait_all_delivered, Platform, RuntimeKind};

const EVENTS: usize = 3_000;
const PER_BATCH: usize = 20;

#[test]
fn a_kafka_broker_restart_mid_stream_loses_no_accepted_event() {
    let mut kafka = Tansu::start();
    let (port, seen) = event_sink();
    let mut p = Platform::start_with(
        RuntimeKind::Process,
        &["--kafka", &kafka.address, "--kafka-partitions", "3"],
    );
    p.trigger_everything_to(port);

    let stream = stream_events(&mut p, EVENTS, PER_BATCH, |_| {
        // Down for a moment while deliveries and commits are in flight: the length of
        // the outage, not a wait for something to happen.
        kafka.stop();
        std::thread::sleep(Duration::from_secs(2));
        kafka.restart();
        0
    });
    println!("{stream}");
    // While the broker was down nothing was posted; once it listens again, the
    // producer reconnects and every batch is stored and accepted: a POST made as it
    // comes back waits in the producer rather than being refused.
    assert!(
        stream.refused_before.is_empty() && stream.refused_after.is_empty(),
        "refused before the restart: {:?}; after it: {:?}\n--- paas up log ---\n{}",
        stream.refused_before,
        stream.refused_after,
        p.log_text()
    );
    assert_eq!(stream.accepted.len(), EVENTS);
    let duplicates = wait_all_delivered(&p, &seen, &stream.accepted);
    println!(
        "all {} accepted events delivered at least once across a broker restart; {duplicates} duplicate deliveries",
        stream.accepted.len()
    );
}
