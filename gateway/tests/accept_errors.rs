//! Out of file descriptors, the gateway counts its failed accepts, pauses, and serves
//! the waiting connection once descriptors are free again. A test binary of its own,
//! since it lowers the process's open-files limit and uses up every descriptor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::time::Duration;

use common::{exchange, gateway_to, metric, wait_for};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

const GET_NOBODY: &[u8] =
    b"GET / HTTP/1.1\r\nHost: nobody.default.localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn failed_accepts_are_counted_and_the_gateway_recovers() {
    let g = gateway_to(None).await;
    let port = g.port;
    let accept_errors = || metric(&g.gateway, "paas_gateway_accept_errors_total");
    // One answer first: the worker's runtime needs descriptors of its own to start.
    let (head, _) = exchange(port, GET_NOBODY).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Few descriptors, all taken but one, which the client's socket takes: the
    // gateway then has none for the connection it accepts.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, 256, hard).unwrap();
    let mut hoard = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hoard.push(f);
    }
    hoard.pop();
    let answer = tokio::spawn(async move { exchange(port, GET_NOBODY).await });

    wait_for("a failed accept counted", || accept_errors() > 0).await;
    let failed = accept_errors();
    drop(hoard);

    let (head, _) = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("the waiting connection was not served within 10 s of descriptors coming free")
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    println!(
        "{failed} failed accepts counted while out of descriptors; the connection was served after"
    );
}
