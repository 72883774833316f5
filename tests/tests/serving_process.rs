//! The serving foundation with the process runtime: same contract, no Docker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paas_e2e::{binary, Platform, RuntimeKind};

#[test]
fn deploy_serves_and_an_update_replaces_the_replica() {
    let p = Platform::start(RuntimeKind::Process);
    let hello = binary("hello");
    let hello = hello.to_str().unwrap();
    p.paas_ok(&["deploy", "hello", "--cmd", hello]);
    assert_eq!(p.get("hello", "/").body, "Hello World!\n");
    p.paas_ok(&["deploy", "hello", "--env", "TARGET=Process"]);
    assert_eq!(p.get("hello", "/").body, "Hello Process!\n");

    let revs = p.items("revisions");
    assert_eq!(revs.len(), 2);
    // The old revision is scaled to nothing once the new one serves.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let revs = p.items("revisions");
        let old = &revs[0];
        if old["status"]["actualReplicas"] == 0 {
            assert_eq!(old["status"]["desiredReplicas"], 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{old}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let logs = p.paas_ok(&["logs", "hello"]);
    assert!(logs.contains("hello: listening on port"), "{logs}");
}

#[test]
fn the_runtime_contract_reaches_the_replica() {
    let p = Platform::start(RuntimeKind::Process);
    // A replica that answers with its environment, on the port it is given.
    let program = "import os,http.server\nclass H(http.server.BaseHTTPRequestHandler):\n  def do_GET(self):\n    b=' '.join(os.environ[k] for k in ['K_SERVICE','K_CONFIGURATION','K_REVISION','PORT','GREETING']).encode()\n    self.send_response(200);self.send_header('Content-Length',str(len(b)));self.end_headers();self.wfile.write(b)\n  def log_message(self,*a): pass\nhttp.server.HTTPServer(('127.0.0.1',int(os.environ['PORT'])),H).serve_forever()\n";
    p.paas_ok(&[
        "deploy",
        "envy",
        "--cmd",
        "python3",
        "--arg",
        "-c",
        "--arg",
        program,
        "--env",
        "GREETING=hi",
    ]);
    let body = p.get("envy", "/").body;
    let parts: Vec<&str> = body.split(' ').collect();
    assert_eq!(parts[..3], ["envy", "envy", "envy-00001"], "{body}");
    assert!(parts[3].parse::<u16>().is_ok(), "{body}");
    assert_eq!(parts[4], "hi");
}

#[test]
fn a_crashing_replica_fails_the_deploy_with_its_logs() {
    let p = Platform::start(RuntimeKind::Process);
    let out = p.paas(&[
        "deploy",
        "crash",
        "--cmd",
        "sh",
        "--arg",
        "-c",
        "--arg",
        "echo boom: missing config >&2; exit 3",
    ]);
    assert!(!out.status.success());
    let err = paas_e2e::stderr(&out);
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("boom: missing config"), "{err}");
    // The service exists: its requests are told it is not ready and why, not 404.
    let r = p.get("crash", "/");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("default/crash is not ready") && r.body.contains("exited with code 3"),
        "{}",
        r.body
    );
}

#[test]
fn restart_on_the_same_data_dir_brings_services_back() {
    let mut p = Platform::start(RuntimeKind::Process);
    let hello = binary("hello");
    p.paas_ok(&["deploy", "hello", "--cmd", hello.to_str().unwrap()]);
    p.kill9();
    p.boot();
    assert_eq!(
        p.wait_for("hello", 200, Duration::from_secs(30)).body,
        "Hello World!\n"
    );
    assert_eq!(p.items("revisions").len(), 1);
}

#[test]
fn a_restart_under_steady_load_answers_no_404() {
    let mut p = Platform::start(RuntimeKind::Process);
    let hello = binary("hello");
    p.paas_ok(&[
        "deploy",
        "hello",
        "--cmd",
        hello.to_str().unwrap(),
        "--annotation",
        "autoscaling.knative.dev/min-scale=1",
    ]);
    let port = p.http_port;
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let load = std::thread::spawn({
        let (statuses, done) = (statuses.clone(), done.clone());
        move || {
            let host = format!("hello.default.localhost:{port}");
            while !done.load(Ordering::Relaxed) {
                // 0: no connection (paas is down between kill and boot).
                let status =
                    paas_e2e::http(port, &host, "GET", "/", &[], None).map_or(0, |r| r.status);
                statuses.lock().unwrap().push(status);
                if status == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    });
    let ok_count = |statuses: &Mutex<Vec<u16>>| {
        statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|s| **s == 200)
            .count()
    };
    let wait_for_ok = |at_least: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while ok_count(&statuses) < at_least {
            assert!(
                Instant::now() < deadline,
                "only {} answers of 200",
                ok_count(&statuses)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_ok(50);
    p.kill9();
    let before = statuses.lock().unwrap().len();
    p.boot();
    wait_for_ok(ok_count(&statuses) + 200);
    done.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let statuses = statuses.lock().unwrap();
    let after: Vec<u16> = statuses[before..].to_vec();
    let count = |code: u16| after.iter().filter(|s| **s == code).count();
    println!(
        "after the restart: {} requests, {} answered 200, {} refused while paas was down, others {:?}",
        after.len(),
        count(200),
        count(0),
        after.iter().filter(|s| **s != 200 && **s != 0).collect::<Vec<_>>()
    );
    assert_eq!(
        count(404),
        0,
        "a restarted paas answered 404 for a service that exists"
    );
    assert!(
        after.iter().all(|s| *s == 200 || *s == 0),
        "{:?}",
        after
            .iter()
            .filter(|s| **s != 200 && **s != 0)
            .collect::<Vec<_>>()
    );
}
