//! Replicas as local child processes: fast to start, no Docker needed. Each replica runs
//! in its own process group, so stopping it stops whatever it spawned; a record per
//! replica in the data directory lets a restarted `paas up` kill what a crashed one left.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::{Error, Replica, ReplicaSpec, ReplicaState, Result, Runtime};

/// The only variables a process replica takes from `paas up`'s environment.
const BASE_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

#[derive(Debug)]
pub struct ProcessRuntime {
    dir: PathBuf,
    children: Mutex<HashMap<String, Running>>,
}

#[derive(Debug)]
struct Running {
    record: Record,
    child: Child,
    exit: Option<Option<i64>>,
    frozen: bool,
}

/// What survives a crash of `paas up`: enough to find and kill the process group.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    pid: u32,
    /// The process's start time, compared before a kill so a reused pid is never killed.
    started: u64,
    namespace: String,
    revision: String,
    revision_uid: String,
    port: u16,
}

impl ProcessRuntime {
    /// Uses `data_dir/replicas` for records and logs, and kills the replicas that a
    /// previous run left behind.
    pub fn new(data_dir: &Path) -> Result<Arc<Self>> {
        let dir = data_dir.join("replicas");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        let rt = Self {
            dir,
            children: Mutex::new(HashMap::new()),
        };
        rt.kill_orphans();
        Ok(Arc::new(rt))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    fn kill_orphans(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record: Option<Record> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(r) = record {
                if process_runs(r.pid, r.started) {
                    tracing::info!(replica = %r.id, pid = r.pid, "killing a replica left by a previous run");
                    let _ = killpg(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
                }
                let _ = std::fs::remove_file(self.log_path(&r.id));
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Kill every replica; called when `paas up` stops.
    pub fn kill_all(&self) {
        let mut children = lock(&self.children);
        for (id, running) in children.drain() {
            let _ = killpg(Pid::from_raw(running.record.pid as i32), Signal::SIGKILL);
            let _ = std::fs::remove_file(self.record_path(&id));
            let _ = std::fs::remove_file(self.log_path(&id));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a consistent map; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `pid` is still the process that was started at `started` (a reused pid has
/// another start time; unlike the command line, it does not change at exec).
fn process_runs(pid: u32, started: u64) -> bool {
    start_time(pid) == Some(started)
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_name = stat.rsplit_once(") ")?.1;
    after_name.split(' ').nth(19)?.parse().ok()
}

/// An unused port on the loopback address. The port is released before the replica
/// binds it; the window is small and a clash shows up as a replica that exits.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| Error::Io {
        what: "binding",
        path: "127.0.0.1:0".into(),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            what: "binding",
            path: "127.0.0.1:0".into(),
            source,
        })
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn check(&self, spec: &ReplicaSpec) -> Result<()> {
        if spec.command.is_empty() {
            return Err(Error::Unsupported {
                runtime: "process",
                what: format!(
                    "a command for {}: set containers[0].command (paas deploy --cmd), or run paas up --runtime docker for images",
                    spec.revision
                ),
            });
        }
        Ok(())
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica> {
        self.check(spec)?;
        let id = format!("p-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let port = free_port()?;
        let log_path = self.log_path(&id);
        let log = std::fs::File::create(&log_path).map_err(|source| Error::Io {
            what: "creating",
            path: log_path.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            what: "opening",
            path: log_path.clone(),
            source,
        })?;
        let program = spec.command[0].clone();
        let mut cmd = Command::new(&program);
        // Exactly what a container would get: the runtime contract, the revision's env
        // and a minimal PATH/HOME/LANG; never paas' own environment (tokens, keys).
        cmd.args(&spec.command[1..])
            .args(&spec.args)
            .env_clear()
            .envs(
                BASE_ENV
                    .iter()
                    .filter_map(|k| Some((*k, std::env::var_os(k)?))),
            )
            .envs(spec.environment(port))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(source) => {
                // Nothing ran, so nothing was logged: a revision retried for days must
                // not leave a file per try.
                let _ = std::fs::remove_file(&log_path);
                return Err(Error::Spawn {
                    command: spec.command.join(" "),
                    source,
                });
            }
        };
        let pid = child.id().ok_or_else(|| Error::Spawn {
            command: program.clone(),
            source: std::io::Error::other("exited at once"),
        })?;
        let record = Record {
            id: id.clone(),
            pid,
            started: start_time(pid).unwrap_or(0),
            namespace: spec.namespace.clone(),
            revision: spec.revision.clone(),
            revision_uid: spec.revision_uid.clone(),
            port,
        };
        let path = self.record_path(&id);
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Io {
            what: "writing",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&path, bytes).map_err(|source| Error::Io {
            what: "writing",
            path,
            source,
        })?;
        tracing::debug!(replica = %id, pid, port, revision = %spec.revision, "process replica started");
        let replica = to_replica(&record, ReplicaState::Running);
        lock(&self.children).insert(
            id,
            Running {
                record,
                child,
                exit: None,
                frozen: false,
            },
        );
        Ok(replica)
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let running = lock(&self.children).remove(id);
        let Some(mut running) = running else {
            return Err(Error::NoSuchReplica { id: id.to_owned() });
        };
        let pgid = Pid::from_raw(running.record.pid as i32);
        if running.exit.is_none() {
            let _ = killpg(pgid, Signal::SIGTERM);
            // A frozen replica handles the signal only once it runs again.
            if running.frozen {
                let _ = killpg(pgid, Signal::SIGCONT);
            }
            if tokio::time::timeout(grace, running.child.wait())
                .await
                .is_err()
            {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = running.child.wait().await;
            }
        }
        // Children of the replica may outlive its main process; the group goes with it.
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = std::fs::remove_file(self.record_path(id));
        let _ = std::fs::remove_file(self.log_path(id));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Replica>> {
        let mut children = lock(&self.children);
        Ok(children
            .values_mut()
            .map(|r| {
                if r.exit.is_none() {
                    if let Ok(Some(status)) = r.child.try_wait() {
                        r.exit = Some(status.code().map(i64::from));
                    }
                }
                let state = match r.exit {
                    Some(code) => ReplicaState::Exited { code },
                    None if r.frozen => ReplicaState::Frozen,
                    None => ReplicaState::Running,
                };
                to_replica(&r.record, state)
            })
            .collect())
    }

    async fn freeze(&self, id: &str) -> Result<()> {
        self.signal(id, Signal::SIGSTOP, true)
    }

    async fn thaw(&self, id: &str) -> Result<()> {
        self.signal(id, Signal::SIGCONT, false)
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let path = self.log_path(id);
        let text = tokio::fs::read(&path).await.map_err(|source| Error::Io {
            what: "reading",
            path,
            source,
        })?;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        Ok(lines[lines.len().saturating_sub(tail)..].to_vec())
    }
}

impl ProcessRuntime {
    /// Send `signal` to a replica's process group and record whether it is frozen.
    fn signal(&self, id: &str, signal: Signal, frozen: bool) -> Result<()> {
        let mut children = lock(&self.children);
        let running = children
            .get_mut(id)
            .ok_or_else(|| Error::NoSuchReplica { id: id.to_owned() })?;
        killpg(Pid::from_raw(running.record.pid as i32), signal).map_err(|e| Error::Io {
            what: "signalling",
            path: format!("process group {}", running.record.pid).into(),
            source: std::io::Error::from_raw_os_error(e as i32),
        })?;
        running.frozen = frozen;
        Ok(())
    }
}

fn to_replica(r: &Record, state: ReplicaState) -> Replica {
    Replica {
        id: r.id.clone(),
        namespace: r.namespace.clone(),
        revision: r.revision.clone(),
        revision_uid: r.revision_uid.clone(),
        address: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, r.port))),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str]) -> ReplicaSpec {
        ReplicaSpec {
            namespace: "default".into(),
            service: "svc".into(),
            configuration: "svc".into(),
            revision: "svc-00001".into(),
            revision_uid: "uid-1".into(),
            image: None,
            command: command.iter().map(|s| s.to_string()).collect(),
            args: vec![],
            env: vec![("GREETING".into(), "hi".into())],
            port: 8080,
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("paas-runtime-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn a_replica_gets_the_runtime_contract_and_its_logs_are_kept() {
        let dir = tempdir("contract");
        let rt = ProcessRuntime::new(&dir).unwrap();
        let s = spec(&[
            "sh",
            "-c",
            "echo $GREETING $PORT $K_SERVICE $K_CONFIGURATION $K_REVISION; exec sleep 30",
        ]);
        let r = rt.start(&s).await.unwrap();
        let port = r.address.unwrap().port();
        let mut lines = vec![];
        for _ in 0..100 {
            lines = rt.logs(&r.id, 10).await.unwrap();
            if !lines.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(lines, vec![format!("hi {port} svc svc svc-00001")]);
        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        assert!(rt.list().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_replica_gets_none_of_paas_own_environment() {
        // cargo gives the test process CARGO_* variables: none may reach the replica.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let dir = tempdir("env");
        let rt = ProcessRuntime::new(&dir).unwrap();
        let r = rt
            .start(&spec(&["sh", "-c", "env; exec sleep 30"]))
            .await
            .unwrap();
        let mut names: Vec<String> = vec![];
        for _ in 0..200 {
            let lines = rt.logs(&r.id, 100).await.unwrap();
            if lines.iter().any(|l| l.starts_with("K_REVISION=")) {
                names = lines
                    .iter()
                    .filter_map(|l| Some(l.split_once('=')?.0.to_owned()))
                    .collect();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
        // What the shell itself sets (PWD, SHLVL) is not paas'.
        let allowed = [
            "GREETING",
            "PORT",
            "K_SERVICE",
            "K_CONFIGURATION",
            "K_REVISION",
            "PATH",
            "HOME",
            "LANG",
            "PWD",
            "SHLVL",
            "OLDPWD",
            "_",
        ];
        assert!(names.contains(&"K_REVISION".to_owned()), "{names:?}");
        let leaked: Vec<_> = names
            .iter()
            .filter(|n| !allowed.contains(&n.as_str()))
            .collect();
        assert!(
            leaked.is_empty(),
            "the replica got {leaked:?} from paas' environment"
        );
    }

    #[tokio::test]
    async fn an_exited_replica_is_listed_as_exited() {
        let dir = tempdir("exit");
        let rt = ProcessRuntime::new(&dir).unwrap();
        let r = rt.start(&spec(&["sh", "-c", "exit 3"])).await.unwrap();
        let mut state = ReplicaState::Running;
        for _ in 0..200 {
            state = rt.list().await.unwrap()[0].state;
            if state != ReplicaState::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(state, ReplicaState::Exited { code: Some(3) });
        rt.stop(&r.id, Duration::from_secs(1)).await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_restart_kills_what_the_previous_run_left() {
        let dir = tempdir("orphans");
        let first = ProcessRuntime::new(&dir).unwrap();
        let r = first
            .start(&spec(&[
                "python3",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
            ]))
            .await
            .unwrap();
        let pid = lock(&first.children).get(&r.id).unwrap().record.pid;
        // Forget the child without killing it, as a crash would.
        std::mem::forget(lock(&first.children).drain().collect::<Vec<_>>());
        let _second = ProcessRuntime::new(&dir).unwrap();
        let mut gone = false;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // A killed child that nobody reaped is a zombie ('Z').
            if stat.is_empty() || stat.contains(") Z") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "orphan {pid} still runs");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_frozen_replica_gets_no_cpu_until_thawed() {
        let dir = tempdir("freeze");
        let rt = ProcessRuntime::new(&dir).unwrap();
        let r = rt.start(&spec(&["sleep", "30"])).await.unwrap();
        let pid = lock(&rt.children).get(&r.id).unwrap().record.pid;
        let state_of = |pid: u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
        };
        rt.freeze(&r.id).await.unwrap();
        let mut stopped = false;
        for _ in 0..100 {
            if state_of(pid) == 'T' {
                stopped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stopped, "not stopped: {}", state_of(pid));
        assert_eq!(rt.list().await.unwrap()[0].state, ReplicaState::Frozen);
        rt.thaw(&r.id).await.unwrap();
        assert_eq!(rt.list().await.unwrap()[0].state, ReplicaState::Running);
        rt.freeze(&r.id).await.unwrap();
        // A frozen replica still stops promptly.
        tokio::time::timeout(
            Duration::from_secs(5),
            rt.stop(&r.id, Duration::from_secs(3)),
        )
        .await
        .unwrap()
        .unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_command_that_cannot_run_leaves_no_file() {
        let dir = tempdir("nofile");
        let rt = ProcessRuntime::new(&dir).unwrap();
        for _ in 0..3 {
            let err = rt.start(&spec(&["/nonexistent/server"])).await.unwrap_err();
            assert!(err.to_string().contains("/nonexistent/server"), "{err}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.join("replicas"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn process_runtime_requires_a_command() {
        let dir = tempdir("nocmd");
        let rt = ProcessRuntime::new(&dir).unwrap();
        let err = rt.check(&spec(&[])).unwrap_err().to_string();
        assert!(err.contains("--cmd"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
