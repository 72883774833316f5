//! A restart of the Kafka broker under a running `paas up --kafka`, mid-stream: every
//! event that got a 202 is delivered at least once, before or after the restart.

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

    let (accepted, refused) = stream_events(&mut p, EVENTS, PER_BATCH, |_| {
        // Down for a moment while deliveries and commits are in flight; the next
        // POSTs wait in the producer until it is back.
        kafka.stop();
        std::thread::sleep(Duration::from_secs(2));
        kafka.restart();
        0
    });
    let duplicates = wait_all_delivered(&p, &seen, &accepted);
    println!(
        "accepted {} events ({refused} batches refused), all delivered at least once across a broker restart; {duplicates} duplicate deliveries",
        accepted.len()
    );
}
