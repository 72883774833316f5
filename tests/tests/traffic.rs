//! Traffic splits, tags and rollback through the CLI, on the process runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paas_e2e::{binary, http, Platform, RuntimeKind};

/// hello-00001 answers "Hello World!", hello-00002 "Hello Paas!".
fn two_revisions(p: &Platform) {
    let hello = binary("hello");
    p.paas_ok(&["deploy", "hello", "--cmd", hello.to_str().unwrap()]);
    p.paas_ok(&["deploy", "hello", "--env", "TARGET=Paas"]);
    assert_eq!(p.get("hello", "/").body, "Hello Paas!\n");
}

fn get_host(p: &Platform, host: &str) -> String {
    let host = format!("{host}.default.localhost:{}", p.http_port);
    let r = http(p.http_port, &host, "GET", "/", &[], None).unwrap();
    assert_eq!(r.status, 200, "{host}: {}", r.body);
    r.body
}

#[test]
fn a_90_10_split_tags_and_rollback() {
    let p = Platform::start(RuntimeKind::Process);
    two_revisions(&p);
    p.paas_ok(&[
        "deploy",
        "hello",
        "--traffic",
        "hello-00001=90",
        "--traffic",
        "@latest=10",
        "--tag",
        "@latest=candidate",
    ]);
    let routes = p.paas_ok(&["get", "routes"]);
    assert!(
        routes.contains("hello-00001") && routes.contains("90"),
        "{routes}"
    );
    // A split that does not add up is refused before anything is sent.
    let refused = p.paas(&["deploy", "hello", "--traffic", "hello-00001=50"]);
    assert!(!refused.status.success());
    assert!(paas_e2e::stderr(&refused).contains("add up to 50"));
    let refused = p.paas(&["deploy", "hello", "--traffic", "hello-00009=100"]);
    assert!(!refused.status.success());
    assert!(
        paas_e2e::stderr(&refused).contains("hello-00009 is not a revision of hello"),
        "{}",
        paas_e2e::stderr(&refused)
    );
    let described = p.paas_ok(&["describe", "route", "hello"]);
    assert!(described.contains("90% -> hello-00001"), "{described}");

    // 10,000 requests from 8 clients: the new revision's share is 10% ± 2 points.
    let port = p.http_port;
    let counts: Vec<(usize, usize)> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let host = format!("hello.default.localhost:{port}");
                let (mut old, mut new) = (0, 0);
                for _ in 0..1250 {
                    let r = http(port, &host, "GET", "/", &[], None).unwrap();
                    match r.body.as_str() {
                        "Hello World!\n" => old += 1,
                        "Hello Paas!\n" => new += 1,
                        other => panic!("unexpected answer {other:?} ({})", r.status),
                    }
                }
                (old, new)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let old: usize = counts.iter().map(|c| c.0).sum();
    let new: usize = counts.iter().map(|c| c.1).sum();
    let share = new as f64 * 100.0 / (old + new) as f64;
    println!("hello-00001: {old}, hello-00002: {new} ({share:.2}% for the 10% target)");
    assert_eq!(old + new, 10_000);
    assert!((share - 10.0).abs() <= 2.0, "{share:.2}% is not 10% ± 2");

    // The candidate's own URL reaches only it.
    for _ in 0..20 {
        assert_eq!(get_host(&p, "candidate-hello"), "Hello Paas!\n");
    }

    // All to the latest, then roll back: the revision before it serves everything
    // again, and the tag still reaches the candidate.
    p.paas_ok(&["deploy", "hello", "--traffic", "@latest=100"]);
    assert_eq!(p.get("hello", "/").body, "Hello Paas!\n");
    p.paas_ok(&["rollback", "hello"]);
    for _ in 0..50 {
        assert_eq!(p.get("hello", "/").body, "Hello World!\n");
    }
    assert_eq!(get_host(&p, "candidate-hello"), "Hello Paas!\n");
    let refused = p.paas(&["rollback", "hello"]);
    assert!(!refused.status.success());
    assert!(
        paas_e2e::stderr(&refused).contains("no earlier ready revision"),
        "{}",
        paas_e2e::stderr(&refused)
    );
    p.paas_ok(&["rollback", "hello", "--to", "hello-00002"]);
    assert_eq!(p.get("hello", "/").body, "Hello Paas!\n");
}

#[test]
fn a_tag_url_reaches_its_revision_even_at_zero() {
    let p = Platform::start_with(RuntimeKind::Process, paas_e2e::FAST_SCALE_TO_ZERO);
    two_revisions(&p);
    // hello-00001 keeps no traffic, only a tag: it goes to zero.
    p.paas_ok(&["deploy", "hello", "--tag", "hello-00001=stable"]);
    p.wait_revision(
        "hello-00001",
        Duration::from_secs(60),
        "scale to zero",
        |r| r["status"]["actualReplicas"] == 0 && r["status"]["desiredReplicas"] == 0,
    );
    // The tag URL wakes exactly that revision; the main URL stays on the latest.
    assert_eq!(get_host(&p, "stable-hello"), "Hello World!\n");
    for _ in 0..20 {
        assert_eq!(get_host(&p, "stable-hello"), "Hello World!\n");
        assert_eq!(p.get("hello", "/").body, "Hello Paas!\n");
    }
    let routes = p.paas_ok(&["get", "routes", "hello", "-o", "json"]);
    assert!(
        routes.contains("http://stable-hello.default.localhost"),
        "{routes}"
    );
}

/// The rollout the route's status records (`status.rollout`): each revision's percent,
/// newest last, and the step it rises by.
#[derive(Debug, Clone, PartialEq)]
struct Rollout {
    revisions: Vec<(String, u64)>,
    step_percent: u64,
    step_millis: u64,
}

fn rollout_of(p: &Platform) -> Option<Rollout> {
    let route: serde_json::Value =
        serde_json::from_str(&p.paas_ok(&["get", "route", "hello", "-o", "json"])).unwrap();
    let r = &route["status"]["rollout"];
    Some(Rollout {
        revisions: r["revisions"]
            .as_array()?
            .iter()
            .map(|s| {
                (
                    s["revisionName"].as_str().unwrap().to_owned(),
                    s["percent"].as_u64().unwrap(),
                )
            })
            .collect(),
        step_percent: r["stepPercent"].as_u64().unwrap_or(0),
        step_millis: r["stepMillis"].as_u64().unwrap_or(0),
    })
}

/// A new revision rolled out over 20 s under steady load: every request answered 200,
/// and the rollout went as the route's status records it.
///
/// The platform keeps only the rollout's current state and its step (no history of
/// the steps taken), so the test does not race to see each step: every state it reads
/// must lie on the recorded plan, 1% to start with and whole steps after that; 20 s
/// of steps leave ample time to read at least one of them after the blocking deploy.
fn rollout_under_load(runtime: RuntimeKind, deploy: &[&str]) {
    let p = Platform::start(runtime);
    let mut first = vec!["deploy", "hello"];
    first.extend_from_slice(deploy);
    first.extend_from_slice(&["--annotation", "serving.knative.dev/rollout-duration=20s"]);
    p.paas_ok(&first);
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let load = {
        let port = p.http_port;
        let (done, answered) = (done.clone(), answered.clone());
        std::thread::spawn(move || {
            let host = format!("hello.default.localhost:{port}");
            let mut statuses = Vec::new();
            while !done.load(Ordering::Relaxed) {
                statuses.push(http(port, &host, "GET", "/", &[], None).map_or(0, |r| r.status));
                answered.fetch_add(1, Ordering::Relaxed);
            }
            statuses
        })
    };
    // The load runs before the rollout starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Relaxed) < 20 {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.paas_ok(&["deploy", "hello", "--env", "TARGET=Paas"]);
    // Every state of the rollout read from the route's status until it is over.
    let mut seen: Vec<Rollout> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rollout = rollout_of(&p);
        if let Some(r) = &rollout {
            if seen.last() != Some(r) {
                seen.push(r.clone());
            }
        }
        if p.route_split("hello") == [("hello-00002".to_owned(), 100)]
            && rollout.is_some_and(|r| r.revisions == [("hello-00002".to_owned(), 100)])
        {
            break;
        }
        assert!(Instant::now() < deadline, "{seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    let statuses = load.join().unwrap();
    let bad = statuses.iter().filter(|s| **s != 200).count();
    let steps: Vec<&Rollout> = seen
        .iter()
        .filter(|r| r.revisions.iter().any(|(n, _)| n == "hello-00002") && r.revisions.len() == 2)
        .collect();
    let shares: Vec<u64> = seen
        .iter()
        .filter_map(|r| r.revisions.iter().find(|(n, _)| n == "hello-00002"))
        .map(|(_, percent)| *percent)
        .collect();
    println!(
        "{} requests during the rollout, {bad} not 200; hello-00002's share in each state read: {shares:?}",
        statuses.len()
    );
    assert_eq!(bad, 0);
    assert!(!steps.is_empty(), "no state of the rollout read: {seen:?}");
    let mut last = 0;
    for r in &steps {
        // Knative's plan for 20 s: 1% at once, then the 99% left over the 19 s after
        // the first second, in 19 steps of round(99 / 19) = 5%, one a second.
        assert_eq!((r.step_percent, r.step_millis), (5, 1000), "{r:?}");
        let new = r.revisions[1].1;
        assert_eq!(
            r.revisions[0],
            ("hello-00001".to_owned(), 100 - new),
            "{r:?}"
        );
        assert_eq!(new % 5, 1, "not 1% and then whole steps: {r:?}");
        assert!(new >= last, "went back: {seen:?}");
        last = new;
    }
    assert_eq!(p.get("hello", "/").body, "Hello Paas!\n");
}

#[test]
fn a_gradual_rollout_answers_every_request_on_processes() {
    let hello = binary("hello");
    rollout_under_load(RuntimeKind::Process, &["--cmd", hello.to_str().unwrap()]);
}

#[test]
fn a_gradual_rollout_answers_every_request_on_docker() {
    rollout_under_load(
        RuntimeKind::Docker,
        &["--image", "paas-samples/hello:latest"],
    );
}

#[test]
fn old_revisions_without_traffic_are_collected() {
    let p = Platform::start_with(RuntimeKind::Process, &["--keep-revisions", "1"]);
    let hello = binary("hello");
    p.paas_ok(&["deploy", "hello", "--cmd", hello.to_str().unwrap()]);
    p.paas_ok(&["deploy", "hello", "--env", "TARGET=two"]);
    // hello-00002 is tagged: it stays whatever its age.
    p.paas_ok(&["deploy", "hello", "--tag", "hello-00002=kept"]);
    for target in ["three", "four", "five"] {
        p.paas_ok(&["deploy", "hello", "--env", &format!("TARGET={target}")]);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let names = loop {
        let mut names: Vec<String> = p
            .items("revisions")
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        // hello-00005 serves, hello-00004 is the one inactive revision kept.
        if names == ["hello-00002", "hello-00004", "hello-00005"] {
            break names;
        }
        assert!(std::time::Instant::now() < deadline, "{names:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("revisions left: {names:?}");
    assert_eq!(p.get("hello", "/").body, "Hello five!\n");
    assert_eq!(get_host(&p, "kept-hello"), "Hello two!\n");
}
