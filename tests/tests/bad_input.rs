//! Bad input gets a clear error and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use paas_e2e::{http, stderr, write_manifest, Platform, RuntimeKind};

const GOOD: &str = "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: paas-samples/hello:latest
          command: [/hello]
";

fn apply_fails(p: &Platform, file: &str, text: &str) -> String {
    let path = write_manifest(&p.data_dir, file, text);
    let out = p.paas(&["apply", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success(), "apply of {file} succeeded");
    stderr(&out)
}

#[test]
fn manifests_name_file_line_and_field() {
    let p = Platform::start(RuntimeKind::Process);

    let err = apply_fails(
        &p,
        "unknown.yaml",
        &GOOD.replace(
            "          command",
            "          imagePolicy: x\n          command",
        ),
    );
    assert!(
        err.contains(
            "unknown.yaml:10: spec.template.spec.containers[0].imagePolicy: unknown field"
        ),
        "{err}"
    );

    let err = apply_fails(
        &p,
        "noimage.yaml",
        &GOOD.replace(
            "        - image: paas-samples/hello:latest\n          command: [/hello]\n",
            "        - env: []\n",
        ),
    );
    assert!(
        err.contains("noimage.yaml:9: spec.template.spec.containers[0].image: is required"),
        "{err}"
    );

    let err = apply_fails(
        &p,
        "badname.yaml",
        &GOOD.replace("name: hello", "name: Hello_World"),
    );
    assert!(err.contains("badname.yaml:4: metadata.name:"), "{err}");
    assert!(err.contains("DNS-1035"), "{err}");

    // Nothing was created by any of them.
    assert!(p.items("services").is_empty());
}

#[test]
fn the_api_requires_the_token_and_unknown_hosts_are_404() {
    let p = Platform::start(RuntimeKind::Process);
    let r = http(
        p.api_port,
        "127.0.0.1",
        "GET",
        "/apis/serving.knative.dev/v1/services",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(r.body.contains("token"), "{}", r.body);
    let r = http(
        p.api_port,
        "127.0.0.1",
        "GET",
        "/apis/serving.knative.dev/v1/services",
        &[("Authorization", "Bearer wrong")],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 401);

    let token = std::fs::read_to_string(p.data_dir.join("token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let r = http(
        p.api_port,
        "127.0.0.1",
        "GET",
        "/apis/serving.knative.dev/v1/services",
        &[("Authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);

    let r = p.get("nobody", "/");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("nobody.default.localhost"), "{}", r.body);
}

#[test]
fn the_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = Platform::start(RuntimeKind::Process);
    let mode = std::fs::metadata(p.data_dir.join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn deploy_without_a_command_on_the_process_runtime_says_what_to_do() {
    let p = Platform::start(RuntimeKind::Process);
    let out = p.paas(&["deploy", "hello", "--image", "paas-samples/hello:latest"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--cmd"), "{err}");
}

#[test]
fn an_apply_whose_third_document_the_server_refuses_applies_none() {
    let p = Platform::start(RuntimeKind::Process);
    // The third is a valid manifest that only the server refuses: the process runtime
    // needs a command.
    let third = GOOD
        .replace("name: hello", "name: third")
        .replace("          command: [/hello]\n", "");
    let text = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n---\n{GOOD}---\n{third}"
    );
    let err = apply_fails(&p, "three.yaml", &text);
    assert!(
        err.contains("three.yaml:17: refused by the server; nothing was applied"),
        "{err}"
    );
    assert!(err.contains("spec.template.spec.containers[0]"), "{err}");
    assert!(p.items("brokers").is_empty());
    assert!(p.items("services").is_empty());
}
