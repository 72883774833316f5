//! Waking from zero cheaper than a start: a container created ahead of time only needs
//! starting, and a frozen replica only needs resuming.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paas_e2e::{binary, Platform, RuntimeKind, FAST_SCALE_TO_ZERO};

fn at_zero(p: &Platform, revision: &str) {
    p.wait_revision(revision, Duration::from_secs(40), "scale to zero", |r| {
        r["status"]["actualReplicas"] == 0 && r["status"]["desiredReplicas"] == 0
    });
}

fn docker_state(id: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.State.Status}}", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Frozen by Docker (`paused`) or through the container's cgroup freezer.
fn container_frozen(id: &str) -> bool {
    if docker_state(id) == "paused" {
        return true;
    }
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.State.Pid}}", id])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for line in cgroups.lines() {
        let parts: Vec<&str> = line.splitn(3, ':').collect();
        if parts.len() == 3 && parts[1].split(',').any(|c| c == "freezer") {
            let state = std::fs::read_to_string(format!(
                "/sys/fs/cgroup/freezer{}/freezer.state",
                parts[2]
            ))
            .unwrap_or_default();
            return state.trim() == "FROZEN";
        }
        if let Some(path) = line.strip_prefix("0::") {
            let events = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cgroup.events"))
                .unwrap_or_default();
            return events.lines().any(|l| l == "frozen 1");
        }
    }
    false
}

fn wait_until(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cold_start_starts_the_container_created_with_the_revision() {
    let p = Platform::start_with(RuntimeKind::Docker, FAST_SCALE_TO_ZERO);
    p.paas_ok(&["deploy", "hello", "--image", "paas-samples/hello:latest"]);
    at_zero(&p, "hello-00001");
    wait_until("a prepared container", Duration::from_secs(30), || {
        p.prepared_containers().len() == 1
    });
    let prepared = p.prepared_containers()[0].clone();
    // The drained replica stops a moment after the revision reports zero.
    wait_until(
        "the drained replica to stop",
        Duration::from_secs(30),
        || p.containers().iter().all(|c| docker_state(c) != "running"),
    );

    assert_eq!(p.get("hello", "/").body, "Hello World!\n");
    assert_eq!(
        docker_state(&prepared),
        "running",
        "the cold start did not use the prepared container"
    );
    // And the next one is prepared.
    wait_until(
        "the next prepared container",
        Duration::from_secs(30),
        || p.prepared_containers().len() == 1,
    );
}

#[test]
fn a_frozen_container_is_resumed_not_restarted() {
    let p = Platform::start_with(RuntimeKind::Docker, FAST_SCALE_TO_ZERO);
    p.paas_ok(&[
        "deploy",
        "hello",
        "--image",
        "paas-samples/hello:latest",
        "--annotation",
        "paas.dev/idle=freeze",
    ]);
    let running = p.containers();
    assert_eq!(running.len(), 1);
    at_zero(&p, "hello-00001");
    wait_until("the replica to be frozen", Duration::from_secs(30), || {
        container_frozen(&running[0])
    });

    assert_eq!(p.get("hello", "/").body, "Hello World!\n");
    assert!(!container_frozen(&running[0]));
    assert_eq!(docker_state(&running[0]), "running");
    assert_eq!(p.containers(), running, "waking started another container");
}

/// The state letter of a process in /proc: R, S, T (stopped)...
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .map_or('?', |(_, rest)| rest.chars().next().unwrap_or('?'))
}

fn replica_pids(p: &Platform) -> Vec<u32> {
    std::fs::read_dir(p.data_dir.join("replicas"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            v["pid"].as_u64().unwrap() as u32
        })
        .collect()
}

#[test]
fn a_frozen_process_is_resumed_not_restarted() {
    let p = Platform::start_with(RuntimeKind::Process, FAST_SCALE_TO_ZERO);
    let hello = binary("hello");
    p.paas_ok(&[
        "deploy",
        "hello",
        "--cmd",
        hello.to_str().unwrap(),
        "--annotation",
        "paas.dev/idle=freeze",
    ]);
    let pids = replica_pids(&p);
    assert_eq!(pids.len(), 1);
    at_zero(&p, "hello-00001");
    wait_until(
        "the replica to be stopped (SIGSTOP)",
        Duration::from_secs(30),
        || proc_state(pids[0]) == 'T',
    );

    assert_eq!(p.get("hello", "/").body, "Hello World!\n");
    assert_ne!(proc_state(pids[0]), 'T');
    assert_eq!(replica_pids(&p), pids, "waking started another process");
}

#[test]
fn an_invalid_idle_policy_is_refused() {
    let p = Platform::start(RuntimeKind::Process);
    let out = p.paas(&[
        "deploy",
        "hello",
        "--cmd",
        "/bin/true",
        "--annotation",
        "paas.dev/idle=hibernate",
    ]);
    assert!(!out.status.success());
    let err = paas_e2e::stderr(&out);
    assert!(
        err.contains("paas.dev/idle") && err.contains("freeze"),
        "{err}"
    );
}

#[test]
fn a_container_frozen_when_paas_died_is_thawed_and_serves_after_a_restart() {
    let mut p = Platform::start_with(RuntimeKind::Docker, FAST_SCALE_TO_ZERO);
    p.paas_ok(&[
        "deploy",
        "hello",
        "--image",
        "paas-samples/hello:latest",
        "--annotation",
        "paas.dev/idle=freeze",
    ]);
    let running = p.containers();
    at_zero(&p, "hello-00001");
    wait_until("the replica to be frozen", Duration::from_secs(30), || {
        container_frozen(&running[0])
    });
    p.kill9();
    p.boot();
    assert!(
        !container_frozen(&running[0]),
        "the adopted container is still frozen"
    );
    assert_eq!(
        p.wait_for("hello", 200, Duration::from_secs(60)).body,
        "Hello World!\n"
    );
}
