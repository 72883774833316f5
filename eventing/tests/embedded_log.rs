//! The embedded event log: durability, order, group offsets, recovery and retention.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use paas_eventing::log::{EmbeddedLog, Retention};
use paas_eventing::{EventLog, InitialOffset, Record};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("paas-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn record(n: usize) -> Record {
    Record {
        key: Some(Bytes::from(format!("key-{}", n % 7))),
        headers: vec![("ce_id".into(), Bytes::from(n.to_string()))],
        value: Bytes::from(format!("event {n}")),
    }
}

async fn read(
    log: &EmbeddedLog,
    group: &str,
    initial: InitialOffset,
    n: usize,
) -> Vec<(i64, Bytes)> {
    let mut sub = log.subscribe("t", group, initial).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        out.push((d.position.offset, d.record.value.clone()));
        sub.commit(d.position).await.unwrap();
    }
    out
}

#[tokio::test]
async fn appended_records_are_read_back_in_order() {
    let d = dir("order");
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    log.ensure_topic("t").await.unwrap();
    let positions = log
        .append("t", (0..10).map(record).collect())
        .await
        .unwrap();
    assert_eq!(
        positions.iter().map(|p| p.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    let got = read(&log, "g", InitialOffset::Earliest, 10).await;
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &Bytes::from(format!("event {i}")));
    }
}

#[tokio::test]
async fn a_group_resumes_after_its_committed_offset_across_a_reopen() {
    let d = dir("resume");
    {
        let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
        log.append("t", (0..20).map(record).collect())
            .await
            .unwrap();
        read(&log, "g", InitialOffset::Earliest, 12).await;
        log.flush_offsets();
    }
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    let got = read(&log, "g", InitialOffset::Earliest, 8).await;
    assert_eq!(got.first().unwrap().0, 12);
    assert_eq!(got.last().unwrap().0, 19);
    // Another group starts where it is told to.
    log.append("t", vec![record(20)]).await.unwrap();
    let latest = log
        .subscribe("t", "late", InitialOffset::Latest)
        .await
        .unwrap();
    drop(latest);
    let got = read(&log, "early", InitialOffset::Earliest, 1).await;
    assert_eq!(got[0].0, 0);
}

#[tokio::test]
async fn a_torn_write_at_the_end_is_cut_off_on_open() {
    let d = dir("torn");
    {
        let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
        log.append("t", (0..5).map(record).collect()).await.unwrap();
    }
    // A crash mid-append leaves half a record.
    let segment = d.join("t").join(format!("{:020}.log", 0));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    f.write_all(&[0, 0, 0, 200, 1, 2, 3, 4, 5]).unwrap();
    drop(f);
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    log.ensure_topic("t").await.unwrap();
    let positions = log.append("t", vec![record(5)]).await.unwrap();
    assert_eq!(positions[0].offset, 5);
    let got = read(&log, "g", InitialOffset::Earliest, 6).await;
    assert_eq!(
        got.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_waiting_reader_wakes_on_append() {
    let d = dir("wake");
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    log.ensure_topic("t").await.unwrap();
    let mut sub = log
        .subscribe("t", "g", InitialOffset::Earliest)
        .await
        .unwrap();
    let reader = tokio::spawn(async move { sub.next().await.unwrap().record.value });
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.append("t", vec![record(1)]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Bytes::from("event 1"));
}

#[tokio::test]
async fn concurrent_appends_get_distinct_offsets_and_all_are_read() {
    let d = dir("concurrent");
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    log.ensure_topic("t").await.unwrap();
    let mut tasks = Vec::new();
    for p in 0..20 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..50 {
                let ps = log.append("t", vec![record(p * 1000 + i)]).await.unwrap();
                offsets.push(ps[0].offset);
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    let got = read(&log, "g", InitialOffset::Earliest, 1000).await;
    assert_eq!(got.len(), 1000);
}

#[tokio::test]
async fn retention_removes_old_segments_and_lagging_groups_skip_ahead() {
    let d = dir("retention");
    let retention = Retention {
        max_bytes: 4096,
        max_age: Duration::from_secs(3600),
        segment_bytes: 1024,
    };
    let log = EmbeddedLog::open(&d, retention).unwrap();
    log.ensure_topic("t").await.unwrap();
    for i in 0..200 {
        log.append("t", vec![record(i)]).await.unwrap();
    }
    let segments = std::fs::read_dir(d.join("t"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!(segments <= 6, "{segments} segments kept");
    let mut sub = log
        .subscribe("t", "slow", InitialOffset::Earliest)
        .await
        .unwrap();
    let first = sub.next().await.unwrap().position.offset;
    assert!(first > 0, "the oldest records should be gone");
    let mut last = first;
    while last < 199 {
        last = sub.next().await.unwrap().position.offset;
    }
}

#[tokio::test]
async fn records_larger_than_a_read_are_read_whole() {
    let d = dir("large");
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    log.ensure_topic("t").await.unwrap();
    let big = Record {
        key: None,
        headers: vec![],
        value: Bytes::from(vec![b'z'; 3 << 20]),
    };
    log.append("t", vec![record(0), big, record(2)])
        .await
        .unwrap();
    let got = read(&log, "g", InitialOffset::Earliest, 3).await;
    assert_eq!(got[1].1.len(), 3 << 20);
    assert_eq!(got[2].0, 2);
}

#[tokio::test]
async fn an_unknown_topic_is_an_error() {
    let d = dir("unknown");
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    assert!(log.append("nope", vec![record(1)]).await.is_err());
    assert!(log.ensure_topic("../escape").await.is_err());
}

#[tokio::test]
async fn a_new_groups_start_survives_a_crash_before_its_first_commit() {
    let d = dir("register");
    {
        let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
        log.append("t", (0..3).map(record).collect()).await.unwrap();
        // Subscribed at the end (offset 3), then gone before any commit or flush.
        drop(
            log.subscribe("t", "g", InitialOffset::Latest)
                .await
                .unwrap(),
        );
        log.append("t", (3..6).map(record).collect()).await.unwrap();
    }
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    let got = read(&log, "g", InitialOffset::Latest, 3).await;
    assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [3, 4, 5]);
}

#[tokio::test]
async fn a_deleted_group_leaves_no_offset_file_and_starts_afresh() {
    let d = dir("delete-group");
    let offsets = d.join("t").join("groups").join("g.offset");
    {
        let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
        log.append("t", (0..5).map(record).collect()).await.unwrap();
        read(&log, "g", InitialOffset::Earliest, 3).await;
        log.flush_offsets();
        assert!(offsets.exists(), "the group's offset is saved");
        log.delete_group("t", "g").await.unwrap();
        assert!(!offsets.exists(), "the offset file is removed");
        // Forgotten in memory too: the group starts where it is told, as a new one.
        let got = read(&log, "g", InitialOffset::Earliest, 1).await;
        assert_eq!(got[0].0, 0);
        log.flush_offsets();
        assert!(offsets.exists());
    }
    // On a log that has not opened the topic yet, the file goes too.
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    log.delete_group("t", "g").await.unwrap();
    assert!(!offsets.exists(), "the offset file is removed");
    // A group or a topic that does not exist is fine.
    log.delete_group("t", "never").await.unwrap();
    log.delete_group("never", "g").await.unwrap();
}

/// Opening a topic reads its files (its last segment may be 64 MiB): that is done on
/// the blocking pool, never on an async worker. Here a group's offset file is a FIFO,
/// whose read waits until someone writes it, as a read from a stalled disk would; the
/// runtime has one thread, so a read on it would stall the test itself, until a
/// watchdog thread writes the FIFO after a deadline and says so.
#[tokio::test]
async fn opening_a_topic_never_blocks_an_async_worker() {
    let d = dir("stalled-disk");
    {
        let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
    }
    let fifo = d.join("t").join("groups").join("g.offset");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let disk = fifo.clone();
    let watchdog = std::thread::spawn(move || {
        let fired = released.recv_timeout(Duration::from_secs(20)).is_err();
        // Opening a FIFO to write waits for its reader: the topic being opened.
        std::fs::write(&disk, "0").unwrap();
        fired
    });
    let log = EmbeddedLog::open(&d, Retention::default()).unwrap();
    let (started, start) = tokio::sync::oneshot::channel();
    let opening = tokio::spawn({
        let log = log.clone();
        async move {
            started.send(()).unwrap();
            log.append("t", vec![record(0)]).await
        }
    });
    start.await.unwrap();
    // This task runs while the topic is being opened.
    tokio::task::yield_now().await;
    let waiting = !opening.is_finished();
    let _ = release.send(());
    assert!(
        !watchdog.join().unwrap(),
        "opening the topic blocked the async worker until the watchdog wrote the FIFO"
    );
    assert!(waiting, "the append waits for the disk");
    let appended = tokio::time::timeout(Duration::from_secs(30), opening)
        .await
        .expect("the append finishes once the disk answers")
        .unwrap()
        .unwrap();
    assert_eq!(appended[0].offset, 0);
    let got = read(&log, "g", InitialOffset::Earliest, 1).await;
    assert_eq!(got[0].0, 0, "the group starts where its file said it was");
}
