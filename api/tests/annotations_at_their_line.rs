//! `paas apply` reads manifests with `parse_manifests`: every bad annotation is
//! reported before anything is sent, at its FILE:LINE and under its key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use paas_api::parse_manifests;

const SERVICE: &str = "\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: abc
        paas.dev/idle: sleep
    spec:
      containers:
        - image: paas-samples/hello:latest
";

#[test]
fn bad_annotations_name_their_file_line_and_key() {
    // A document after another one: lines count from the top of the file.
    let text = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n---\n{SERVICE}"
    );
    let problems = parse_manifests("hello.yaml", &text).unwrap_err().problems;
    assert_eq!(
        problems,
        [
            "hello.yaml:14: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale: \"abc\" must be a whole number from 0 to 4294967295",
            "hello.yaml:15: spec.template.metadata.annotations.paas.dev/idle: \"sleep\" is not an idle policy: use stop or freeze",
        ]
    );
}

#[test]
fn bad_service_and_trigger_annotations_name_their_line() {
    let service = SERVICE
        .replace("autoscaling.knative.dev/min-scale: abc", "autoscaling.knative.dev/min-scale: \"1\"")
        .replace("paas.dev/idle: sleep", "paas.dev/idle: freeze")
        .replace(
            "  name: hello\n",
            "  name: hello\n  annotations:\n    serving.knative.dev/rollout-duration: later\n    canary.paas.dev/steps: \"50,10\"\n",
        );
    let problems = parse_manifests("svc.yaml", &service).unwrap_err().problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("svc.yaml:7: metadata.annotations.canary.paas.dev/steps: "),
        "{problems:?}"
    );
    assert!(
        problems[1]
            .starts_with("svc.yaml:6: metadata.annotations.serving.knative.dev/rollout-duration: "),
        "{problems:?}"
    );

    let trigger = "\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
  annotations:
    kafka.eventing.knative.dev/delivery.order: Ordered
spec:
  broker: default
  subscriber:
    uri: http://127.0.0.1:9/
";
    let problems = parse_manifests("t.yaml", trigger).unwrap_err().problems;
    assert_eq!(
        problems,
        ["t.yaml:6: metadata.annotations.kafka.eventing.knative.dev/delivery.order: \"Ordered\" is not a delivery order: use ordered or unordered"]
    );
}
