//! The serving foundation end to end, with the Docker runtime and the sample image.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paas_e2e::{write_manifest, Platform, RuntimeKind};

const IMAGE: &str = "paas-samples/hello:latest";

fn revision_names(p: &Platform) -> Vec<String> {
    p.items("revisions")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn deploy_update_and_reapply_with_docker() {
    let p = Platform::start(RuntimeKind::Docker);
    let url = p.paas_ok(&["deploy", "hello", "--image", IMAGE]);
    assert_eq!(
        url.trim(),
        format!("http://hello.default.localhost:{}", p.http_port)
    );
    let r = p.get("hello", "/");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello World!\n"));

    // A new template makes hello-00002, which takes the traffic; hello-00001 stops.
    p.paas_ok(&["deploy", "hello", "--env", "TARGET=Paas"]);
    assert_eq!(p.get("hello", "/").body, "Hello Paas!\n");
    assert_eq!(revision_names(&p), ["hello-00001", "hello-00002"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let containers = p.containers();
        let revisions: Vec<String> = containers
            .iter()
            .map(|c| p.container_label(c, "serving.knative.dev/revision"))
            .collect();
        if revisions == ["hello-00002"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {revisions:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The same manifest twice creates one revision, not two.
    let dir = p.data_dir.join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = write_manifest(
        &dir,
        "greeter.yaml",
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: greeter\nspec:\n  template:\n    spec:\n      containers:\n        - image: paas-samples/hello:latest\n          env:\n            - name: TARGET\n              value: YAML\n",
    );
    let manifest = manifest.to_str().unwrap();
    assert_eq!(
        p.paas_ok(&["apply", "-f", manifest]).trim(),
        "service.serving.knative.dev/greeter created"
    );
    assert_eq!(
        p.paas_ok(&["apply", "-f", manifest]).trim(),
        "service.serving.knative.dev/greeter unchanged"
    );
    assert_eq!(
        p.wait_for("greeter", 200, Duration::from_secs(60)).body,
        "Hello YAML!\n"
    );
    let greeter_revisions: Vec<String> = revision_names(&p)
        .into_iter()
        .filter(|r| r.starts_with("greeter"))
        .collect();
    assert_eq!(greeter_revisions, ["greeter-00001"]);
}

#[test]
fn kill9_then_restart_serves_again_without_new_revisions_or_orphans() {
    let mut p = Platform::start(RuntimeKind::Docker);
    p.paas_ok(&["deploy", "hello", "--image", IMAGE]);
    assert_eq!(p.get("hello", "/").status, 200);
    let before = p.items("revisions");

    p.kill9();
    // A container that no revision owns, as a crash between start and record would leave.
    let instance = std::fs::read_to_string(p.data_dir.join("instance")).unwrap();
    let orphan = std::process::Command::new("docker")
        .args(["run", "-d", "--label"])
        .arg(format!("paas.dev/instance={}", instance.trim()))
        .args([
            "--label",
            "paas.dev/revision-uid=gone",
            "--label",
            "serving.knative.dev/revision=gone-00001",
        ])
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        orphan.status.success(),
        "{}",
        String::from_utf8_lossy(&orphan.stderr)
    );
    let orphan = String::from_utf8_lossy(&orphan.stdout).trim().to_owned();

    p.boot();
    assert_eq!(
        p.wait_for("hello", 200, Duration::from_secs(60)).body,
        "Hello World!\n"
    );
    let after = p.items("revisions");
    assert_eq!(
        after.len(),
        before.len(),
        "a restart must not create revisions"
    );
    assert_eq!(after[0]["metadata"]["uid"], before[0]["metadata"]["uid"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let containers = p.containers();
        if !containers.contains(&orphan) && containers.len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "containers after restart: {containers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_container_is_replaced() {
    let p = Platform::start(RuntimeKind::Docker);
    p.paas_ok(&["deploy", "hello", "--image", IMAGE]);
    let first = p.containers();
    assert_eq!(first.len(), 1);
    let killed = std::process::Command::new("docker")
        .args(["kill", &first[0]])
        .output()
        .unwrap();
    assert!(killed.status.success());
    assert_eq!(
        p.wait_for("hello", 200, Duration::from_secs(60)).body,
        "Hello World!\n"
    );
    let now = p.containers();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], first[0]);
}

#[test]
fn a_missing_image_fails_the_deploy_with_what_to_do() {
    let p = Platform::start(RuntimeKind::Docker);
    let out = p.paas(&[
        "deploy",
        "nope",
        "--image",
        "paas-samples/does-not-exist:latest",
        "--wait-timeout",
        "60",
    ]);
    assert!(!out.status.success());
    let err = paas_e2e::stderr(&out);
    assert!(err.contains("not found locally"), "{err}");
    assert!(err.contains("samples/build.sh"), "{err}");
}
