//! The allocation store, in host-local's on-disk format.
//!
//! Directory `<dataDir>/<network>/`:
//! * one file per allocated address, named by the address, holding
//!   `containerID\r\nifname` (legacy files hold only the ID);
//! * `last_reserved_ip.<range set index>`: the address last handed out;
//! * `lock`: `flock`ed exclusively around every operation.
//!
//! Files are created with `O_EXCL` and mode 0600, as host-local does, so
//! both plugins can share a directory.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use aksnet_core::cni::ipam::{owner_content, parse_owner, Allocation};
use aksnet_core::cni::{code, CniError};

/// An open, locked store directory. The lock is released on drop.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

fn io_err(what: String, e: io::Error) -> CniError {
    CniError::new(code::IO, what, e.to_string())
}

/// How long to wait for the store lock before answering "try again later"
/// (11): `$AKSNET_IPAM_LOCK_TIMEOUT_MS`, else 30 s. A holder that long is
/// stuck; the runtime retries rather than hang.
fn lock_timeout() -> Duration {
    std::env::var("AKSNET_IPAM_LOCK_TIMEOUT_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_millis)
}

/// `flock` the store, waiting at most [`lock_timeout`]. Uncontended, this
/// is one non-blocking `flock`. Contended, a helper thread blocks in
/// `flock` on a duplicate of the descriptor (same open file description,
/// so the lock it gets is ours) and the kernel wakes it the moment the
/// holder lets go, which polling could not do; the caller waits for it with
/// a timeout. A helper that gets the lock after the timeout drops its
/// descriptor, the last one, which releases the lock again.
fn take_lock(lock: &File, path: &Path) -> Result<(), CniError> {
    match lock.try_lock() {
        Ok(()) => return Ok(()),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => {
            return Err(io_err(format!("cannot lock {}", path.display()), e))
        }
    }
    let dup = lock
        .try_clone()
        .map_err(|e| io_err(format!("cannot duplicate {}", path.display()), e))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = dup.lock();
        let _ = tx.send(r);
    });
    let timeout = lock_timeout();
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(io_err(format!("cannot lock {}", path.display()), e)),
        Err(_) => Err(CniError::new(
            code::TRY_AGAIN,
            format!(
                "the IPAM store {} is locked by another process",
                path.display()
            ),
            format!("waited {timeout:?}; try again later"),
        )),
    }
}

impl Store {
    /// Create the directory if needed and take its lock (blocking).
    pub fn open(dir: &str) -> Result<Store, CniError> {
        let dir = PathBuf::from(dir);
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
        {
            return Err(io_err(
                format!("cannot create the IPAM store directory {}", dir.display()),
                e,
            ));
        }
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err(format!("cannot open {}", lock_path.display()), e))?;
        take_lock(&lock, &lock_path)?;
        Ok(Store { dir, _lock: lock })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Every allocation in the directory (files named by an address).
    pub fn allocations(&self) -> Result<Vec<Allocation>, CniError> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| io_err(format!("cannot list {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(128);
        for ent in rd {
            let Ok(ent) = ent else { continue };
            let name = ent.file_name();
            let Some(ip) = name.to_str().and_then(|s| s.parse::<IpAddr>().ok()) else {
                continue;
            };
            buf.clear();
            let Ok(mut f) = File::open(ent.path()) else {
                continue;
            };
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            let text = String::from_utf8_lossy(&buf);
            if let Some((id, ifname)) = parse_owner(&text) {
                out.push(Allocation {
                    ip,
                    container_id: id,
                    ifname,
                });
            }
        }
        Ok(out)
    }

    /// The set of allocated addresses (names only, no file reads).
    pub fn used(&self) -> Result<HashSet<IpAddr>, CniError> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| io_err(format!("cannot list {}", self.dir.display()), e))?;
        Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect())
    }

    /// Reserve `ip` for (`id`, `ifname`). `Ok(false)` if it is taken.
    pub fn reserve(&self, ip: IpAddr, id: &str, ifname: &str) -> Result<bool, CniError> {
        let p = self.ip_path(ip);
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(format!("cannot create {}", p.display()), e)),
        };
        if let Err(e) = f.write_all(owner_content(id, ifname).as_bytes()) {
            let _ = fs::remove_file(&p);
            return Err(io_err(format!("cannot write {}", p.display()), e));
        }
        Ok(true)
    }

    /// Remove the file of `ip`; `Ok(false)` if there was none.
    pub fn release(&self, ip: IpAddr) -> Result<bool, CniError> {
        let p = self.ip_path(ip);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(format!("cannot remove {}", p.display()), e)),
        }
    }

    /// The last reserved address of range set `idx`.
    pub fn last_reserved(&self, idx: usize) -> Option<IpAddr> {
        let p = self.dir.join(format!("last_reserved_ip.{idx}"));
        fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    /// Record the last reserved address of range set `idx`.
    pub fn set_last_reserved(&self, idx: usize, ip: IpAddr) -> Result<(), CniError> {
        let p = self.dir.join(format!("last_reserved_ip.{idx}"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&p)
            .map_err(|e| io_err(format!("cannot open {}", p.display()), e))?;
        f.write_all(ip.to_string().as_bytes())
            .map_err(|e| io_err(format!("cannot write {}", p.display()), e))
    }
}
