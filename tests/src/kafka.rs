//! A real Kafka-protocol broker for tests: tansu 0.6.0 (installed by
//! `scripts/kafka.sh`), one per test binary, on a free port with its own SQLite file.
//! `PAAS_TEST_KAFKA=HOST:PORT` points the tests at a broker that is already running.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_port;

struct Broker {
    address: String,
    /// Holds the pipe whose closing (when the test binary exits) stops the broker.
    _guard: Option<Child>,
}

static BROKER: OnceLock<Broker> = OnceLock::new();

/// `127.0.0.1:PORT` of a broker shared by the tests of this binary.
pub fn broker() -> &'static str {
    &BROKER.get_or_init(start).address
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

fn start() -> Broker {
    if let Ok(address) = std::env::var("PAAS_TEST_KAFKA") {
        return Broker {
            address,
            _guard: None,
        };
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("paas-tansu-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("tcp://127.0.0.1:{port}");
    // The shell stops tansu when its stdin closes, which happens when this test binary
    // exits however it exits, so no broker outlives its tests.
    let script = r#""$0" broker --storage-engine sqlite://tansu.db --listener-url "$1" \
        --advertised-listener-url "$1" >tansu.log 2>&1 & pid=$!; read _ignored; kill $pid"#;
    let child = Command::new("sh")
        .args(["-c", script])
        .arg(tansu())
        .arg(&url)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {address} within 20 s; see {}",
            dir.join("tansu.log").display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        address,
        _guard: Some(child),
    }
}
