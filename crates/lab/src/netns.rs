//! Entering a lab namespace, through `aksnet-linux` ([`Netns`], whose guard
//! always switches the thread back): from a thread of this process (probes,
//! sysctls), or in a child process between fork and exec (plugins, probe
//! servers, `lab exec`). The CLI's main thread never leaves the root
//! namespace.

use std::path::Path;
use std::process::Command;

use aksnet_linux::{Netns, NetnsGuard};

use crate::error::{LabError, Result};

fn err(path: &Path, e: aksnet_linux::Error) -> LabError {
    LabError::Netns {
        path: path.to_path_buf(),
        source: e,
    }
}

pub fn open(path: &Path) -> Result<Netns> {
    Netns::open(path).map_err(|e| err(path, e))
}

/// Moves the calling thread into the namespace at `path` until the guard
/// is dropped.
pub fn enter(path: &Path) -> Result<NetnsGuard> {
    open(path)?.enter().map_err(|e| err(path, e))
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            let _guard = enter(path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| LabError::Invalid(format!("a thread in {} panicked", path.display())))?
    })
}

/// Makes `cmd` start inside the namespace at `path` (setns between fork and
/// exec, as `ip netns exec` does, without its mount namespace).
pub fn command_in(cmd: &mut Command, path: &Path) -> Result<()> {
    open(path)?.set_for_command(cmd).map_err(|e| err(path, e))
}

/// Writes sysctls (`net/ipv4/ip_forward`, …) inside the namespace at `path`.
pub fn sysctls(path: &Path, settings: &[(&str, &str)]) -> Result<()> {
    run_in(path, || -> Result<()> {
        for (k, v) in settings {
            let parts: Vec<&str> = k.split('/').collect();
            aksnet_linux::sysctl::set(&parts, v).map_err(|e| err(path, e))?;
        }
        Ok(())
    })?
}

/// The inode of a namespace file (how `/proc/PID/ns/net` is compared).
pub fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}
