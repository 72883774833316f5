//! Freezing a container's processes through its cgroup freezer directly: a file write,
//! where `docker pause` / `unpause` go through dockerd, containerd and runc and cost
//! 15 to 40 ms each way. Docker does not learn of the freeze, so the runtime thaws a
//! container before stopping it and thaws every container it adopts.

use std::io;
use std::path::PathBuf;

/// The control file that freezes the cgroup of process `pid`, and the values that
/// freeze and thaw it (cgroup v2: `cgroup.freeze` 1/0; v1: `freezer.state`).
fn control(pid: u32) -> io::Result<(PathBuf, &'static str, &'static str)> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "freezer") {
            let file = PathBuf::from(format!("/sys/fs/cgroup/freezer{path}/freezer.state"));
            return Ok((file, "FROZEN", "THAWED"));
        }
    }
    // cgroup v2 has one unified line: `0::/path`.
    if let Some(path) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) {
        let file = PathBuf::from(format!("/sys/fs/cgroup{path}/cgroup.freeze"));
        if file.exists() {
            return Ok((file, "1", "0"));
        }
    }
    Err(io::Error::other(format!(
        "no freezer cgroup for process {pid}"
    )))
}

/// Freeze (or thaw) every process in the cgroup of `pid`.
pub(crate) fn set_frozen(pid: u32, frozen: bool) -> io::Result<()> {
    let (file, freeze, thaw) = control(pid)?;
    std::fs::write(file, if frozen { freeze } else { thaw })
}

/// Whether the cgroup of `pid` is frozen now, as the kernel reports it (v1 says
/// FREEZING on the way to FROZEN; v2's `cgroup.events` beside `cgroup.freeze` has
/// `frozen 1` once every process stopped). Tests read the freezer back with it.
#[cfg(test)]
pub(crate) fn is_frozen(pid: u32) -> io::Result<bool> {
    let (file, freeze, _) = control(pid)?;
    if freeze == "FROZEN" {
        return Ok(std::fs::read_to_string(file)?.trim() == "FROZEN");
    }
    let events = std::fs::read_to_string(file.with_file_name("cgroup.events"))?;
    Ok(events.lines().any(|l| l == "frozen 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for a cgroup of the test's own under this process's freezer
    /// cgroup (v1) or unified cgroup (v2), and the file telling whether it is frozen.
    fn own_child_cgroup(name: &str) -> (PathBuf, PathBuf) {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        for line in cgroups.lines() {
            let fields: Vec<&str> = line.splitn(3, ':').collect();
            if fields.len() == 3 && fields[1].split(',').any(|c| c == "freezer") {
                let dir = PathBuf::from(format!("/sys/fs/cgroup/freezer{}", fields[2]));
                let dir = dir.join(name);
                let state = dir.join("freezer.state");
                return (dir, state);
            }
        }
        let path = cgroups
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("no freezer cgroup (v1) nor unified cgroup (v2) in /proc/self/cgroup");
        let dir = PathBuf::from(format!("/sys/fs/cgroup{path}")).join(name);
        let events = dir.join("cgroup.events");
        (dir, events)
    }

    fn frozen(state: &std::path::Path) -> Option<bool> {
        let text = std::fs::read_to_string(state).ok()?;
        match text.trim() {
            "FROZEN" => Some(true),
            "THAWED" => Some(false),
            // v1 says FREEZING on the way; v2 has `frozen 0|1` among other lines.
            _ => text
                .lines()
                .find_map(|l| l.strip_prefix("frozen "))
                .map(|v| v == "1"),
        }
    }

    fn wait_frozen(state: &std::path::Path, want: bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while frozen(state) != Some(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {:?}, not frozen={want} after 10 s",
                state.display(),
                std::fs::read_to_string(state)
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_process_in_a_cgroup_is_frozen_and_thawed_through_its_freezer() {
        // A child in a cgroup of its own: freezing the test's cgroup would freeze the
        // test. Making one needs what the Docker runtime's freeze needs: root and a
        // writable cgroup file system.
        let (dir, state) = own_child_cgroup(&format!("paas-freezer-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot make the cgroup {} ({e}): freezing needs root and a writable cgroup file system",
                dir.display()
            )
        });
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        let result = std::panic::catch_unwind(|| {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
            let (file, _, _) = control(pid).unwrap();
            assert_eq!(file.parent(), Some(dir.as_path()), "{}", file.display());

            set_frozen(pid, true).unwrap();
            wait_frozen(&state, true);
            set_frozen(pid, false).unwrap();
            wait_frozen(&state, false);
        });
        let _ = child.kill();
        let _ = child.wait();
        // Empty once the child is gone; a cgroup is removed with rmdir.
        let _ = std::fs::remove_dir(&dir);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}
