//! `paas up` as a process: it owns its ports and data directory, takes its token from
//! the environment, raises its open-files limit, and a SIGTERM ends it, busy or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use paas_e2e::{binary, write_manifest, Platform, RuntimeKind};

/// `paas up` on the given flags, expected to refuse to start: its stderr.
fn refused_up(args: &[&str]) -> String {
    let out = Command::new(binary("paas"))
        .arg("up")
        .args(["--runtime", "process"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "paas up started: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_paas_up_is_refused_on_the_same_port_or_data_directory() {
    let p = Platform::start(RuntimeKind::Process);
    let other = std::env::temp_dir().join(format!("paas-e2e-second-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    let port = p.http_port.to_string();
    let err = refused_up(&[
        "--data-dir",
        other.to_str().unwrap(),
        "--http",
        &port,
        "--api",
        "0",
    ]);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("in use"),
        "{err}"
    );
    let err = refused_up(&[
        "--data-dir",
        p.data_dir.to_str().unwrap(),
        "--http",
        "0",
        "--api",
        "0",
    ]);
    assert!(
        err.contains(&format!("pid {}", p.pid())) && err.contains("--data-dir"),
        "{err}"
    );
    // The first one still serves, alone.
    assert_eq!(p.get("nothing-here", "/").status, 404);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn paas_up_raises_its_open_files_limit_to_the_hard_maximum() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // paas up inherits a low soft limit, as from a login shell's default of 1,024.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(hard > 1024, "the hard limit is {hard}: nothing to raise");
    setrlimit(Resource::RLIMIT_NOFILE, 1024, hard).unwrap();
    let p = Platform::start(RuntimeKind::Process);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files  SOFT  HARD  files"
    assert_eq!(fields[3], fields[4], "{line}");
}

#[test]
fn paas_up_uses_the_token_it_is_given() {
    let token = "a-token-chosen-by-the-operator";
    let p = Platform::start_with_env(RuntimeKind::Process, &[], &[("PAAS_TOKEN", token)]);
    assert_eq!(
        std::fs::read_to_string(p.data_dir.join("token")).unwrap(),
        token
    );
    // The CLI reads the same token from the data directory.
    p.paas_ok(&["get", "services"]);
}

#[test]
fn a_sigterm_ends_a_busy_paas_up_whole() {
    let mut p = Platform::start(RuntimeKind::Process);
    let hello = binary("hello");
    let manifest: String = (0..150)
        .map(|i| {
            format!(
                "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: busy-{i}
spec:
  template:
    spec:
      containers:
        - command: [{}]
---
",
                hello.display()
            )
        })
        .collect();
    let path = write_manifest(&p.data_dir, "busy.yaml", &manifest);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    // While the services are still being reconciled and their replicas started.
    let status = p.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status:?}\n{}", p.log_text());
    let left: Vec<_> = std::fs::read_dir(p.data_dir.join("replicas"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "replica records left behind: {left:?}");
}
