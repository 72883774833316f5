//! `bench/flows`: events/s and latency, from the moment an event is sent to the moment
//! the sink has the last step's reply, through three steps, two ways in one run:
//!   paas-sequence  POST to a Sequence's address; each step's reply is stored in the
//!                  next step's channel (paas' embedded event log, fsynced) and
//!                  delivered from there by that step's dispatcher; the last reply
//!                  goes to the sink
//!   direct-hops    the sender posts the event to step 1, the reply to step 2, that
//!                  reply to step 3 and the last reply to the sink itself
//! The steps (and the sink) are the same servers for both; each answers at once with
//! the event it got. Both are closed loops: a sender sends its next event once its
//! last one reached the sink, so N senders keep N events in flight end to end and no
//! backlog builds up in front of the slower path. Measured with one sender (an idle pipeline's latency), then with
//! SENDERS; prints paas-sequence / direct-hops for each.
//! Settings (environment): EVENTS (measured per path, default 5000), WARMUP (default
//! 500), SENDERS (concurrent senders, default 16), ROUNDS (default 3).

mod direct;
mod step;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use paas_bench_eventing::harness::{
    measure, median, now_ns, setting, timestamps, Children, Paas, Settings,
};
use paas_bench_eventing::sink;
use paas_bench_eventing::stats::Figures;

/// A fresh `paas up` with a Sequence of the three steps, replying to `sink`.
async fn paas_sequence(
    s: &Settings,
    steps: [SocketAddr; 3],
    repo: &Path,
    work: &Path,
) -> anyhow::Result<Figures> {
    let work = work.join(format!("paas-{}", now_ns()));
    std::fs::create_dir_all(&work)?;
    let mut children = Children::default();
    let paas = Paas::start(repo, &work, "paas", &[], &mut children)?;
    let epoch = Instant::now();
    let total = s.warmup + s.events;
    let sink = sink::start(total, epoch).await?;
    let [one, two, three] = steps;
    paas.apply(
        "sequence.yaml",
        &format!(
            "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: bench
spec:
  steps:
    - uri: http://{one}/
    - uri: http://{two}/
    - uri: http://{three}/
  reply:
    uri: http://{}/
",
            sink.addr
        ),
    )?;
    paas.wait_ready("sequence", "bench")?;
    let host = format!("channel-ingress.localhost:{}", paas.http.port());
    let http = paas.http;
    let figures = measure(s, epoch, &sink, timestamps(total), |load| {
        let (host, sink) = (host.clone(), sink.clone());
        async move {
            load.post(http, &host, "/default/bench-kn-sequence-0", Some(sink))
                .await
        }
    })
    .await;
    drop(children);
    let _ = std::fs::remove_dir_all(&work);
    figures
}

async fn direct_hops(s: &Settings, steps: [SocketAddr; 3]) -> anyhow::Result<Figures> {
    let epoch = Instant::now();
    let total = s.warmup + s.events;
    let sink = sink::start(total, epoch).await?;
    let to = sink.addr;
    measure(s, epoch, &sink, timestamps(total), |load| async move {
        direct::run(&load, steps, to).await
    })
    .await
}

/// Both paths, `rounds` times each, taking turns going first; the medians.
async fn compare(
    s: &Settings,
    rounds: usize,
    steps: [SocketAddr; 3],
    repo: &Path,
    work: &Path,
) -> anyhow::Result<(Figures, Figures)> {
    let (mut paas, mut direct) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for paas_now in [round % 2 == 0, round % 2 == 1] {
            let (name, f) = if paas_now {
                let f = paas_sequence(s, steps, repo, work).await?;
                paas.push(f);
                ("paas-sequence", f)
            } else {
                let f = direct_hops(s, steps).await?;
                direct.push(f);
                ("direct-hops", f)
            };
            eprintln!(
                "{} sender(s), round {}: {name:<14} {:>8.0} events/s  p50 {:.2} ms  p99 {:.2} ms",
                s.senders,
                round + 1,
                f.events_per_s,
                f.p50_ms,
                f.p99_ms
            );
        }
    }
    let summary = |fs: &[Figures]| Figures {
        events_per_s: median(fs.iter().map(|f| f.events_per_s).collect()),
        p50_ms: median(fs.iter().map(|f| f.p50_ms).collect()),
        p99_ms: median(fs.iter().map(|f| f.p99_ms).collect()),
        delivered: fs.iter().map(|f| f.delivered).min().unwrap_or(0),
    };
    Ok((summary(&paas), summary(&direct)))
}

fn row(name: &str, f: &Figures) {
    println!(
        "  {name:<14} {:>10.0} {:>9.2} {:>9.2} {:>10}",
        f.events_per_s, f.p50_ms, f.p99_ms, f.delivered
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings {
        events: setting("EVENTS", 5_000)?,
        warmup: setting("WARMUP", 500)?,
        senders: setting("SENDERS", 16)?,
        partitions: 1,
    };
    let rounds = setting("ROUNDS", 3)?.max(1);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = std::env::temp_dir().join(format!("paas-bench-flows-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    println!(
        "events per path: {} (after {} warm-up), 3 steps, median of {rounds} rounds",
        s.events, s.warmup
    );
    let steps = [
        step::start().await?,
        step::start().await?,
        step::start().await?,
    ];
    // One sender shows the latency of an idle pipeline; many show its throughput (and
    // the queueing once the senders outpace it).
    let mut loads = vec![1, s.senders];
    loads.dedup();
    for senders in loads {
        let s = Settings {
            senders,
            ..s.clone()
        };
        let (paas, direct) = compare(&s, rounds, steps, &repo, &work).await?;
        println!("{senders} concurrent sender(s):");
        println!(
            "  {:<14} {:>10} {:>9} {:>9} {:>10}",
            "path", "events/s", "p50 ms", "p99 ms", "delivered"
        );
        row("paas-sequence", &paas);
        row("direct-hops", &direct);
        println!(
            "  ratio paas-sequence/direct-hops: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
            paas.events_per_s / direct.events_per_s,
            paas.p50_ms / direct.p50_ms,
            paas.p99_ms / direct.p99_ms
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
