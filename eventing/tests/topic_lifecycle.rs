//! Deleting and re-making a topic, on both backends. This has a test binary, hence a
//! tansu broker, of its own: tansu 0.6 fails idempotent produces to other topics that
//! run while it deletes one ("more or less than one row" in its SQLite engine).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use paas_eventing::{InitialOffset, LogError};
use support::{fresh_log, next, record, Backend};

async fn a_deleted_topic_is_refused_and_can_be_made_again(backend: Backend) {
    let (log, topic) = fresh_log(backend, "gone").await;
    log.append(&topic, vec![record(0)]).await.unwrap();
    log.delete_topic(&topic).await.unwrap();
    let refused =
        tokio::time::timeout(Duration::from_secs(15), log.append(&topic, vec![record(0)]))
            .await
            .expect("an append to a deleted topic must not hang");
    assert!(
        matches!(refused, Err(LogError::NoSuchTopic { .. })),
        "{refused:?}"
    );
    // Deleting twice is fine.
    log.delete_topic(&topic).await.unwrap();
    log.ensure_topic(&topic).await.unwrap();
    log.append(&topic, vec![record(2)]).await.unwrap();
    let mut sub = log
        .subscribe(&topic, &format!("{topic}-g"), InitialOffset::Earliest)
        .await
        .unwrap();
    assert_eq!(
        next(&mut sub).await.record,
        record(2),
        "nothing from before the delete"
    );
}

on_both_backends!(a_deleted_topic_is_refused_and_can_be_made_again);
