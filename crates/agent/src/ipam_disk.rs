//! What the node's pods use right now, read from aksnet-ipam's on-disk
//! allocations (host-local's format: a file named after each allocated
//! address in `<dataDir>/<network>/`, plus `last_reserved_ip.N` and `lock`).
//! The agent only reads them; allocation stays with the plugin on the ADD
//! path, which never waits for the agent.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aksnet_linux::flock::{self, Wait};

use crate::conflist::NETWORK_NAME;
use crate::error::AgentError;

pub fn network_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(NETWORK_NAME)
}

/// Allocated addresses; an absent directory means none.
pub fn allocated(data_dir: &Path) -> Result<BTreeSet<Ipv4Addr>, AgentError> {
    let dir = network_dir(data_dir);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => return Err(AgentError::Io { path: dir, source }),
    };
    let mut out = BTreeSet::new();
    for entry in rd.flatten() {
        if let Some(ip) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Ipv4Addr>().ok())
        {
            out.insert(ip);
        }
    }
    Ok(out)
}

/// How long the agent waits for the plugin's lock: an ADD holds it for
/// milliseconds, so a holder this slow is stuck and the reconcile retries.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Runs `f` holding the plugin's allocation lock (`flock` on
/// `<dataDir>/<network>/lock`), so no ADD allocates while it runs.
pub fn with_lock<T>(data_dir: &Path, f: impl FnOnce() -> T) -> Result<T, AgentError> {
    let dir = network_dir(data_dir);
    // 0700, as aksnet-ipam creates it: allocation files name the node's pods.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| AgentError::Io {
            path: dir.clone(),
            source,
        })?;
    let lock = flock::lock_exclusive(&dir.join("lock"), Wait::AtMost(LOCK_WAIT))?;
    let out = f();
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_local_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(allocated(d.path()).unwrap().is_empty());
        let n = network_dir(d.path());
        std::fs::create_dir_all(&n).unwrap();
        std::fs::write(n.join("10.225.0.4"), "cid\r\neth0").unwrap();
        std::fs::write(n.join("10.225.0.9"), "cid2\r\neth0").unwrap();
        std::fs::write(n.join("last_reserved_ip.0"), "10.225.0.9").unwrap();
        std::fs::write(n.join("lock"), "").unwrap();
        let got = with_lock(d.path(), || allocated(d.path()).unwrap()).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&"10.225.0.9".parse().unwrap()));
    }
}
