//! A PingSource on a one-minute schedule, for real, across a `kill -9` of paas: every
//! tick is emitted once (one event id per minute), none twice, and the restart misses
//! none. Delivery is at least once: a tick delivered just before the kill may arrive
//! again after the restart, with the same id, and is counted as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paas_e2e::{event_server, write_manifest, Platform, RuntimeKind};

/// Every delivery, in the order it arrived.
type Ticks = Arc<Mutex<Vec<Tick>>>;

#[derive(Debug, Clone)]
struct Tick {
    ty: String,
    time: String,
    id: String,
    data: String,
}

fn distinct_ids(ticks: &Ticks) -> usize {
    let ids: HashSet<String> = ticks.lock().unwrap().iter().map(|t| t.id.clone()).collect();
    ids.len()
}

fn wait_ticks(ticks: &Ticks, n: usize, p: &Platform) {
    let deadline = Instant::now() + Duration::from_secs(150);
    while distinct_ids(ticks) < n {
        assert!(
            Instant::now() < deadline,
            "{} ticks of {n}: {:?}\n{}",
            ticks.lock().unwrap().len(),
            ticks.lock().unwrap(),
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_ping_source_ticks_once_a_minute_across_a_restart() {
    let mut p = Platform::start(RuntimeKind::Process);
    let ticks: Ticks = Arc::default();
    let t = ticks.clone();
    // The server only records: a wrong event is found by the asserts below, on the
    // test's thread.
    let sink = event_server(move |event| {
        t.lock().unwrap().push(Tick {
            ty: event.header("ce-type").to_owned(),
            time: event.header("ce-time").to_owned(),
            id: event.header("ce-id").to_owned(),
            data: event.body.clone(),
        });
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned()
    });
    let manifest = format!(
        "apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: minutely
spec:
  schedule: \"* * * * *\"
  timezone: Europe/Paris
  contentType: application/json
  data: '{{\"message\": \"tick\"}}'
  sink:
    uri: http://127.0.0.1:{sink}/
"
    );
    let path = write_manifest(&p.data_dir, "ping.yaml", &manifest);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    // A bad schedule is refused with the field.
    let bad = write_manifest(
        &p.data_dir,
        "bad.yaml",
        &manifest.replace("\"* * * * *\"", "\"61 * * * *\""),
    );
    let refused = p.paas(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        paas_e2e::stderr(&refused).contains("spec.schedule"),
        "{}",
        paas_e2e::stderr(&refused)
    );

    wait_ticks(&ticks, 1, &p);
    // Killed right after a tick, back a moment later: the next minute still ticks,
    // and the one already sent is not sent again.
    p.kill9();
    p.boot();
    wait_ticks(&ticks, 2, &p);
    // Whatever the restarted paas read from the source's topic has reached its end
    // (a redelivery of the tick sent before the kill included): what the sink holds
    // now is all there is to compare.
    let hops = p.wait_deliveries(
        "pingsources",
        "minutely",
        Duration::from_secs(30),
        "every tick read delivered",
        |hops| !hops.is_empty() && hops.iter().all(|h| h.settled()),
    );
    let ticks = ticks.lock().unwrap().clone();
    // One event per minute: emitted once each; a second delivery of an id is a
    // redelivery after the kill.
    let mut by_id: Vec<&Tick> = Vec::new();
    for tick in &ticks {
        if !by_id.iter().any(|t| t.id == tick.id) {
            by_id.push(tick);
        }
    }
    println!(
        "ticks emitted: {:?}; deliveries: {} ({} redelivered after the kill); since the restart: {}",
        by_id.iter().map(|t| (&t.time, &t.id)).collect::<Vec<_>>(),
        ticks.len(),
        ticks.len() - by_id.len(),
        hops.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    );
    for tick in &ticks {
        assert_eq!(tick.ty, "dev.knative.sources.ping", "{tick:?}");
        assert_eq!(tick.data, "{\"message\": \"tick\"}", "{tick:?}");
    }
    // Consecutive minutes, each once: a tick emitted twice would be a second id for
    // the same minute, a missed one a gap. (Another minute may have begun while the
    // deliveries settled: it must follow on too.)
    let minutes: Vec<i64> = by_id.iter().map(|t| chrono_minute(&t.time)).collect();
    assert!(minutes.len() >= 2, "{ticks:?}");
    for pair in minutes.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            60,
            "a tick emitted twice or missed: {ticks:?}"
        );
    }
    let listed = p.paas_ok(&["get", "pingsources"]);
    assert!(
        listed.contains("minutely") && listed.contains("* * * * *"),
        "{listed}"
    );
}

/// Seconds since the epoch of an RFC 3339 time (the HTTP binding percent-encodes ':').
fn chrono_minute(time: &str) -> i64 {
    let decoded = time.replace("%3A", ":").replace("%2B", "+");
    let (date, rest) = decoded.split_once('T').unwrap();
    let parts: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let hms: Vec<i64> = rest[..8].split(':').map(|x| x.parse().unwrap()).collect();
    // Days from a fixed epoch are enough to compare two nearby times.
    let days = parts[0] * 372 + parts[1] * 31 + parts[2];
    let offset = match rest.get(8..) {
        Some(z) if z.starts_with('+') || z.starts_with('-') => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let h: i64 = z[1..3].parse().unwrap();
            let m: i64 = z[4..6].parse().unwrap();
            sign * (h * 3600 + m * 60)
        }
        _ => 0,
    };
    days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset
}
