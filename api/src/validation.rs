//! Semantic validation. Every problem names the field path it is about, so the manifest
//! reader can point at the line, and all problems are reported at once.

use std::fmt;

use crate::annotations::{self, AnnotationError};
use crate::names::{dns1035_label_problem, dns1123_label_problem, env_name_problem};
use crate::serving::{Container, Probe, RevisionSpec, Service, TrafficTarget, Unsupported};

/// A field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A field that is accepted but not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What validating one object found.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<Warning>,
}

impl Report {
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn unsupported(&mut self, path: &str, field: &str, value: &Unsupported) {
        if value.is_some() {
            self.warnings.push(Warning {
                path: join(path, field),
                message: "is a Knative field that paas does not support yet; it is ignored".into(),
            });
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Kubernetes' limit on one object's annotations, keys and values counted together.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Annotations within Kubernetes' total size: an object is read whole on every
/// reconcile and watch, and a service's are copied into each of its revisions.
pub(crate) fn validate_annotations(
    annotations: &std::collections::BTreeMap<String, String>,
    path: &str,
    r: &mut Report,
) {
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ANNOTATION_BYTES {
        r.error(
            path,
            format!(
                "are {total} bytes (keys and values together): at most {MAX_ANNOTATION_BYTES} (256 KiB) are allowed, as in Kubernetes; keep large data out of annotations"
            ),
        );
    }
}

/// A NUL byte cannot be passed to a process (its environment and arguments are C
/// strings): refused now rather than failing at every start.
fn validate_no_nul(value: &str, path: String, r: &mut Report) {
    if value.contains('\0') {
        r.error(
            path,
            "contains a NUL byte, which a process's environment and arguments cannot hold",
        );
    }
}

/// Each problem an annotation parser found, at `<path>.<key>`.
pub(crate) fn annotation_problems(
    problems: impl IntoIterator<Item = AnnotationError>,
    path: &str,
    r: &mut Report,
) {
    for p in problems {
        r.error(format!("{path}.{}", p.key), p.problem);
    }
}

pub fn validate_service(svc: &Service) -> Report {
    let mut r = Report::default();
    if let Some(problem) = dns1035_label_problem(&svc.metadata.name) {
        r.error("metadata.name", problem);
    }
    if let Some(ns) = &svc.metadata.namespace {
        if let Some(problem) = dns1123_label_problem(ns) {
            r.error("metadata.namespace", problem);
        }
    }
    if svc.metadata.generate_name.is_some() {
        r.warnings.push(Warning {
            path: "metadata.generateName".into(),
            message: "is not supported; give metadata.name".into(),
        });
    }
    r.unsupported("metadata", "finalizers", &svc.metadata.finalizers);
    validate_annotations(&svc.metadata.annotations, "metadata.annotations", &mut r);

    let template = &svc.spec.template;
    r.unsupported("spec.template.metadata", "name", &template.metadata.name);
    validate_annotations(
        &template.metadata.annotations,
        "spec.template.metadata.annotations",
        &mut r,
    );
    annotation_problems(
        annotations::template_problems(&template.metadata.annotations),
        "spec.template.metadata.annotations",
        &mut r,
    );
    validate_revision_spec(&template.spec, "spec.template.spec", &mut r);
    validate_traffic(&svc.spec.traffic, "spec.traffic", &mut r);
    annotation_problems(
        annotations::service_problems(&svc.metadata.annotations),
        "metadata.annotations",
        &mut r,
    );
    r
}

pub fn validate_revision_spec(spec: &RevisionSpec, path: &str, r: &mut Report) {
    match spec.containers.len() {
        0 => r.error(
            join(path, "containers"),
            "one container is required (with an image)",
        ),
        1 => validate_container(&spec.containers[0], &format!("{path}.containers[0]"), r),
        n => r.error(
            join(path, "containers"),
            format!("has {n} containers: paas runs exactly one container per revision"),
        ),
    }
    if let Some(cc) = spec.container_concurrency {
        if cc > 1000 {
            r.error(
                join(path, "containerConcurrency"),
                format!("{cc} is out of range: use 0 (unlimited) to 1000"),
            );
        }
    }
    if let Some(t) = spec.timeout_seconds {
        if t == 0 || t > 3600 {
            r.error(
                join(path, "timeoutSeconds"),
                format!("{t} is out of range: use 1 to 3600"),
            );
        }
    }
    for (field, value) in [
        (
            "responseStartTimeoutSeconds",
            &spec.response_start_timeout_seconds,
        ),
        ("idleTimeoutSeconds", &spec.idle_timeout_seconds),
        ("serviceAccountName", &spec.service_account_name),
        ("volumes", &spec.volumes),
        ("imagePullSecrets", &spec.image_pull_secrets),
        ("enableServiceLinks", &spec.enable_service_links),
        ("affinity", &spec.affinity),
        ("nodeSelector", &spec.node_selector),
        ("tolerations", &spec.tolerations),
        ("runtimeClassName", &spec.runtime_class_name),
        ("securityContext", &spec.security_context),
        ("initContainers", &spec.init_containers),
        ("priorityClassName", &spec.priority_class_name),
        ("schedulerName", &spec.scheduler_name),
        ("hostAliases", &spec.host_aliases),
        ("dnsPolicy", &spec.dns_policy),
        ("dnsConfig", &spec.dns_config),
        (
            "topologySpreadConstraints",
            &spec.topology_spread_constraints,
        ),
    ] {
        r.unsupported(path, field, value);
    }
}

fn validate_container(c: &Container, path: &str, r: &mut Report) {
    let has_image = c.image.as_deref().is_some_and(|i| !i.trim().is_empty());
    if !has_image && c.command.is_empty() {
        r.error(
            join(path, "image"),
            "is required (or, for the process runtime, a command)",
        );
    }
    for (i, env) in c.env.iter().enumerate() {
        if let Some(problem) = env_name_problem(&env.name) {
            r.error(format!("{path}.env[{i}].name"), problem);
        }
        if env.name == "PORT" || env.name.starts_with("K_") {
            r.error(
                format!("{path}.env[{i}].name"),
                format!("{} is reserved by the runtime contract", env.name),
            );
        }
        if let Some(value) = &env.value {
            validate_no_nul(value, format!("{path}.env[{i}].value"), r);
        }
        r.unsupported(&format!("{path}.env[{i}]"), "valueFrom", &env.value_from);
    }
    for (field, list) in [("command", &c.command), ("args", &c.args)] {
        for (i, arg) in list.iter().enumerate() {
            validate_no_nul(arg, format!("{path}.{field}[{i}]"), r);
        }
    }
    if c.ports.len() > 1 {
        r.error(
            join(path, "ports"),
            "only one port may be declared: the one requests are sent to",
        );
    }
    if let Some(port) = c.ports.first() {
        if port.container_port == Some(0) {
            r.error(
                format!("{path}.ports[0].containerPort"),
                "must be 1 to 65535",
            );
        }
        if let Some(name) = &port.name {
            if name != "http1" && name != "h2c" {
                r.error(
                    format!("{path}.ports[0].name"),
                    format!("{name:?} is not a protocol name: use http1 or h2c"),
                );
            }
        }
    }
    if let Some(probe) = &c.readiness_probe {
        validate_probe(probe, &join(path, "readinessProbe"), r);
    }
    for (field, value) in [
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
        ("resources", &c.resources),
        ("envFrom", &c.env_from),
        ("volumeMounts", &c.volume_mounts),
        ("securityContext", &c.security_context),
        ("workingDir", &c.working_dir),
        ("imagePullPolicy", &c.image_pull_policy),
        ("terminationMessagePath", &c.termination_message_path),
        ("terminationMessagePolicy", &c.termination_message_policy),
        ("lifecycle", &c.lifecycle),
        ("stdin", &c.stdin),
        ("tty", &c.tty),
    ] {
        r.unsupported(path, field, value);
    }
}

fn validate_probe(p: &Probe, path: &str, r: &mut Report) {
    if p.http_get.is_some() && p.tcp_socket.is_some() {
        r.error(path, "give only one of httpGet and tcpSocket");
    }
    if p.exec.is_some() || p.grpc.is_some() {
        r.error(
            path,
            "exec and grpc probes are not supported: use httpGet or tcpSocket",
        );
    }
    if let Some(h) = &p.http_get {
        if let Some(path_value) = &h.path {
            if !path_value.starts_with('/') {
                r.error(format!("{path}.httpGet.path"), "must start with '/'");
            }
        }
        r.unsupported(&join(path, "httpGet"), "host", &h.host);
    }
    if p.period_seconds == Some(0) {
        r.error(format!("{path}.periodSeconds"), "must be at least 1");
    }
}

fn validate_traffic(traffic: &[TrafficTarget], path: &str, r: &mut Report) {
    if traffic.is_empty() {
        return;
    }
    let mut total = 0u32;
    let mut tags = Vec::new();
    for (i, t) in traffic.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let latest = t.latest_revision.unwrap_or(t.revision_name.is_none());
        if latest && t.revision_name.is_some() {
            r.error(
                format!("{at}.revisionName"),
                "must not be set together with latestRevision: true",
            );
        }
        if t.configuration_name.is_some() {
            r.error(
                format!("{at}.configurationName"),
                "is not allowed in a Service: use latestRevision",
            );
        }
        if t.url.is_some() {
            r.error(format!("{at}.url"), "is set by paas; remove it");
        }
        let percent = t.percent.unwrap_or(0);
        if percent > 100 {
            r.error(format!("{at}.percent"), format!("{percent} is over 100"));
        }
        total += percent;
        if let Some(tag) = &t.tag {
            if let Some(problem) = dns1035_label_problem(tag) {
                r.error(format!("{at}.tag"), problem);
            }
            if tags.contains(tag) {
                r.error(format!("{at}.tag"), format!("{tag:?} is used twice"));
            }
            tags.push(tag.clone());
        }
    }
    if total != 100 {
        r.error(
            path,
            format!("percents add up to {total}: they must add up to 100"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use crate::serving::{Container, ServiceSpec};

    fn service(name: &str, container: Container) -> Service {
        let mut spec = ServiceSpec::default();
        spec.template.spec.containers.push(container);
        Service::new("default", name, spec)
    }

    fn image(i: &str) -> Container {
        Container {
            image: Some(i.into()),
            ..Container::default()
        }
    }

    #[test]
    fn a_plain_service_is_valid() {
        let r = validate_service(&service("hello", image("paas-samples/hello:latest")));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn missing_image_names_the_field() {
        let r = validate_service(&service("hello", Container::default()));
        assert_eq!(r.errors[0].path, "spec.template.spec.containers[0].image");
    }

    #[test]
    fn invalid_name_names_metadata_name() {
        let r = validate_service(&service("Hello_World", image("x")));
        assert_eq!(r.errors[0].path, "metadata.name");
    }

    #[test]
    fn unsupported_fields_warn_with_their_path() {
        let mut c = image("x");
        c.resources = Some(serde_json::json!({"limits": {"cpu": "1"}}));
        let r = validate_service(&service("hello", c));
        assert!(r.errors.is_empty());
        assert_eq!(
            r.warnings[0].path,
            "spec.template.spec.containers[0].resources"
        );
    }

    #[test]
    fn traffic_must_sum_to_100() {
        let mut svc = service("hello", image("x"));
        svc.spec.traffic = vec![
            TrafficTarget {
                revision_name: Some("hello-00001".into()),
                percent: Some(50),
                ..TrafficTarget::default()
            },
            TrafficTarget {
                latest_revision: Some(true),
                percent: Some(40),
                ..TrafficTarget::default()
            },
        ];
        let r = validate_service(&svc);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].message.contains("90"));
    }

    #[test]
    fn reserved_env_and_bad_annotation_are_errors() {
        let mut c = image("x");
        c.env.push(crate::serving::EnvVar {
            name: "PORT".into(),
            value: Some("1".into()),
            value_from: None,
        });
        let mut svc = service("hello", c);
        svc.spec
            .template
            .metadata
            .annotations
            .insert(keys::MIN_SCALE.into(), "many".into());
        let r = validate_service(&svc);
        let paths: Vec<_> = r.errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"spec.template.spec.containers[0].env[0].name"));
        assert!(
            paths.contains(&"spec.template.metadata.annotations.autoscaling.knative.dev/min-scale")
        );
    }
    #[test]
    fn annotations_over_256_kib_in_total_name_metadata_annotations() {
        let mut svc = service("hello", image("x"));
        // Keys count too: 2 keys of 1 byte and values that fill the limit exactly.
        let half = MAX_ANNOTATION_BYTES / 2 - 1;
        svc.metadata
            .annotations
            .insert("a".into(), "v".repeat(half));
        svc.metadata
            .annotations
            .insert("b".into(), "v".repeat(half));
        assert!(validate_service(&svc).errors.is_empty());
        svc.metadata.annotations.insert("c".into(), String::new());
        let r = validate_service(&svc);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].path, "metadata.annotations");
        assert!(
            r.errors[0].message.contains("262145 bytes"),
            "{:?}",
            r.errors
        );

        let mut svc = service("hello", image("x"));
        svc.spec
            .template
            .metadata
            .annotations
            .insert("big".into(), "v".repeat(3 << 20));
        let paths: Vec<_> = validate_service(&svc)
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["spec.template.metadata.annotations"]);
    }

    #[test]
    fn a_nul_byte_in_env_or_arguments_names_the_field() {
        let mut c = image("x");
        c.env.push(crate::serving::EnvVar {
            name: "GREETING".into(),
            value: Some("hello\0world".into()),
            value_from: None,
        });
        c.env.push(crate::serving::EnvVar {
            name: "A\0B".into(),
            value: Some("ok".into()),
            value_from: None,
        });
        c.args = vec!["--ok".into(), "bad\0".into()];
        let r = validate_service(&service("hello", c));
        let paths: Vec<_> = r.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.template.spec.containers[0].env[0].value",
                "spec.template.spec.containers[0].env[1].name",
                "spec.template.spec.containers[0].args[1]",
            ],
            "{:?}",
            r.errors
        );
        assert!(r.errors[0].message.contains("NUL byte"), "{:?}", r.errors);
    }

    #[test]
    fn an_overflowing_rollout_duration_is_an_error_not_a_panic() {
        let mut svc = service("hello", image("x"));
        svc.metadata.annotations.insert(
            keys::ROLLOUT_DURATION.into(),
            "99999999999999999999h".into(),
        );
        let r = validate_service(&svc);
        assert_eq!(
            r.errors[0].path,
            "metadata.annotations.serving.knative.dev/rollout-duration"
        );
        assert!(
            r.errors[0].message.contains("is too long"),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn every_bad_annotation_of_every_family_names_its_key() {
        let mut svc = service("hello", image("x"));
        for (key, value) in [
            ("autoscaling.knative.dev/metric", "cpu"),
            (keys::MIN_SCALE, "abc"),
            ("autoscaling.knative.dev/window", "2s"),
            (keys::IDLE, "sleep"),
            (keys::FREEZE_RETENTION, "forever"),
        ] {
            svc.spec
                .template
                .metadata
                .annotations
                .insert(key.into(), value.into());
        }
        for (key, value) in [
            (crate::canary::STEPS, "50,10"),
            (crate::canary::SUCCESS_RATE, "101"),
            (keys::ROLLOUT_DURATION, "later"),
        ] {
            svc.metadata.annotations.insert(key.into(), value.into());
        }
        let r = validate_service(&svc);
        let paths: Vec<_> = r.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.template.metadata.annotations.autoscaling.knative.dev/metric",
                "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale",
                "spec.template.metadata.annotations.autoscaling.knative.dev/window",
                "spec.template.metadata.annotations.paas.dev/idle",
                "spec.template.metadata.annotations.paas.dev/freeze-retention",
                "metadata.annotations.canary.paas.dev/steps",
                "metadata.annotations.canary.paas.dev/success-rate",
                "metadata.annotations.serving.knative.dev/rollout-duration",
            ],
            "{:?}",
            r.errors
        );
        assert_eq!(
            r.errors[3].message,
            "\"sleep\" is not an idle policy: use stop or freeze"
        );
    }
}
