//! Slow clients (slowloris): connections that trickle a request head a byte at a time
//! keep nobody else out, and the gateway closes them after its header-read timeout.
//! A test binary of its own, since it raises the process's open-files limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{exchange, gateway_with, metric, replica, wait_for, GET};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use paas_gateway::GatewayLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const SLOW_CLIENTS: usize = 500;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a slow client waits for the gateway to close its connection.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

/// Each slow client is two sockets in this process (its own and the gateway's end).
fn raise_open_files_limit(needed: u64) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < needed {
        assert!(
            hard >= needed,
            "this test needs {needed} open files and the hard limit is {hard}: raise it (ulimit -Hn)"
        );
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
}

/// Connect, send the start of a request head, then one more byte every 300 ms, never
/// finishing it. Returns how long the gateway kept the connection open, or None if it
/// was still open after the deadline.
async fn slow_client(port: u16, opened: mpsc::UnboundedSender<()>) -> Option<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: echo.default.localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let opened_at = Instant::now();
    let _ = opened.send(());
    let (mut rd, mut wr) = stream.split();
    let trickle = async {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                read = rd.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = tick.tick() => {
                    if wr.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(CLOSE_DEADLINE, trickle)
        .await
        .ok()
        .map(|()| opened_at.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_keep_nobody_out_and_are_closed_after_the_header_read_timeout() {
    raise_open_files_limit(2 * SLOW_CLIENTS as u64 + 256);
    let g = gateway_with(
        Some(replica().await),
        GatewayLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            ..GatewayLimits::default()
        },
    )
    .await;
    let (port, gateway) = (g.port, &g.gateway);
    let open_connections = || metric(gateway, "paas_gateway_connections_open");

    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let clients: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(slow_client(port, opened_tx.clone())))
        .collect();
    for _ in 0..SLOW_CLIENTS {
        opened_rx.recv().await.unwrap();
    }
    wait_for("the gateway took every slow connection", || {
        open_connections() >= SLOW_CLIENTS as u64
    })
    .await;
    let open = open_connections();

    // A normal request while they are all held open.
    let started = Instant::now();
    let (head, _) = tokio::time::timeout(Duration::from_secs(10), exchange(port, GET))
        .await
        .expect("the normal request was not answered within 10 s");
    let normal_took = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let mut kept_open = Vec::new();
    for client in clients {
        if let Some(open_for) = client.await.unwrap() {
            kept_open.push(open_for);
        }
    }
    kept_open.sort();
    let closed = kept_open.len();
    let ms = |d: Option<&Duration>| d.map_or(0, Duration::as_millis);
    println!(
        "{SLOW_CLIENTS} slow connections ({open} open at once in the gateway); {closed} closed by the gateway, \
         {}..{} ms after they opened (header_read_timeout {} ms); a normal request meanwhile took {} ms",
        ms(kept_open.first()),
        ms(kept_open.last()),
        HEADER_READ_TIMEOUT.as_millis(),
        normal_took.as_millis()
    );
    assert_eq!(
        closed, SLOW_CLIENTS,
        "slow connections still open after {CLOSE_DEADLINE:?}"
    );
    wait_for("the gateway counts no connection open", || {
        open_connections() == 0
    })
    .await;
}
