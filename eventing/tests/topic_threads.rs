//! Deleting a topic of the embedded log ends its writer thread. A test binary of its
//! own: the figure is the whole process's thread count, which other tests would move.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use paas_eventing::log::{EmbeddedLog, Retention};
use paas_eventing::{EventLog, Record};

const TOPICS: usize = 200;

/// Threads of this process, as the kernel lists them.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn deleting_topics_ends_their_writer_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Topics are opened on the blocking pool: its idle threads go soon, so that
        // the count settles within the deadline below.
        .thread_keep_alive(Duration::from_millis(100))
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("paas-log-threads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = EmbeddedLog::open(&dir, Retention::default()).unwrap();
        let before = threads();
        let topics: Vec<String> = (0..TOPICS).map(|i| format!("broker-{i}")).collect();
        for topic in &topics {
            log.ensure_topic(topic).await.unwrap();
            let record = Record {
                value: Bytes::from_static(b"x"),
                ..Record::default()
            };
            log.append(topic, vec![record]).await.unwrap();
        }
        let peak = threads();
        for topic in &topics {
            log.delete_topic(topic).await.unwrap();
        }
        // Threads end a little after they are told to: wait for the count, bounded.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut after = threads();
        while after > before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            after = threads();
        }
        println!(
            "threads: {before} before, {peak} with {TOPICS} topics, {after} after deleting them"
        );
        assert!(
            peak >= before + TOPICS,
            "each topic has a writer thread: {before} -> {peak}"
        );
        assert!(
            after <= before,
            "{} writer threads outlived their topics",
            after - before
        );
        let left = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(left, 0, "every topic's directory is gone");
    });
}
