//! What every benchmark of paas' event paths needs: settings from the environment,
//! child processes that die with the run, a `paas up` of its own driven through its
//! CLI, and measuring a warm-up batch then a timed one.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::Load;
use crate::stats::Figures;

#[derive(Debug, Clone)]
pub struct Settings {
    pub events: usize,
    pub warmup: usize,
    pub senders: usize,
    pub partitions: usize,
}

pub fn setting(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

/// Child processes, killed when the run ends however it ends.
#[derive(Debug, Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_listening(addr: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on {addr} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A `paas up` of its own, with the process runtime.
#[derive(Debug)]
pub struct Paas {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub http: SocketAddr,
}

impl Paas {
    pub fn start(
        repo: &Path,
        work: &Path,
        name: &str,
        extra: &[&str],
        children: &mut Children,
    ) -> anyhow::Result<Self> {
        let data = work.join(name);
        std::fs::create_dir_all(&data)?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let api = format!("127.0.0.1:{}", free_port()?);
        let bin = repo.join("target/release/paas");
        let log = std::fs::File::create(data.join("paas.log"))?;
        let child = Command::new(&bin)
            .args(["up", "--runtime", "process", "--log", "warn"])
            .args(["--http", &http.to_string(), "--api", &api])
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("starting {} (the bench's run.sh builds it)", bin.display())
            })?;
        children.0.push(child);
        let paas = Self { bin, data, http };
        // Up once the API answers (it listens before the event log is connected).
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = paas.cli(&["get", "brokers"]) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(paas.data.join("paas.log")).unwrap_or_default();
                bail!("paas did not come up within 30 s ({e}); its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(paas)
    }

    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .env("PAAS_DATA_DIR", &self.data)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "paas {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn apply(&self, name: &str, manifest: &str) -> anyhow::Result<()> {
        let file = self.data.join(name);
        std::fs::write(&file, manifest)?;
        self.cli(&["apply", "-f", &file.to_string_lossy()])?;
        Ok(())
    }

    pub fn wait_ready(&self, kind: &str, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let json: serde_json::Value =
                serde_json::from_str(&self.cli(&["get", kind, name, "-o", "json"])?)?;
            let ready = json["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{kind} {name} not ready within 60 s: {}", json["status"]);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn broker(&self, name: &str) -> anyhow::Result<()> {
        self.apply(
            &format!("broker-{name}.yaml"),
            &format!(
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: {name}\n"
            ),
        )?;
        self.wait_ready("broker", name)
    }

    /// Broker `bench` and trigger `bench` delivering everything to `sink`.
    pub fn subscribe(&self, sink: SocketAddr) -> anyhow::Result<()> {
        self.broker("bench")?;
        self.apply(
            "trigger.yaml",
            &format!("apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: bench\nspec:\n  broker: bench\n  subscriber:\n    uri: http://{sink}/\n"),
        )?;
        self.wait_ready("trigger", "bench")
    }
}

/// Wait until the sink has every event below `upto`, or give up after `within`.
pub async fn drained(sink: &crate::sink::Sink, upto: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while sink.count.load(Ordering::Relaxed) < upto {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Send a warm-up batch, then the measured one, through `send`; figures of the latter.
pub async fn measure<F, Fut>(
    s: &Settings,
    epoch: Instant,
    sink: &crate::sink::Sink,
    sent: Arc<Vec<AtomicU64>>,
    send: F,
) -> anyhow::Result<Figures>
where
    F: Fn(Load) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let total = s.warmup + s.events;
    let load = |range| Load {
        range,
        senders: s.senders,
        sent: sent.clone(),
        epoch,
    };
    send(load(0..s.warmup)).await?;
    if !drained(sink, s.warmup, Duration::from_secs(60)).await {
        bail!("the warm-up batch did not all arrive within 60 s");
    }
    let started = Instant::now();
    send(load(s.warmup..total)).await?;
    let sending = started.elapsed();
    if !drained(sink, total, Duration::from_secs(120)).await {
        eprintln!(
            "  only {} of {total} arrived within 120 s",
            sink.count.load(Ordering::Relaxed)
        );
    }
    eprintln!(
        "  sending took {:.2} s, delivering all {:.2} s",
        sending.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(crate::stats::figures(&sent, &sink.arrived, s.warmup..total))
}

pub fn timestamps(n: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
