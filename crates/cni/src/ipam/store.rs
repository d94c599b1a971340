//! The allocation store, in host-local's on-disk format.
//!
//! Directory `<dataDir>/<network>/` (created 0700):
//! * one file per allocated address, named by the address, holding
//!   `containerID\r\nifname` (legacy files hold only the ID), mode 0600;
//! * `last_reserved_ip.<range set index>`: the address last handed out;
//! * `lock`: `flock`ed exclusively around every operation, the lock
//!   host-local takes too, so both plugins can share a directory.
//!
//! **An allocation is visible only complete.** host-local creates the
//! address file with `O_EXCL` and then writes the owner into it; a process
//! killed between the two leaves an empty file that no DEL matches (it has
//! no owner) and that nothing ever frees. Here the owner is written to a
//! temporary file first (`.aksnet-tmp.<pid>`), which is then hard-linked to
//! the address's name: `link(2)` fails with `EEXIST` when the address is
//! taken (the `O_EXCL` of host-local) and otherwise makes the complete file
//! appear at once. A process killed at any point leaves either nothing, a
//! temporary file, or a complete allocation.
//!
//! **What only a dead process leaves.** Every operation holds the lock, and
//! every writer (aksnet-ipam, host-local) finishes its file before letting
//! go of it, so a temporary file, or an address file with no owner (empty,
//! or unreadable), found while holding the lock belongs to a process that
//! died mid-operation: a killed aksnet-ipam's temporary file, a killed
//! host-local's empty file, or a file of an older aksnet-ipam. ADD removes
//! temporary files it meets; GC removes those and frees ownerless address
//! files. Neither is ever an address in use.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aksnet_core::cni::ipam::{owner_content, parse_owner, Allocation};
use aksnet_core::cni::{code, CniError};
use aksnet_linux::flock::{self, FileLock, LockError, Wait};

/// Name prefix of the temporary files an allocation is written to.
pub const TEMP_PREFIX: &str = ".aksnet-tmp.";

/// An open, locked store directory. The lock is released on drop.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: FileLock,
}

/// What one listing of the directory found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Complete allocations.
    pub allocations: Vec<Allocation>,
    /// Address files without a readable owner (only a dead process leaves
    /// them; see the module docs).
    pub ownerless: Vec<IpAddr>,
    /// Temporary files of dead processes.
    pub temps: Vec<PathBuf>,
    /// Files named by an address but not in its canonical spelling
    /// (`fd00::0` for `fd00::`): no plugin writes them and no DEL can
    /// match them, so they keep their address taken until GC frees them.
    pub misnamed: Vec<(IpAddr, PathBuf)>,
}

impl Scan {
    /// Every address that has a file, owned or not.
    pub fn used(&self) -> HashSet<IpAddr> {
        self.allocations
            .iter()
            .map(|a| a.ip)
            .chain(self.ownerless.iter().copied())
            .chain(self.misnamed.iter().map(|(ip, _)| *ip))
            .collect()
    }
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

/// Test hook: `AKSNET_IPAM_TEST_STALL=POINT:FILE` makes the process write
/// its PID to FILE and stop forever at POINT (`before-link`, `after-link`),
/// so a test can `SIGKILL` an ADD at exactly the worst moment.
fn stall_at(point: &str) {
    let Ok(v) = std::env::var("AKSNET_IPAM_TEST_STALL") else {
        return;
    };
    let Some((p, file)) = v.split_once(':') else {
        return;
    };
    if p != point {
        return;
    }
    let _ = fs::write(file, std::process::id().to_string());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

impl Store {
    /// Create the directory if needed (0700) and take its lock.
    pub fn open(dir: &str) -> Result<Store, CniError> {
        let dir = PathBuf::from(dir);
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
        {
            return Err(io_err(
                format!("cannot create the IPAM store directory {}", dir.display()),
                e,
            ));
        }
        let lock = flock::lock_exclusive(&dir.join("lock"), Wait::AtMost(lock_timeout())).map_err(
            |e| match e {
                LockError::Timeout { path, waited } => CniError::new(
                    code::TRY_AGAIN,
                    format!(
                        "the IPAM store {} is locked by another process",
                        path.display()
                    ),
                    format!("waited {waited:?}; try again later"),
                ),
                other => CniError::new(code::IO, other.to_string(), ""),
            },
        )?;
        Ok(Store { dir, _lock: lock })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn list(&self) -> Result<fs::ReadDir, CniError> {
        fs::read_dir(&self.dir)
            .map_err(|e| io_err(format!("cannot list {}", self.dir.display()), e))
    }

    /// One listing: allocations, ownerless address files, temporary files.
    pub fn scan(&self) -> Result<Scan, CniError> {
        let mut out = Scan::default();
        let mut buf = Vec::with_capacity(128);
        for ent in self.list()? {
            let Ok(ent) = ent else { continue };
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TEMP_PREFIX) {
                out.temps.push(ent.path());
                continue;
            }
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            if ip.to_string() != name {
                out.misnamed.push((ip, ent.path()));
                continue;
            }
            buf.clear();
            let read = File::open(ent.path()).and_then(|mut f| f.read_to_end(&mut buf));
            let owner = read
                .ok()
                .and_then(|_| parse_owner(&String::from_utf8_lossy(&buf)));
            match owner {
                Some((id, ifname)) => out.allocations.push(Allocation {
                    ip,
                    container_id: id,
                    ifname,
                }),
                None => out.ownerless.push(ip),
            }
        }
        Ok(out)
    }

    /// Every complete allocation in the directory.
    pub fn allocations(&self) -> Result<Vec<Allocation>, CniError> {
        Ok(self.scan()?.allocations)
    }

    /// The set of addresses with a file (names only, no file reads).
    pub fn used(&self) -> Result<HashSet<IpAddr>, CniError> {
        Ok(self
            .list()?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect())
    }

    /// Removes files named by an address in a spelling no plugin writes;
    /// returns how many.
    pub fn remove_misnamed(&self, files: &[(IpAddr, PathBuf)]) -> usize {
        files
            .iter()
            .filter(|(ip, p)| {
                let gone = fs::remove_file(p).is_ok();
                if gone {
                    tracing::info!(file = %p.display(), %ip, "removed an address file not named canonically");
                }
                gone
            })
            .count()
    }

    /// Removes temporary files of dead processes; returns how many.
    pub fn remove_temps(&self, temps: &[PathBuf]) -> usize {
        temps
            .iter()
            .filter(|p| {
                let gone = fs::remove_file(p).is_ok();
                if gone {
                    tracing::info!(file = %p.display(), "removed a dead process's temporary file");
                }
                gone
            })
            .count()
    }

    /// Reserve `ip` for (`id`, `ifname`). `Ok(false)` if it is taken.
    ///
    /// The owner goes to a temporary file that is then linked to the
    /// address's name, so the address file appears complete or not at all.
    pub fn reserve(&self, ip: IpAddr, id: &str, ifname: &str) -> Result<bool, CniError> {
        let p = self.ip_path(ip);
        let tmp = self
            .dir
            .join(format!("{TEMP_PREFIX}{}", std::process::id()));
        // A file of that name is a dead process's (PIDs are reused) or
        // ours from an earlier failed attempt.
        let _ = fs::remove_file(&tmp);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(owner_content(id, ifname).as_bytes())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(format!("cannot write {}", tmp.display()), e));
        }
        stall_at("before-link");
        let linked = fs::hard_link(&tmp, &p);
        if linked.is_ok() {
            stall_at("after-link");
        }
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(format!("cannot create {}", p.display()), e)),
        }
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

    /// Record the last reserved address of range set `idx`. A process
    /// killed while writing it leaves a file that does not parse, which
    /// only makes the next allocation start from the range's beginning.
    pub fn set_last_reserved(&self, idx: usize, ip: IpAddr) -> Result<(), CniError> {
        let p = self.dir.join(format!("last_reserved_ip.{idx}"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| io_err(format!("cannot open {}", p.display()), e))?;
        f.write_all(ip.to_string().as_bytes())
            .map_err(|e| io_err(format!("cannot write {}", p.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn open(d: &Path) -> Store {
        Store::open(&d.join("net").display().to_string()).unwrap()
    }

    #[test]
    fn files_are_complete_and_private() {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path());
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(s.reserve(ip, "cid", "eth0").unwrap());
        assert!(!s.reserve(ip, "other", "eth0").unwrap());
        let f = s.dir().join("10.0.0.2");
        assert_eq!(fs::read_to_string(&f).unwrap(), "cid\r\neth0");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        s.set_last_reserved(0, ip).unwrap();
        let names: Vec<String> = fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with(TEMP_PREFIX)),
            "{names:?}"
        );
    }

    #[test]
    fn scan_sorts_owned_ownerless_and_temporary_files() {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path());
        fs::write(s.dir().join("10.0.0.2"), "a\r\neth0").unwrap();
        fs::write(s.dir().join("10.0.0.3"), "").unwrap();
        fs::write(s.dir().join("10.0.0.4"), " \r\n").unwrap();
        fs::write(s.dir().join("10.0.0.5"), "legacy").unwrap();
        fs::write(s.dir().join(format!("{TEMP_PREFIX}123")), "b\r\neth0").unwrap();
        fs::write(s.dir().join("last_reserved_ip.0"), "10.0.0.5").unwrap();
        let scan = s.scan().unwrap();
        let mut owned: Vec<String> = scan.allocations.iter().map(|a| a.ip.to_string()).collect();
        owned.sort();
        assert_eq!(owned, ["10.0.0.2", "10.0.0.5"]);
        let mut ownerless: Vec<String> = scan.ownerless.iter().map(|i| i.to_string()).collect();
        ownerless.sort();
        assert_eq!(ownerless, ["10.0.0.3", "10.0.0.4"]);
        assert_eq!(scan.temps.len(), 1);
        assert_eq!(scan.used().len(), 4);
        assert!(scan.misnamed.is_empty());
        assert_eq!(s.remove_temps(&scan.temps), 1);
        assert!(s.scan().unwrap().temps.is_empty());
    }

    // Found by the ipam_store fuzz target: a file named "fd00:9::0" held
    // fd00:9:: for good, since DEL and GC removed "fd00:9::".
    #[test]
    fn a_file_not_named_canonically_keeps_its_address_until_gc_removes_it() {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path());
        fs::write(s.dir().join("fd00:9::0"), "legacy").unwrap();
        fs::write(s.dir().join("fd00:9::1"), "a\r\neth0").unwrap();
        let scan = s.scan().unwrap();
        let ip: IpAddr = "fd00:9::".parse().unwrap();
        assert_eq!(scan.misnamed, vec![(ip, s.dir().join("fd00:9::0"))]);
        assert!(scan.used().contains(&ip), "still taken until removed");
        assert_eq!(scan.allocations.len(), 1);
        assert_eq!(s.remove_misnamed(&scan.misnamed), 1);
        assert!(s.scan().unwrap().misnamed.is_empty());
    }
}
