//! What every event log backend promises, checked on both: the embedded log and Kafka.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use paas_eventing::{InitialOffset, LogError};
use support::{fresh_log, next, record, Backend};

async fn appended_records_come_back_whole_and_in_key_order(backend: Backend) {
    let (log, topic) = fresh_log(backend, "whole").await;
    let positions = log
        .append(&topic, (0..50).map(record).collect())
        .await
        .unwrap();
    assert_eq!(positions.len(), 50);
    let mut sub = log
        .subscribe(&topic, &format!("{topic}-g"), InitialOffset::Earliest)
        .await
        .unwrap();
    let mut per_key: BTreeMap<Bytes, Vec<usize>> = BTreeMap::new();
    let mut partition_of_key = BTreeMap::new();
    for _ in 0..50 {
        let d = next(&mut sub).await;
        let n: usize = std::str::from_utf8(&d.record.headers[0].1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(d.record, record(n), "headers, key and value survive");
        assert_eq!(positions[n], d.position, "append reported where it went");
        let key = d.record.key.clone().unwrap();
        // Same key, same partition: that is what keeps them in order.
        assert_eq!(
            *partition_of_key
                .entry(key.clone())
                .or_insert(d.position.partition),
            d.position.partition
        );
        per_key.entry(key).or_default().push(n);
    }
    for (key, ns) in per_key {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "{key:?} out of order: {ns:?}"
        );
    }
}

async fn a_group_resumes_after_what_it_committed(backend: Backend) {
    let (log, topic) = fresh_log(backend, "resume").await;
    log.append(&topic, (0..20).map(record).collect())
        .await
        .unwrap();
    let mut first_read = HashSet::new();
    {
        let mut sub = log
            .subscribe(&topic, &format!("{topic}-g"), InitialOffset::Earliest)
            .await
            .unwrap();
        // Commit everything handed out, in whatever order partitions interleave.
        while first_read.len() < 20 {
            let d = next(&mut sub).await;
            first_read.insert(d.record.value.clone());
            sub.commit(d.position).await.unwrap();
        }
        // Commits are flushed in the background (embedded: 50 ms, Kafka: 100 ms).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log.append(&topic, (20..25).map(record).collect())
        .await
        .unwrap();
    let mut sub = log
        .subscribe(&topic, &format!("{topic}-g"), InitialOffset::Earliest)
        .await
        .unwrap();
    let mut got = HashSet::new();
    for _ in 0..5 {
        got.insert(next(&mut sub).await.record.value);
    }
    let expected: HashSet<Bytes> = (20..25).map(|n| record(n).value).collect();
    assert_eq!(got, expected, "only what came after the commit");
}

async fn a_new_group_at_latest_sees_what_is_appended_after_it_subscribed(backend: Backend) {
    let (log, topic) = fresh_log(backend, "latest").await;
    log.append(&topic, (0..5).map(record).collect())
        .await
        .unwrap();
    let mut sub = log
        .subscribe(&topic, &format!("{topic}-late"), InitialOffset::Latest)
        .await
        .unwrap();
    // Appended before the group's partitions were even assigned (Kafka): still seen.
    log.append(&topic, vec![record(99)]).await.unwrap();
    assert_eq!(next(&mut sub).await.record, record(99));
}

async fn a_topic_never_made_is_refused_at_once(backend: Backend) {
    let (log, topic) = fresh_log(backend, "never").await;
    let refused = tokio::time::timeout(
        Duration::from_secs(15),
        log.append(&format!("{topic}-never-made"), vec![record(0)]),
    )
    .await
    .expect("an append to a missing topic must not hang");
    assert!(
        matches!(refused, Err(LogError::NoSuchTopic { .. })),
        "{refused:?}"
    );
    // Ensuring a topic that exists changes nothing.
    log.append(&topic, vec![record(1)]).await.unwrap();
    log.ensure_topic(&topic).await.unwrap();
    let mut sub = log
        .subscribe(&topic, &format!("{topic}-g"), InitialOffset::Earliest)
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.record, record(1));
}

async fn a_deleted_group_starts_afresh(backend: Backend) {
    let (log, topic) = fresh_log(backend, "forgotten").await;
    let group = format!("{topic}-g");
    log.append(&topic, (0..5).map(record).collect())
        .await
        .unwrap();
    let read_all = |mut sub: Box<dyn paas_eventing::Subscription>| async move {
        let mut got = HashSet::new();
        while got.len() < 5 {
            let d = next(&mut sub).await;
            got.insert(d.record.value.clone());
            sub.commit(d.position).await.unwrap();
        }
        got
    };
    let sub = log
        .subscribe(&topic, &group, InitialOffset::Earliest)
        .await
        .unwrap();
    let first = read_all(sub).await;
    // Its reader gone, the group is deleted with its committed offsets.
    log.delete_group(&topic, &group).await.unwrap();
    // Deleting a group that is not there is fine.
    log.delete_group(&topic, &group).await.unwrap();
    let sub = log
        .subscribe(&topic, &group, InitialOffset::Earliest)
        .await
        .unwrap();
    assert_eq!(
        read_all(sub).await,
        first,
        "a group made again starts where it is told, not after the old commits"
    );
}

on_both_backends!(
    a_deleted_group_starts_afresh,
    appended_records_come_back_whole_and_in_key_order,
    a_group_resumes_after_what_it_committed,
    a_new_group_at_latest_sees_what_is_appended_after_it_subscribed,
    a_topic_never_made_is_refused_at_once,
);
