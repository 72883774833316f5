//! Scale from zero to n and back, end to end: a burst through the activator, scale-out
//! under containerConcurrency, draining scale-down under steady load, and back to zero.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paas_e2e::{binary, Platform, RuntimeKind};

/// A short stable window and grace period so that the test sees a whole cycle.
const FAST_AUTOSCALER: &[&str] = &[
    "--stable-window",
    "6s",
    "--scale-to-zero-grace-period",
    "1s",
];

fn replicas(rev: &serde_json::Value, field: &str) -> u64 {
    rev["status"][field].as_u64().unwrap_or(0)
}

fn scale_cycle(kind: RuntimeKind) {
    let p = Platform::start_with(kind, FAST_AUTOSCALER);
    let hello = binary("hello");
    let mut deploy = vec!["deploy", "slow"];
    match kind {
        RuntimeKind::Process => deploy.extend(["--cmd", hello.to_str().unwrap()]),
        RuntimeKind::Docker => deploy.extend(["--image", "paas-samples/hello:latest"]),
    }
    deploy.extend([
        "--env",
        "DELAY_MS=100",
        "--concurrency-limit",
        "10",
        "--annotation",
        "autoscaling.knative.dev/min-scale=0",
        "--annotation",
        "autoscaling.knative.dev/max-scale=5",
    ]);
    p.paas_ok(&deploy);

    // Idle, the revision goes to zero replicas: nothing runs.
    p.wait_revision(
        "slow-00001",
        Duration::from_secs(40),
        "scale to zero",
        |r| replicas(r, "actualReplicas") == 0 && replicas(r, "desiredReplicas") == 0,
    );
    if kind == RuntimeKind::Docker {
        no_containers_left(&p);
    }

    // 500 requests at once wake it; every one is answered, and with 10 requests per
    // replica at most, it scales beyond one replica.
    let answers = p.burst("slow", 500);
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 500 failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(answers.iter().all(|(_, b)| b == "Hello World!\n"));
    let rev = p.revision("slow-00001");
    assert!(
        replicas(&rev, "desiredReplicas") > 1,
        "did not scale out: {}",
        rev["status"]
    );

    // The autoscaler's view is visible to people and to Prometheus.
    let described = p.paas_ok(&["describe", "rev", "slow-00001"]);
    assert!(
        described.contains("Autoscaler:") && described.contains("stable average"),
        "{described}"
    );
    let metrics = p.metrics();
    assert!(
        metrics.contains(
            "paas_autoscaler_desired_replicas{namespace=\"default\",revision=\"slow-00001\"}"
        ) && metrics
            .contains("paas_revision_waiting{namespace=\"default\",revision=\"slow-00001\"}"),
        "{metrics}"
    );

    // Steady load while the autoscaler removes replicas: no request fails.
    let peak = replicas(&rev, "actualReplicas");
    let statuses = p.steady_load("slow", 3, Duration::from_secs(14));
    let bad = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(
        bad,
        0,
        "{bad} of {} requests failed during scale-down",
        statuses.len()
    );
    let after = p.revision("slow-00001");
    assert!(
        replicas(&after, "actualReplicas") < peak.max(2),
        "no scale-down under light load: peak {peak}, now {}",
        after["status"]
    );

    // Traffic stops: back to zero.
    p.wait_revision(
        "slow-00001",
        Duration::from_secs(40),
        "scale back to zero",
        |r| replicas(r, "actualReplicas") == 0,
    );
    if kind == RuntimeKind::Docker {
        no_containers_left(&p);
    }
}

/// Drained containers take a moment to stop and be removed.
fn no_containers_left(p: &Platform) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !p.containers().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {:?}",
            p.containers()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn scales_from_zero_to_many_and_back_with_processes() {
    scale_cycle(RuntimeKind::Process);
}

#[test]
fn scales_from_zero_to_many_and_back_with_docker() {
    scale_cycle(RuntimeKind::Docker);
}
