//! A real Kafka-protocol broker for tests: tansu 0.6.0 (installed by
//! `scripts/kafka.sh`) on a free port with its own SQLite file. [`broker`] is one shared
//! by the tests of a binary; [`Tansu::start`] gives a test one of its own, to stop and
//! restart. `PAAS_TEST_KAFKA=HOST:PORT` points [`broker`] at a broker already running.
//! [`create_topic`], [`produce`] and [`uncommitted`] use a plain rdkafka client, as an
//! operator's tools or another application's producer would.
//!
//! Its own crate, a dev-dependency of eventing's integration tests and a dependency of
//! the end-to-end harness (`paas-e2e`), so that neither test suite depends on the other
//! and no test code is compiled into the `paas` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A port free a moment ago. Another process may take it before the caller binds it:
/// only for tansu, which must be given its port and cannot report one the system chose.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tansu broker on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Tansu {
    /// `127.0.0.1:PORT`, where it listens.
    pub address: String,
    /// Where it tells clients to reach it: `address`, unless started with
    /// [`Tansu::start_advertising`].
    advertised: String,
    port: u16,
    dir: PathBuf,
    /// The shell that runs tansu and stops it when its stdin closes: that happens when
    /// [`Tansu::stop`] closes it, or when the test binary exits however it exits, so no
    /// broker outlives its tests.
    guard: Option<Child>,
}

enum Shared {
    Owned(Tansu),
    External(String),
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// `127.0.0.1:PORT` of a broker shared by the tests of this binary.
pub fn broker() -> &'static str {
    match SHARED.get_or_init(|| match std::env::var("PAAS_TEST_KAFKA") {
        Ok(address) => Shared::External(address),
        Err(_) => Shared::Owned(Tansu::start()),
    }) {
        Shared::Owned(t) => &t.address,
        Shared::External(a) => a,
    }
}

fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("PAAS_TANSU") {
        return p.into();
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = cargo_home.join("bin/tansu");
    assert!(
        installed.exists(),
        "the Kafka tests need tansu at {}: run `bash scripts/kafka.sh` (scripts/test.sh does), \
         or set PAAS_TEST_KAFKA=HOST:PORT to use a running broker",
        installed.display()
    );
    installed
}

impl Tansu {
    pub fn start() -> Self {
        Self::launch_on_a_free_port(None)
    }

    /// A broker that tells its clients to reach it at `advertised` (`HOST:PORT`), a
    /// proxy in front of it for one: after their first request, clients send everything
    /// there.
    pub fn start_advertising(advertised: &str) -> Self {
        Self::launch_on_a_free_port(Some(advertised))
    }

    fn launch_on_a_free_port(advertised: Option<&str>) -> Self {
        // tansu must be given its port, which it advertises to clients: the port is one
        // that was free a moment ago, and when another process took it first tansu
        // cannot listen on it, and another is tried.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("paas-tansu-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let address = format!("127.0.0.1:{port}");
            let mut t = Self {
                advertised: advertised.unwrap_or(&address).to_owned(),
                address,
                port,
                dir,
                guard: None,
            };
            match t.launch() {
                Ok(()) => return t,
                Err(why) => {
                    let _ = std::fs::remove_dir_all(&t.dir);
                    failures.push(why);
                }
            }
        }
        panic!("tansu could not start on any of 5 ports: {failures:#?}");
    }

    /// Start the broker again on the same port and data.
    pub fn restart(&mut self) {
        if let Err(why) = self.launch() {
            panic!("tansu could not start again on {}: {why}", self.address);
        }
    }

    /// Run tansu on this port and data; returns once it said it is ready and accepts
    /// connections, or why it ended before that.
    fn launch(&mut self) -> Result<(), String> {
        assert!(self.guard.is_none(), "tansu is already running");
        let log = self.dir.join("tansu.log");
        let pid_file = self.dir.join("tansu.pid");
        let _ = std::fs::remove_file(&pid_file);
        // The log is appended to across restarts: this start is ready when the log
        // says so once more than before.
        let ready_before = ready_lines(&log);
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://{}", self.advertised);
        // A broker that ignores SIGTERM for 10 s is killed: stopping never hangs.
        let script = r#""$0" broker --storage-engine sqlite://tansu.db --listener-url "$1" \
            --advertised-listener-url "$2" >>tansu.log 2>&1 & pid=$!; echo $pid >tansu.pid
            read _ignored; kill $pid 2>/dev/null
            i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
            kill -9 $pid 2>/dev/null; wait $pid"#;
        let child = Command::new("sh")
            .args(["-c", script])
            .arg(tansu())
            .arg(&url)
            .arg(&advertised)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        self.guard = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ready_lines(&log) > ready_before && TcpStream::connect(&self.address).is_ok() {
                return Ok(());
            }
            let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if !pid.trim().is_empty() && !alive(pid.trim()) {
                self.stop();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                return Err(format!(
                    "tansu ended before it was ready on {}: {:?}",
                    self.address, tail
                ));
            }
            assert!(
                Instant::now() < deadline,
                "tansu was not ready on {} within 20 s; see {}",
                self.address,
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the broker (SIGTERM, SIGKILL after 10 s) and wait until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.guard.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// How many times tansu's log says it is ready (`ready in 29ms`).
fn ready_lines(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ready in "))
        .count()
}

/// Whether process `pid` runs (a zombie that ended, its parent not having reaped it
/// yet, does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state != 'Z')
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A record as another application would write it.
#[derive(Debug, Clone, Default)]
pub struct Plain {
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
    /// Partition to write to; the key's hash when `None`.
    pub partition: Option<i32>,
}

/// A runtime for rdkafka's futures in a synchronous test.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Make `topic` with `partitions` on the broker at `address`, as an operator would.
pub fn create_topic(address: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .unwrap();
    let runtime = runtime();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = runtime
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap();
    for r in results {
        r.unwrap();
    }
}

/// Write `records` to `topic` with a plain rdkafka producer, in order, failing the
/// test unless every one is acknowledged.
pub fn produce(address: &str, topic: &str, records: &[Plain]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("acks", "all")
        .create()
        .unwrap();
    let runtime = runtime();
    runtime.block_on(async {
        let mut pending = Vec::new();
        for r in records {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
                .payload(&r.value)
                .headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            pending.push(producer.send_result(record).unwrap());
        }
        for delivery in pending {
            delivery.await.unwrap().unwrap();
        }
    });
}

/// How many records of `topics` the consumer group `group` has not committed yet,
/// as the broker records it: the end offsets less the group's committed ones, summed
/// over every partition (a partition without a commit counts from its start).
pub fn uncommitted(address: &str, group: &str, topics: &[&str]) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    // Not subscribed: it only asks the group's coordinator, and never joins the group.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
        for t in metadata.topics() {
            for p in t.partitions() {
                partitions.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(partitions, timeout).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| {
            let (low, high) = consumer
                .fetch_watermarks(e.topic(), e.partition(), timeout)
                .unwrap();
            let done = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            high - done
        })
        .sum()
}
