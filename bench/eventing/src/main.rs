//! `bench/eventing`: events/s and latency from the moment an event is sent to the
//! moment the subscriber has it, for
//!   paas-kafka     POST to the broker ingress -> Kafka -> trigger dispatcher -> sink
//!   bare-kafka     POST to the broker ingress -> Kafka -> bare rdkafka consumer -> sink
//!   paas-embedded  POST to the broker ingress -> embedded log -> dispatcher -> sink
//! all in one run, on one tansu broker, printing paas-kafka / bare-kafka.
//! Settings (environment): EVENTS (measured per path, default 20000), WARMUP (default
//! 1000), SENDERS (concurrent producers, default 16), PARTITIONS (default 10).

mod bare;
mod load;
mod sink;
mod stats;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use load::Load;
use paas_eventing::dispatcher::DEFAULT_PARALLELISM;
use stats::Figures;

struct Settings {
    events: usize,
    warmup: usize,
    senders: usize,
    partitions: usize,
}

fn setting(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

/// Child processes, killed when the run ends however it ends.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(addr: &str, what: &str) -> anyhow::Result<()> {
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
struct Paas {
    bin: PathBuf,
    data: PathBuf,
    http: SocketAddr,
}

impl Paas {
    fn start(
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
                format!(
                    "starting {} (bench/eventing/run.sh builds it)",
                    bin.display()
                )
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

    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
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

    fn apply(&self, name: &str, manifest: &str) -> anyhow::Result<()> {
        let file = self.data.join(name);
        std::fs::write(&file, manifest)?;
        self.cli(&["apply", "-f", &file.to_string_lossy()])?;
        Ok(())
    }

    fn wait_ready(&self, kind: &str, name: &str) -> anyhow::Result<()> {
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

    fn broker(&self, name: &str) -> anyhow::Result<()> {
        self.apply(
            &format!("broker-{name}.yaml"),
            &format!(
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: {name}\n"
            ),
        )?;
        self.wait_ready("broker", name)
    }

    /// Broker `bench` and trigger `bench` delivering everything to `sink`.
    fn subscribe(&self, sink: SocketAddr) -> anyhow::Result<()> {
        self.broker("bench")?;
        self.apply(
            "trigger.yaml",
            &format!("apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: bench\nspec:\n  broker: bench\n  subscriber:\n    uri: http://{sink}/\n"),
        )?;
        self.wait_ready("trigger", "bench")
    }
}

/// Wait until the sink has every event below `upto`, or give up after `within`.
async fn drained(sink: &sink::Sink, upto: usize, within: Duration) -> bool {
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
async fn measure<F, Fut>(
    s: &Settings,
    epoch: Instant,
    sink: &sink::Sink,
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
    Ok(stats::figures(&sent, &sink.arrived, s.warmup..total))
}

fn timestamps(n: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

async fn through_paas(s: &Settings, paas: &Paas) -> anyhow::Result<Figures> {
    let epoch = Instant::now();
    let total = s.warmup + s.events;
    let sink = sink::start(total, epoch).await?;
    paas.subscribe(sink.addr)?;
    let host = format!("broker-ingress.localhost:{}", paas.http.port());
    let http = paas.http;
    measure(s, epoch, &sink, timestamps(total), |load| {
        let host = host.clone();
        async move { load.post(http, &host, "/default/bench").await }
    })
    .await
}

/// The same ingress into Kafka (a second broker, without triggers), drained by the
/// bare loop instead of a paas dispatcher.
async fn bare_kafka(s: &Settings, paas: &Paas, bootstrap: &str) -> anyhow::Result<Figures> {
    paas.broker("bench-bare")?;
    let epoch = Instant::now();
    let total = s.warmup + s.events;
    let sink = sink::start(total, epoch).await?;
    let (b, addr) = (bootstrap.to_owned(), sink.addr);
    let topic = paas_eventing::broker_topic("default", "bench-bare");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let consumer =
        tokio::spawn(
            async move { bare::run(&b, &topic, addr, DEFAULT_PARALLELISM, stopped).await },
        );
    let host = format!("broker-ingress.localhost:{}", paas.http.port());
    let http = paas.http;
    let figures = measure(s, epoch, &sink, timestamps(total), |load| {
        let host = host.clone();
        async move { load.post(http, &host, "/default/bench-bare").await }
    })
    .await;
    let _ = stop.send(());
    consumer.await??;
    figures
}

fn row(name: &str, f: &Figures) {
    println!(
        "{name:<14} {:>10.0} {:>9.2} {:>9.2} {:>10}",
        f.events_per_s, f.p50_ms, f.p99_ms, f.delivered
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipeline {
    PaasKafka,
    BareKafka,
    PaasEmbedded,
}

impl Pipeline {
    fn name(self) -> &'static str {
        match self {
            Pipeline::PaasKafka => "paas-kafka",
            Pipeline::BareKafka => "bare-kafka",
            Pipeline::PaasEmbedded => "paas-embedded",
        }
    }
}

/// One measurement of `path` on a fresh tansu broker and a fresh `paas up`: tansu's
/// SQLite engine slows as it fills, so no path inherits another's data.
async fn run_path(
    path: Pipeline,
    s: &Settings,
    repo: &Path,
    work: &Path,
) -> anyhow::Result<Figures> {
    let work = work.join(format!("{}-{}", path.name(), now_ns()));
    std::fs::create_dir_all(&work)?;
    let mut children = Children::default();
    let kafka_port = free_port()?;
    let bootstrap = format!("127.0.0.1:{kafka_port}");
    if path != Pipeline::PaasEmbedded {
        children.0.push(
            Command::new("bash")
                .arg(repo.join("scripts/kafka.sh"))
                .arg("run")
                .arg(work.join("tansu"))
                .env("PORT", kafka_port.to_string())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(work.join("tansu.log"))?)
                .spawn()?,
        );
        wait_listening(&bootstrap, "tansu")?;
    }
    let partitions = s.partitions.to_string();
    let kafka_flags = ["--kafka", &bootstrap, "--kafka-partitions", &partitions];
    let flags: &[&str] = if path == Pipeline::PaasEmbedded {
        &[]
    } else {
        &kafka_flags
    };
    let paas = Paas::start(repo, &work, "paas", flags, &mut children)?;
    let figures = match path {
        Pipeline::BareKafka => bare_kafka(s, &paas, &bootstrap).await,
        _ => through_paas(s, &paas).await,
    };
    drop(children);
    let _ = std::fs::remove_dir_all(&work);
    figures
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings {
        events: setting("EVENTS", 10_000)?,
        warmup: setting("WARMUP", 1_000)?,
        senders: setting("SENDERS", 16)?,
        partitions: setting("PARTITIONS", 10)?,
    };
    let rounds = setting("ROUNDS", 3)?.max(1);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = std::env::temp_dir().join(format!("paas-bench-eventing-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    println!(
        "events per path: {} (after {} warm-up), {} concurrent senders, {} partitions, {} in flight per dispatcher, median of {rounds} rounds",
        s.events, s.warmup, s.senders, s.partitions, DEFAULT_PARALLELISM
    );
    let paths = [
        Pipeline::PaasKafka,
        Pipeline::BareKafka,
        Pipeline::PaasEmbedded,
    ];
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        // The Kafka paths take turns going first.
        let mut order = paths.to_vec();
        if round % 2 == 1 {
            order.swap(0, 1);
        }
        for path in order {
            let f = run_path(path, &s, &repo, &work).await?;
            eprintln!(
                "round {}: {:<14} {:>8.0} events/s  p50 {:.2} ms  p99 {:.2} ms",
                round + 1,
                path.name(),
                f.events_per_s,
                f.p50_ms,
                f.p99_ms
            );
            results[paths.iter().position(|p| *p == path).unwrap_or(0)].push(f);
        }
    }
    let summary: Vec<Figures> = results
        .iter()
        .map(|fs| Figures {
            events_per_s: median(fs.iter().map(|f| f.events_per_s).collect()),
            p50_ms: median(fs.iter().map(|f| f.p50_ms).collect()),
            p99_ms: median(fs.iter().map(|f| f.p99_ms).collect()),
            delivered: fs.iter().map(|f| f.delivered).min().unwrap_or(0),
        })
        .collect();
    println!(
        "{:<14} {:>10} {:>9} {:>9} {:>10}",
        "path", "events/s", "p50 ms", "p99 ms", "delivered"
    );
    for (path, f) in paths.iter().zip(&summary) {
        row(path.name(), f);
    }
    let (paas_kafka, bare, embedded) = (summary[0], summary[1], summary[2]);
    println!(
        "ratio paas-kafka/bare-kafka: throughput {:.2}x (target >= 0.80), p50 {:.2}x, p99 {:.2}x",
        paas_kafka.events_per_s / bare.events_per_s,
        paas_kafka.p50_ms / bare.p50_ms,
        paas_kafka.p99_ms / bare.p99_ms
    );
    println!(
        "paas-embedded: {:.0} events/s (target >= 10000)",
        embedded.events_per_s
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
