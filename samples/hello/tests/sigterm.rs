//! The hello binary stopped as a replica is: SIGTERM while a request is in flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Kills the server if the test ends early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

/// Reads until the stream ends with `end`.
fn read_until(conn: &mut TcpStream, end: &str) -> String {
    let mut got = Vec::new();
    let mut byte = [0];
    while !got.ends_with(end.as_bytes()) {
        assert_eq!(
            conn.read(&mut byte).unwrap(),
            1,
            "closed before {end:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_hello"))
            .env("PORT", "0")
            .env("TARGET", "Drain")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let listening = next_line(&mut out);
    let port: u16 = listening
        .trim()
        .strip_prefix("hello: listening on port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{listening:?}"));

    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .unwrap();
    // Sent once the handler reads the body: the request is in flight.
    read_until(&mut conn, "HTTP/1.1 100 Continue\r\n\r\n");

    kill(Pid::from_raw(server.0.id() as i32), Signal::SIGTERM).unwrap();
    let draining = next_line(&mut out);
    assert!(draining.starts_with("hello: SIGTERM"), "{draining:?}");
    // The request is finished after the signal, on the connection it came on.
    conn.write_all(b"body").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nHello Drain!\n"), "{answer}");

    assert_eq!(next_line(&mut out), "hello: stopped\n");
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
