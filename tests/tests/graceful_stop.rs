//! A replica stopped while it serves a request answers it first: the hello sample
//! handles SIGTERM by finishing the requests in flight (the platform drains what goes
//! through the gateway before it stops a replica; this request goes to the replica
//! directly, so only the replica's own drain can save it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use paas_e2e::{binary, Platform, RuntimeKind};

/// The one replica of a service: where it listens, and how to read its log and see
/// that it is gone.
struct Replica {
    port: u16,
    log: Box<dyn Fn() -> String>,
    gone: Box<dyn Fn() -> bool>,
}

fn process_replica(p: &Platform) -> Replica {
    let dir = p.data_dir.join("replicas");
    let records: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|path| path.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    let id = record["id"].as_str().unwrap().to_owned();
    let record_path = records[0].clone();
    let log_path = dir.join(format!("{id}.log"));
    Replica {
        port: record["port"].as_u64().unwrap() as u16,
        log: Box::new(move || std::fs::read_to_string(&log_path).unwrap_or_default()),
        gone: Box::new(move || !record_path.exists()),
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn docker_replica(p: &Platform) -> Replica {
    let containers = p.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let id = containers[0].clone();
    // "127.0.0.1:PORT", the binding the runtime asked for.
    let bound = docker(&["port", &id, "8080/tcp"]);
    let port = bound
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, port)| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("docker port {id}: {bound}"));
    let (log_id, gone_id) = (id.clone(), id);
    Replica {
        port,
        log: Box::new(move || docker(&["logs", &log_id])),
        gone: Box::new(move || {
            docker(&["inspect", "--format", "{{.State.Running}}", &gone_id]).trim() != "true"
        }),
    }
}

fn wait_until(what: &str, within: Duration, p: &Platform, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}\n--- paas up log ---\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads until the stream ends with `end`.
fn read_until(conn: &mut TcpStream, end: &str) {
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
}

fn a_deleted_service_answers_the_request_its_replica_was_serving(
    runtime: RuntimeKind,
    image: &[&str],
    replica: fn(&Platform) -> Replica,
) {
    let p = Platform::start(runtime);
    let mut deploy = vec!["deploy", "hello"];
    deploy.extend(image);
    p.paas_ok(&deploy);
    assert_eq!(
        p.wait_for("hello", 200, Duration::from_secs(60)).body,
        "Hello World!\n"
    );
    let replica = replica(&p);

    let mut conn = TcpStream::connect(("127.0.0.1", replica.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(
        b"POST / HTTP/1.1\r\nHost: hello\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .unwrap();
    // hello sends this once it reads the body: the request is in flight.
    read_until(&mut conn, "HTTP/1.1 100 Continue\r\n\r\n");

    p.paas_ok(&["delete", "service", "hello"]);
    wait_until("the replica's SIGTERM", Duration::from_secs(30), &p, || {
        (replica.log)().contains("hello: SIGTERM")
    });
    // The rest of the request, after the signal: it is still answered.
    conn.write_all(b"body").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nHello World!\n"), "{answer}");
    // And then the replica ended.
    wait_until("the replica's end", Duration::from_secs(30), &p, || {
        (replica.gone)()
    });
}

#[test]
fn a_deleted_service_answers_the_request_its_replica_was_serving_on_processes() {
    let hello = binary("hello");
    a_deleted_service_answers_the_request_its_replica_was_serving(
        RuntimeKind::Process,
        &["--cmd", hello.to_str().unwrap()],
        process_replica,
    );
}

#[test]
fn a_deleted_service_answers_the_request_its_replica_was_serving_on_docker() {
    a_deleted_service_answers_the_request_its_replica_was_serving(
        RuntimeKind::Docker,
        &["--image", "paas-samples/hello:latest"],
        docker_replica,
    );
}
