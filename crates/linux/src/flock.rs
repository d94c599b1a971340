//! Exclusive `flock(2)` locks on a file, with an optional time limit.
//!
//! The one lock helper of the workspace: the IPAM store (`aksnet-ipam`'s
//! `<dataDir>/<network>/lock`, the lock host-local takes too), the agent
//! (the same lock, before giving pool addresses back, and its one-agent-per-
//! node lock) and the lab (its directory lock) all use it.
//!
//! A `flock` belongs to the open file description, so it is released when
//! the [`FileLock`] is dropped, and by the kernel when the process dies
//! (even by `SIGKILL`): a lock can never outlive its holder.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or created.
    #[error("cannot open the lock file {}: {source}", path.display())]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `flock` itself failed.
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process held the lock for longer than we were willing to wait.
    #[error("{} is locked by another process (waited {waited:?})", path.display())]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The lock is held and the caller asked not to wait at all.
    #[error("{} is locked by another process", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
}

/// How long to wait for a lock that another process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait: [`LockError::Busy`] when it is held.
    No,
    /// Wait at most this long: [`LockError::Timeout`] after it.
    AtMost(Duration),
    /// Wait as long as it takes.
    Forever,
}

/// An exclusive lock on a file, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The locked file (e.g. to write the holder's PID into it).
    pub fn file(&self) -> &File {
        &self._lock
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Opens (creating it with mode 0600 if needed, never truncating it) the
/// file at `path` and takes an exclusive `flock` on it, waiting as `wait`
/// says. The parent directory must exist.
///
/// Uncontended this is one non-blocking `flock`. Contended with a time
/// limit, a helper thread blocks in `flock` and the kernel wakes it the
/// moment the holder lets go, which polling could not do; the caller waits
/// for the thread with the time limit. A helper that gets the lock after
/// the caller gave up drops it at once, which releases it again.
pub fn lock_exclusive(path: &Path, wait: Wait) -> Result<FileLock, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let held = |lock| FileLock {
        path: path.to_path_buf(),
        _lock: lock,
    };
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => return Ok(held(lock)),
        Err((file, Errno::EWOULDBLOCK)) => file,
        Err((_, e)) => {
            return Err(LockError::Lock {
                path: path.to_path_buf(),
                source: errno(e),
            })
        }
    };
    let limit = match wait {
        Wait::No => {
            return Err(LockError::Busy {
                path: path.to_path_buf(),
            })
        }
        Wait::Forever => {
            return blocking(file).map(held).map_err(|source| LockError::Lock {
                path: path.to_path_buf(),
                source,
            })
        }
        Wait::AtMost(limit) => limit,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // If the caller gave up, the send fails and the lock it carries is
        // dropped here, which unlocks it.
        let _ = tx.send(blocking(file));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(lock)) => Ok(held(lock)),
        Ok(Err(source)) => Err(LockError::Lock {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => Err(LockError::Timeout {
            path: path.to_path_buf(),
            waited: limit,
        }),
    }
}

/// A blocking `flock`, retried when a signal interrupts it.
fn blocking(mut file: File) -> io::Result<Flock<File>> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(errno(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn second_lock_waits_times_out_and_then_gets_it() {
        let d = dir();
        let p = d.path().join("lock");
        let first = lock_exclusive(&p, Wait::No).unwrap();
        assert!(matches!(
            lock_exclusive(&p, Wait::No),
            Err(LockError::Busy { .. })
        ));
        let t = Instant::now();
        let e = lock_exclusive(&p, Wait::AtMost(Duration::from_millis(100))).unwrap_err();
        assert!(matches!(e, LockError::Timeout { .. }), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(e.to_string().contains("locked by another process"), "{e}");
        drop(first);
        // The helper thread that got the lock after the time-out let it go.
        let again = lock_exclusive(&p, Wait::AtMost(Duration::from_secs(5))).unwrap();
        assert_eq!(again.path(), p);
    }

    #[test]
    fn a_waiter_is_woken_when_the_holder_lets_go() {
        let d = dir();
        let p = d.path().join("lock");
        let first = lock_exclusive(&p, Wait::Forever).unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let t = Instant::now();
            let l = lock_exclusive(&p2, Wait::AtMost(Duration::from_secs(30))).unwrap();
            drop(l);
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        let forever = std::thread::spawn(move || lock_exclusive(&p, Wait::Forever).is_ok());
        assert!(forever.join().unwrap());
    }

    #[test]
    fn lock_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir();
        let p = d.path().join("lock");
        std::fs::write(&p, "keep").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(lock_exclusive(&p, Wait::No).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "keep");
        let q = d.path().join("new");
        drop(lock_exclusive(&q, Wait::No).unwrap());
        let mode = std::fs::metadata(&q).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_missing_directory_is_an_open_error_naming_the_path() {
        let e = lock_exclusive(Path::new("/nonexistent/aksnet/lock"), Wait::No).unwrap_err();
        assert!(matches!(e, LockError::Open { .. }));
        assert!(e.to_string().contains("/nonexistent/aksnet/lock"), "{e}");
    }
}
