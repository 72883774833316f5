//! `bench/eventing`: events/s and latency from the moment an event is sent to the
//! moment the subscriber has it, for
//!   paas-kafka     POST to the broker ingress -> Kafka -> trigger dispatcher -> sink
//!   bare-kafka     POST to the broker ingress -> Kafka -> bare rdkafka consumer -> sink
//!   paas-embedded  POST to the broker ingress -> embedded log -> dispatcher -> sink
//! all in one run, on one tansu broker, printing paas-kafka / bare-kafka.
//! Settings (environment): EVENTS (measured per path, default 20000), WARMUP (default
//! 1000), SENDERS (concurrent producers, default 16), PARTITIONS (default 10).

mod bare;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use paas_bench_eventing::harness::{
    free_port, measure, median, now_ns, setting, timestamps, wait_listening, Children, Paas,
    Settings,
};
use paas_bench_eventing::sink;
use paas_bench_eventing::stats::Figures;
use paas_eventing::dispatcher::DEFAULT_PARALLELISM;

async fn through_paas(s: &Settings, paas: &Paas) -> anyhow::Result<Figures> {
    let epoch = Instant::now();
    let total = s.warmup + s.events;
    let sink = sink::start(total, epoch).await?;
    paas.subscribe(sink.addr)?;
    let host = format!("broker-ingress.localhost:{}", paas.http.port());
    let http = paas.http;
    measure(s, epoch, &sink, timestamps(total), |load| {
        let host = host.clone();
        async move { load.post(http, &host, "/default/bench", None).await }
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
        async move { load.post(http, &host, "/default/bench-bare", None).await }
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
