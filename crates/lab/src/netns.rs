//! Entering a lab namespace: from a thread of this process (probes,
//! sysctls), or in a child process before it executes (plugins, probe
//! servers, agents' helpers, `lab exec`). The calling thread is never the
//! main one, so the CLI itself always stays in the root namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{LabError, Result};

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| LabError::Netns {
        path: path.to_path_buf(),
        source,
    })
}

/// Moves the calling thread into the namespace at `path`. Only for threads
/// that end when their work is done ([`run_in`] spawns one).
pub fn enter_current_thread(path: &Path) -> Result<()> {
    let f = open(path)?;
    // SAFETY: setns on a valid, open namespace file descriptor; it changes
    // only the calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(LabError::Netns {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            enter_current_thread(path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| LabError::Invalid(format!("a thread in {} panicked", path.display())))?
    })
}

/// Makes `cmd` start inside the namespace at `path` (setns between fork and
/// exec, as `ip netns exec` does, without its mount namespace).
pub fn command_in(cmd: &mut Command, path: &Path) -> Result<()> {
    let f = open(path)?;
    // SAFETY: only an async-signal-safe call (setns) between fork and exec;
    // the file is owned by the closure, so it stays open until spawn is done.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Writes a sysctl (`net/ipv4/ip_forward`) inside the namespace at `path`.
pub fn sysctls(path: &Path, settings: &[(&str, &str)]) -> Result<()> {
    let owned: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_in(path, move || -> Result<()> {
        for (k, v) in &owned {
            let p = PathBuf::from("/proc/sys").join(k);
            std::fs::write(&p, v).map_err(|e| LabError::io(&p, e))?;
        }
        Ok(())
    })?
}

/// The inode of a namespace file (how `/proc/PID/ns/net` is compared).
pub fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}
