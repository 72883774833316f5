//! The data directory of `paas up`: owned by one instance at a time (an exclusive lock on
//! `DATA_DIR/lock`) and readable by its owner only, since it holds the API token and the
//! store with every Secret.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use nix::fcntl::{Flock, FlockArg};

/// The lock file; it holds the pid of the `paas up` that owns the directory.
const LOCK_FILE: &str = "lock";
/// Files that hold secrets or the whole state, made owner-only if they exist.
const PRIVATE_FILES: [&str; 5] = ["paas.db", "paas.db-wal", "paas.db-shm", "token", "instance"];

/// A data directory this process owns until it is dropped.
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    /// Released by the kernel when the process ends, however it ends.
    _lock: Flock<File>,
}

impl DataDir {
    /// Create (mode 0700) and lock `path`, refusing when another `paas up` holds it, and
    /// make what it already holds owner-only.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the data directory {}", path.display()))?;
        restrict(path, 0o700)?;
        let lock_path = path.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let who = match pid.trim() {
                    "" => "another `paas up`".to_owned(),
                    pid => format!("another `paas up` (pid {pid})"),
                };
                bail!(
                    "{who} is using the data directory {}: stop it first, or give this one another --data-dir",
                    path.display()
                );
            }
            Err((_, errno)) => {
                return Err(std::io::Error::from(errno))
                    .with_context(|| format!("cannot lock {}", lock_path.display()))
            }
        };
        // The pid is for the message above, read by the next one to try.
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", lock_path.display()))?;
        for name in PRIVATE_FILES {
            let file = path.join(name);
            if file.exists() {
                restrict(&file, 0o600)?;
            }
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The store's file, created owner-only before SQLite opens it: SQLite gives its
    /// journal files the database file's mode.
    pub(crate) fn store_file(&self) -> Result<PathBuf> {
        let db = self.path.join("paas.db");
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&db)
            .with_context(|| format!("cannot create {}", db.display()))?;
        restrict(&db, 0o600)?;
        Ok(db)
    }
}

/// Take group and other permissions away from `path` (down to `mode`), saying so when
/// they were there.
fn restrict(path: &Path, mode: u32) -> Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the mode of {}", path.display()))?;
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = %format!("{current:o}"), "made owner-only: it was readable by others");
        std::fs::set_permissions(path, Permissions::from_mode(mode)).with_context(|| {
            format!("cannot make {} owner-only (chmod {mode:o})", path.display())
        })?;
    }
    Ok(())
}

/// Raise the soft limit on open files to the hard one: every connection and replica
/// log is a descriptor, and the common soft default (1,024) is reached by a few hundred
/// idle clients.
pub(crate) fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open-files limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("paas-datadir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_second_instance_is_refused_while_the_first_holds_the_directory() {
        let dir = tempdir("lock");
        let first = DataDir::open(&dir).unwrap();
        let err = DataDir::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("--data-dir"),
            "{err}"
        );
        drop(first);
        DataDir::open(&dir).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_directory_and_its_secrets_are_owner_only() {
        let dir = tempdir("modes");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("token"), "t").unwrap();
        std::fs::set_permissions(dir.join("token"), Permissions::from_mode(0o644)).unwrap();
        let data = DataDir::open(&dir).unwrap();
        let db = data.store_file().unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("token")), 0o600);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }
}
