//! A restart of the Kafka broker under a running `paas up --kafka`, mid-stream: every
//! event that got a 202 is delivered at least once, before or after the restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use paas_e2e::kafka::Tansu;
use paas_e2e::{event_sink, Platform, RuntimeKind};

const EVENTS: usize = 3_000;
const PER_BATCH: usize = 20;

#[test]
fn a_kafka_broker_restart_mid_stream_loses_no_accepted_event() {
    let mut kafka = Tansu::start();
    let (port, seen) = event_sink();
    let p = Platform::start_with(
        RuntimeKind::Process,
        &["--kafka", &kafka.address, "--kafka-partitions", "3"],
    );
    p.trigger_everything_to(port);

    let (mut accepted, mut refused) = (HashSet::new(), 0);
    let mut restarted = false;
    for batch in 0..EVENTS / PER_BATCH {
        let ids: Vec<String> = (0..PER_BATCH)
            .map(|i| format!("ev-{}", batch * PER_BATCH + i))
            .collect();
        if p.post_batch(&ids) {
            accepted.extend(ids);
        } else {
            refused += 1;
        }
        if !restarted && accepted.len() >= EVENTS / 2 {
            // Down for a moment while deliveries and commits are in flight; the next
            // POSTs wait in the producer until it is back.
            kafka.stop();
            std::thread::sleep(Duration::from_secs(2));
            kafka.restart();
            restarted = true;
        }
    }
    assert!(restarted);
    assert!(
        accepted.len() >= EVENTS / 2,
        "too few accepted: {}",
        accepted.len()
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: HashSet<String> = seen.lock().unwrap().keys().cloned().collect();
        let missing: Vec<&String> = accepted.difference(&got).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted events never arrived, e.g. {:?}\n--- paas up log ---\n{}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)],
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let duplicates: usize = seen.lock().unwrap().values().map(|n| n - 1).sum();
    println!(
        "accepted {} events ({refused} batches refused), all delivered at least once across a broker restart; {duplicates} duplicate deliveries",
        accepted.len()
    );
}
