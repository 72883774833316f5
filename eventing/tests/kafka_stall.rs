//! A dispatcher's reader on a broker that is slow to serve a fetch. tansu 0.6 serves
//! every request from one storage task, one at a time, and reads each fetched record's
//! headers by scanning every header it stores, so the first fetch of a backlog holds
//! it for many seconds (34 s for the first fetch after the e2e crash test's restart)
//! and its group coordinator answers no heartbeat meanwhile. Here a proxy in front of
//! a tansu of the test's own does the same on purpose: while it passes on a fetch that
//! returns records, it holds every answer on every connection for `STALL`.
//!
//! With a group session shorter than that, the reader lost its session during every
//! such fetch, librdkafka dropped the assignment with the records fetched, joined
//! again and fetched the same offsets again: nothing was ever delivered.
//!
//! A test binary of its own: it runs its own broker, reached through the proxy only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paas_eventing::log::{KafkaConfig, KafkaLog};
use paas_eventing::{EventLog, InitialOffset};
use paas_test_kafka::Tansu;
use support::record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Longer than the 10-s session readers had, so that a reader with it cannot keep its
/// group through one such fetch, whatever the machine's speed.
const STALL: Duration = Duration::from_secs(15);

/// A fetch answer at least this large carries records (an empty one is about 200 bytes).
const FETCH_WITH_RECORDS: usize = 4096;

/// Kafka's Fetch API key.
const FETCH: i16 = 1;

/// Until when every answer is held, once a fetch with records was seen.
type Gate = Arc<Mutex<Option<Instant>>>;

/// Read one Kafka frame (a 4-byte length, then that many bytes); `None` at the end.
async fn frame(from: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; usize::try_from(u32::from_be_bytes(len)).ok()?];
    from.read_exact(&mut body).await.ok()?;
    let mut whole = len.to_vec();
    whole.extend_from_slice(&body);
    Some(whole)
}

/// Pass one client connection on to `upstream`, holding the answers as [`Gate`] says.
async fn relay(client: TcpStream, upstream: String, gate: Gate, fetches_held: Arc<Mutex<usize>>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // What each request asked for, by correlation id: an answer names only its id.
    let asked: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let requests = {
        let asked = asked.clone();
        async move {
            while let Some(f) = frame(&mut client_read).await {
                // A request header: api key (2 bytes), version (2), correlation id (4).
                if f.len() >= 12 {
                    let api = i16::from_be_bytes([f[4], f[5]]);
                    let id = i32::from_be_bytes([f[8], f[9], f[10], f[11]]);
                    asked.lock().unwrap().insert(id, api);
                }
                if server_write.write_all(&f).await.is_err() {
                    return;
                }
            }
        }
    };
    let answers = async move {
        while let Some(f) = frame(&mut server_read).await {
            let id = i32::from_be_bytes([f[4], f[5], f[6], f[7]]);
            let api = asked.lock().unwrap().remove(&id);
            if api == Some(FETCH) && f.len() >= FETCH_WITH_RECORDS {
                *fetches_held.lock().unwrap() += 1;
                let mut until = gate.lock().unwrap();
                let end = Instant::now() + STALL;
                *until = Some(until.map_or(end, |u| u.max(end)));
            }
            loop {
                let until = *gate.lock().unwrap();
                match until {
                    Some(u) if Instant::now() < u => tokio::time::sleep_until(u).await,
                    _ => break,
                }
            }
            if client_write.write_all(&f).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(requests, answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_reads_a_backlog_the_broker_is_slow_to_serve() {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let advertised = proxy.local_addr().unwrap().to_string();
    // A tansu of its own, telling clients to reach it through the proxy.
    let broker = Tansu::start_advertising(&advertised);
    let gate: Gate = Arc::default();
    let fetches_held = Arc::new(Mutex::new(0usize));
    {
        let (upstream, gate, fetches_held) =
            (broker.address.clone(), gate.clone(), fetches_held.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = proxy.accept().await {
                tokio::spawn(relay(
                    client,
                    upstream.clone(),
                    gate.clone(),
                    fetches_held.clone(),
                ));
            }
        });
    }

    let mut config = KafkaConfig::new(advertised);
    config.partitions = 3;
    // As under `paas up`: readers join as static members of this installation.
    config.instance = Some("stall-test".to_owned());
    let log = KafkaLog::connect(config).await.unwrap();
    let topic = "knative-broker-default-slow";
    let group = "knative-trigger-default-slow";
    log.ensure_topic(topic).await.unwrap();
    const EVENTS: usize = 300;
    log.append(topic, (0..EVENTS).map(record).collect())
        .await
        .unwrap();

    // A reader of a backlog, as the dispatcher of a paas restarted mid-stream is. (Not
    // preceded here by a reader dropped mid-join: in-process, a dropped reader closes in
    // the background and lives on beside the next one under the same member name, which
    // a killed paas does not; the e2e crash test covers the kill.)
    let mut sub = log
        .subscribe_as(topic, group, "default/slow", InitialOffset::Earliest)
        .await
        .unwrap();
    let mut got = HashSet::new();
    let read_all = async {
        while got.len() < EVENTS {
            let d = sub.next().await.unwrap();
            got.insert(d.record.value.clone());
            sub.commit(d.position).await.unwrap();
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(120), read_all).await;
    let held = *fetches_held.lock().unwrap();
    assert!(
        done.is_ok(),
        "{} of {EVENTS} records read in 120 s; the broker held its answers {held} times \
         for {STALL:?} while serving a fetch",
        got.len()
    );
    assert!(
        held >= 1,
        "no fetch was held: the test did not stall the broker"
    );
    drop(sub);
    drop(broker);
}
