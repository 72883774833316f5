//! Harness for end-to-end tests: start the real `paas up` on free ports with a
//! temporary data directory, run the real CLI against it, talk HTTP to its gateway,
//! and clean up every process and container it started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Kafka broker and plain client the tests share with eventing's own (a crate of
/// their own, so that neither suite depends on the other).
pub use paas_test_kafka as kafka;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `paas up` flags for tests that wait for a revision to scale to zero: a 6 s stable
/// window and no grace period.
pub const FAST_SCALE_TO_ZERO: &[&str] = &[
    "--stable-window",
    "6s",
    "--scale-to-zero-grace-period",
    "0s",
];

/// The workspace's target/debug, where `cargo build --workspace --bins` put the binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/e2e-HASH → target/debug
    exe.parent().unwrap().parent().unwrap().to_owned()
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The gateway's and the API's ports from `paas up`'s `addresses.json`, once it is
/// there whole (`paas up` writes it by renaming).
fn read_addresses(path: &Path) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let port = |key: &str| -> Option<u16> {
        let address: std::net::SocketAddr = v[key].as_str()?.parse().ok()?;
        Some(address.port())
    };
    Some((port("http")?, port("api")?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Docker,
    Process,
}

/// Wait for `child` to exit, for at most `within`.
fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `paas up`.
#[derive(Debug)]
pub struct Platform {
    pub data_dir: PathBuf,
    pub http_port: u16,
    pub api_port: u16,
    pub runtime: RuntimeKind,
    child: Option<Child>,
    log: PathBuf,
    extra: Vec<String>,
    /// Environment variables `paas up` gets besides the harness's own.
    env: Vec<(String, String)>,
}

impl Platform {
    pub fn start(runtime: RuntimeKind) -> Self {
        Self::start_with(runtime, &[])
    }

    /// Start with extra `paas up` flags (e.g. a short stable window), on ports the
    /// system chooses.
    pub fn start_with(runtime: RuntimeKind, extra: &[&str]) -> Self {
        Self::start_with_env(runtime, extra, &[])
    }

    /// Start with extra flags and environment variables (e.g. `PAAS_TOKEN`).
    pub fn start_with_env(runtime: RuntimeKind, extra: &[&str], env: &[(&str, &str)]) -> Self {
        // One directory per platform of this test binary: tests run in parallel.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "paas-e2e-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        // Left by an earlier run whose pid was the same: not this platform's.
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut p = Self {
            log: data_dir.join("paas-up.log"),
            data_dir,
            http_port: 0,
            api_port: 0,
            runtime,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        p.boot();
        p
    }

    /// Start `paas up` (again) on this data directory. The first boot lets the system
    /// choose both ports (`--http 0 --api 0`: no port is picked, released and raced
    /// for by tests running in parallel); later boots keep them, so that addresses
    /// known before a restart still work after it. Returns once /healthz answers.
    pub fn boot(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let runtime = match self.runtime {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
        };
        // The file this boot writes, not the one an earlier boot left.
        let addresses = self.data_dir.join("addresses.json");
        match std::fs::remove_file(&addresses) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("cannot remove {}: {e}", addresses.display())
            }
            _ => {}
        }
        let child = Command::new(binary("paas"))
            .arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg(self.http_port.to_string())
            .arg("--api")
            .arg(self.api_port.to_string())
            .arg("--runtime")
            .arg(runtime)
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // PAAS_TEST_LOG widens what the log keeps when a test needs diagnosing.
            .env(
                "PAAS_LOG",
                std::env::var("PAAS_TEST_LOG")
                    .unwrap_or_else(|_| "info,paas_controller=debug".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut bound = None;
        loop {
            if bound.is_none() {
                bound = read_addresses(&addresses);
                if let Some((http, api)) = bound {
                    if self.http_port != 0 {
                        assert_eq!(
                            (http, api),
                            (self.http_port, self.api_port),
                            "paas up came back on other ports"
                        );
                    }
                    (self.http_port, self.api_port) = (http, api);
                }
            }
            if bound.is_some() {
                if let Ok(r) = http(self.api_port, "127.0.0.1", "GET", "/healthz", &[], None) {
                    if r.status == 200 {
                        return;
                    }
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("paas up exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "paas up did not {} in 30 s:\n{}",
                if bound.is_none() {
                    "write addresses.json"
                } else {
                    "answer /healthz"
                },
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `kill -9`: no chance to clean anything up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait: the clean shutdown path.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            if wait_exit(&mut child, Duration::from_secs(30)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// SIGTERM, and the exit status `paas up` ended with by itself; panics (after a
    /// kill) if it is still running after `within`.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        match wait_exit(&mut child, within) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "paas up was still running {within:?} after SIGTERM:\n{}",
                    self.log_text()
                );
            }
        }
    }

    /// The CLI against this platform.
    pub fn paas(&self, args: &[&str]) -> Output {
        self.paas_with_stdin(args, None)
    }

    pub fn paas_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(binary("paas"));
        cmd.args(args)
            .env("PAAS_DATA_DIR", &self.data_dir)
            .env_remove("PAAS_SERVER")
            .env_remove("PAAS_TOKEN")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// The CLI, which must succeed; returns its stdout.
    pub fn paas_ok(&self, args: &[&str]) -> String {
        let out = self.paas(args);
        assert!(
            out.status.success(),
            "paas {} failed ({}):\nstdout: {}\nstderr: {}\n--- paas up log ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A route's split from its status: (revision, percent) in order.
    pub fn route_split(&self, route: &str) -> Vec<(String, u64)> {
        let route: serde_json::Value =
            serde_json::from_str(&self.paas_ok(&["get", "route", route, "-o", "json"])).unwrap();
        route["status"]["traffic"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["revisionName"].as_str().unwrap_or_default().to_owned(),
                    t["percent"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// GET `path` from the API, with the API token.
    pub fn api_get(&self, path: &str) -> Response {
        let token = std::fs::read_to_string(self.data_dir.join("token")).unwrap();
        let auth = format!("Bearer {}", token.trim());
        http(
            self.api_port,
            "127.0.0.1",
            "GET",
            path,
            &[("Authorization", &auth)],
            None,
        )
        .unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        self.api_get("/metrics").body
    }

    /// The hops of an eventing object (`plural` as the API names it: brokers,
    /// triggers, sequences, parallels, pingsources, kafkasources) in namespace
    /// `default`, with the counters its dispatchers keep: what `paas describe` shows.
    pub fn deliveries(&self, plural: &str, name: &str) -> Vec<Hop> {
        let group = match plural {
            "brokers" | "triggers" => "eventing.knative.dev/v1",
            "sequences" | "parallels" => "flows.knative.dev/v1",
            "pingsources" => "sources.knative.dev/v1",
            "kafkasources" => "sources.knative.dev/v1beta1",
            other => panic!("{other} have no deliveries"),
        };
        let r = self.api_get(&format!(
            "/apis/{group}/namespaces/default/{plural}/{name}/deliveries"
        ));
        assert_eq!(r.status, 200, "deliveries of {plural}/{name}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| Hop {
                hop: h["hop"].as_str().unwrap_or_default().to_owned(),
                counts: h["counts"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                    .collect(),
            })
            .collect()
    }

    /// Wait until the hops of an eventing object pass `check` (see [`Hop`]), or panic
    /// after `within` with what they counted; returns them.
    pub fn wait_deliveries(
        &self,
        plural: &str,
        name: &str,
        within: Duration,
        what: &str,
        check: impl Fn(&[Hop]) -> bool,
    ) -> Vec<Hop> {
        let deadline = Instant::now() + within;
        loop {
            let hops = self.deliveries(plural, name);
            if check(&hops) {
                return hops;
            }
            assert!(
                Instant::now() < deadline,
                "{plural}/{name}: {what} did not happen within {within:?}; counts: {}\n--- paas up log ---\n{}",
                hops.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Broker `default` and trigger `all`, delivering everything to
    /// `http://127.0.0.1:{port}/`; returns once the trigger's dispatcher runs.
    pub fn trigger_everything_to(&self, port: u16) {
        let manifests = format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: all\nspec:\n  broker: default\n  subscriber:\n    uri: http://127.0.0.1:{port}/\n"
        );
        let path = write_manifest(&self.data_dir, "eventing.yaml", &manifests);
        self.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .paas_ok(&["get", "trigger", "all", "-o", "json"])
            .contains("\"DispatcherReady\"")
        {
            assert!(
                Instant::now() < deadline,
                "the trigger never got a dispatcher"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POST events `ids` in one batch to broker `default`; whether it got a 202.
    pub fn post_batch(&self, ids: &[String]) -> bool {
        self.post_batch_answer(ids).is_ok_and(|r| r.status == 202)
    }

    /// POST events `ids` in one batch to broker `default`; the answer.
    pub fn post_batch_answer(&self, ids: &[String]) -> std::io::Result<Response> {
        let body = format!(
            "[{}]",
            ids.iter()
                .map(|id| format!(r#"{{"specversion":"1.0","id":"{id}","source":"/e2e","type":"dev.paas.batch","data":{{"n":1}}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let host = format!("broker-ingress.localhost:{}", self.http_port);
        http(
            self.http_port,
            &host,
            "POST",
            "/default/default",
            &[("content-type", "application/cloudevents-batch+json")],
            Some(&body),
        )
    }

    /// Wait until `paas get KIND NAME` says Ready=True; returns the object.
    pub fn wait_ready(&self, kind: &str, name: &str, within: Duration) -> serde_json::Value {
        self.wait_condition(kind, name, within, |c| {
            c["type"] == "Ready" && c["status"] == "True"
        })
    }

    /// Wait until one of the object's conditions passes `check`; returns the object.
    pub fn wait_condition(
        &self,
        kind: &str,
        name: &str,
        within: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let o: serde_json::Value =
                serde_json::from_str(&self.paas_ok(&["get", kind, name, "-o", "json"])).unwrap();
            if o["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(&check))
            {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "{kind} {name}: {}\n{}",
                o["status"],
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The event-display sample as service `name`, one replica only (min-scale and
    /// max-scale 1), so that every event it keeps is in one place to count.
    pub fn deploy_event_display(&self, name: &str) {
        let display = binary("event-display");
        self.paas_ok(&[
            "deploy",
            name,
            "--cmd",
            display.to_str().unwrap(),
            "--annotation",
            "autoscaling.knative.dev/min-scale=1",
            "--annotation",
            "autoscaling.knative.dev/max-scale=1",
        ]);
    }

    /// The events an event-display service has kept, oldest first.
    pub fn displayed(&self, service: &str) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.get(service, "/events").body).unwrap_or_default()
    }

    /// `paas get KIND -o json` items.
    pub fn items(&self, kind: &str) -> Vec<serde_json::Value> {
        let out = self.paas_ok(&["get", kind, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// GET a service through the gateway.
    pub fn get(&self, service: &str, path: &str) -> Response {
        let host = format!("{service}.default.localhost:{}", self.http_port);
        http(self.http_port, &host, "GET", path, &[], None).unwrap()
    }

    /// GET until the answer is `status`, or panic after `within`.
    pub fn wait_for(&self, service: &str, status: u16, within: Duration) -> Response {
        let deadline = Instant::now() + within;
        loop {
            let r = self.get(service, "/");
            if r.status == status {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{service} still answers {} {:?}\n--- paas up log ---\n{}",
                r.status,
                r.body,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One revision's status, by name.
    pub fn revision(&self, name: &str) -> serde_json::Value {
        let out = self.paas_ok(&["get", "revision", name, "-o", "json"]);
        serde_json::from_str(&out).unwrap()
    }

    /// Wait until `check` holds for the revision's status, or panic after `within`.
    pub fn wait_revision(
        &self,
        name: &str,
        within: Duration,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let rev = self.revision(name);
            if check(&rev) {
                return rev;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {what} did not happen within {within:?}; status: {}\n--- paas up log ---\n{}",
                rev["status"],
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `n` requests at once, each on its own connection; returns the statuses.
    pub fn burst(&self, service: &str, n: usize) -> Vec<(u16, String)> {
        let port = self.http_port;
        let host = format!("{service}.default.localhost:{port}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let host = host.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    match http(port, &host, "GET", "/", &[], None) {
                        Ok(r) => (r.status, r.body),
                        Err(e) => (0, e.to_string()),
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    /// `clients` loops of sequential requests for `duration`; returns the statuses.
    pub fn steady_load(&self, service: &str, clients: usize, duration: Duration) -> Vec<u16> {
        let port = self.http_port;
        let host = format!("{service}.default.localhost:{port}");
        let until = Instant::now() + duration;
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let host = host.clone();
                std::thread::spawn(move || {
                    let mut statuses = Vec::new();
                    while Instant::now() < until {
                        statuses
                            .push(http(port, &host, "GET", "/", &[], None).map_or(0, |r| r.status));
                    }
                    statuses
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }

    /// Replica containers this installation owns (started ones: a container prepared
    /// ahead of a cold start is not a replica until it starts).
    pub fn containers(&self) -> Vec<String> {
        self.containers_where(&[
            "status=running",
            "status=paused",
            "status=exited",
            "status=restarting",
            "status=dead",
        ])
    }

    /// Containers created ahead of time, not started.
    pub fn prepared_containers(&self) -> Vec<String> {
        self.containers_where(&["status=created"])
    }

    fn containers_where(&self, statuses: &[&str]) -> Vec<String> {
        let instance = std::fs::read_to_string(self.data_dir.join("instance")).unwrap();
        let mut cmd = Command::new("docker");
        cmd.args(["ps", "-a", "-q", "--no-trunc", "--filter"])
            .arg(format!("label=paas.dev/instance={}", instance.trim()));
        for status in statuses {
            cmd.args(["--filter", status]);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn container_label(&self, id: &str, label: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "--format"])
            .arg(format!("{{{{ index .Config.Labels \"{label}\" }}}}"))
            .arg(id)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop();
        if self.runtime == RuntimeKind::Docker {
            if let Ok(instance) = std::fs::read_to_string(self.data_dir.join("instance")) {
                let ids = Command::new("docker")
                    .args(["ps", "-a", "-q", "--filter"])
                    .arg(format!("label=paas.dev/instance={}", instance.trim()))
                    .output();
                if let Ok(out) = ids {
                    for id in String::from_utf8_lossy(&out.stdout).lines() {
                        let _ = Command::new("docker").args(["rm", "-f", id]).output();
                    }
                }
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// One hop of an eventing object and its dispatcher's counters since `paas up`
/// started: received, filtered, delivered, dead_lettered, dropped, replied, malformed.
#[derive(Debug, Clone)]
pub struct Hop {
    pub hop: String,
    pub counts: HashMap<String, u64>,
}

impl Hop {
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Events read that have reached their end here: not passed by the filter, not
    /// CloudEvents, delivered (with the reply stored or sent on), dead-lettered or
    /// dropped.
    pub fn finished(&self) -> u64 {
        [
            "filtered",
            "malformed",
            "delivered",
            "dead_lettered",
            "dropped",
        ]
        .iter()
        .map(|c| self.count(c))
        .sum()
    }

    /// Nothing in flight: every event this hop read has finished.
    pub fn settled(&self) -> bool {
        self.count("received") == self.finished()
    }
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.hop)?;
        for name in [
            "received",
            "filtered",
            "malformed",
            "delivered",
            "dead_lettered",
            "dropped",
            "replied",
        ] {
            write!(f, " {} {name}", self.count(name))?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection.
pub fn http(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // A server may answer (413, say) and close before the whole body is sent: the
    // answer still counts.
    let written = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    if raw.is_empty() {
        written?;
        read?;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Write a manifest into `dir` and return its path.
pub fn write_manifest(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A CloudEvents subscriber owned by the test (so that what it received survives a
/// crash of paas): counts deliveries by `ce-id` and answers 202.
pub fn event_sink() -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let port = event_server(move |event| {
        *s.lock()
            .unwrap()
            .entry(event.header("ce-id").to_owned())
            .or_default() += 1;
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned()
    });
    (port, seen)
}

/// What [`stream_events`] saw, counted in batches.
#[derive(Debug, Default)]
pub struct Stream {
    /// Ids of every event that got a 202.
    pub accepted: HashSet<String>,
    /// Batches posted before the midway hook ran: accepted, and refused with the answer.
    pub accepted_before: usize,
    pub refused_before: Vec<String>,
    /// Batches the hook itself saw refused.
    pub refused_by_hook: usize,
    /// Batches posted after the hook returned: accepted, and refused with the answer.
    pub accepted_after: usize,
    pub refused_after: Vec<String>,
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events accepted; batches before the hook: {} accepted, {} refused; refused during it: {}; after it: {} accepted, {} refused",
            self.accepted.len(),
            self.accepted_before,
            self.refused_before.len(),
            self.refused_by_hook,
            self.accepted_after,
            self.refused_after.len()
        )
    }
}

/// POST events `ev-0`..`ev-{events}` to broker `default` in batches of `per_batch`;
/// `midway` runs once, when half of them were accepted, and returns how many batches
/// it saw refused.
pub fn stream_events(
    p: &mut Platform,
    events: usize,
    per_batch: usize,
    midway: impl FnOnce(&mut Platform) -> usize,
) -> Stream {
    let mut stream = Stream::default();
    let mut midway = Some(midway);
    for batch in 0..events / per_batch {
        let ids: Vec<String> = (0..per_batch)
            .map(|i| format!("ev-{}", batch * per_batch + i))
            .collect();
        let before = midway.is_some();
        match p.post_batch_answer(&ids) {
            Ok(r) if r.status == 202 => {
                stream.accepted.extend(ids);
                if before {
                    stream.accepted_before += 1;
                } else {
                    stream.accepted_after += 1;
                }
            }
            answer => {
                let why = match answer {
                    Ok(r) => format!("batch {batch}: {} {}", r.status, r.body.trim()),
                    Err(e) => format!("batch {batch}: {e}"),
                };
                if before {
                    stream.refused_before.push(why);
                } else {
                    stream.refused_after.push(why);
                }
            }
        }
        if stream.accepted.len() >= events / 2 {
            if let Some(m) = midway.take() {
                stream.refused_by_hook = m(p);
            }
        }
    }
    assert!(
        midway.is_none(),
        "half of the events were never accepted: {stream}"
    );
    stream
}

/// Wait until every id in `accepted` reached `seen` (an [`event_sink`]'s counts), or
/// panic with what is missing; returns the number of duplicate deliveries.
pub fn wait_all_delivered(
    p: &Platform,
    seen: &Mutex<HashMap<String, usize>>,
    accepted: &HashSet<String>,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing: Vec<String> = {
            let seen = seen.lock().unwrap();
            accepted
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return seen.lock().unwrap().values().map(|n| n - 1).sum();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted events never arrived, e.g. {:?}\n--- paas up log ---\n{}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)],
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A CloudEvent in HTTP binary mode, as a test server received it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body's bytes as they came, for data that is not text.
    pub bytes: Vec<u8>,
}

impl ReceivedEvent {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on 127.0.0.1 answering each request with the raw response
/// `respond` makes of it (keep-alive; the response must carry Content-Length).
pub fn event_server(respond: impl Fn(ReceivedEvent) -> String + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let respond = respond.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_owned();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                        }
                    }
                    let length = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let event = ReceivedEvent {
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        bytes: body,
                    };
                    if writer.write_all(respond(event).as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}
