//! Processes the lab starts (agents, probe servers, the fabric controller):
//! started detached with their output in a log file, recorded by PID, and
//! stopped by PID after checking the PID is still the process we started.

#![allow(
    unsafe_code,
    reason = "the lab's process code: signals and reaping of the processes it started"
)]

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::netns;

/// A process to start.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    /// Start it inside this namespace (else the caller's).
    pub netns: Option<PathBuf>,
    /// stdout and stderr go here (appended).
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

/// Starts the process in its own process group (so a Ctrl-C of the CLI does
/// not reach it) and returns its PID.
pub fn spawn_detached(s: Spawn<'_>) -> Result<u32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log)
        .map_err(|e| LabError::io(&s.log, e))?;
    let log2 = log.try_clone().map_err(|e| LabError::io(&s.log, e))?;
    let mut cmd = Command::new(s.program);
    cmd.args(&s.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    for (k, v) in &s.env {
        cmd.env(k, v);
    }
    if let Some(ns) = &s.netns {
        netns::command_in(&mut cmd, ns)?;
    }
    let child = cmd.spawn().map_err(|source| LabError::Spawn {
        cmd: format!("{} {}", s.program.display(), s.args.join(" ")),
        source,
    })?;
    Ok(child.id())
}

/// The arguments a process was started with (empty for a zombie or none).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Running, and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Whether PID `pid` is still the process whose arguments contain `marker`
/// as one whole argument.
pub fn is_ours(pid: u32, marker: &str) -> bool {
    alive(pid) && cmdline(pid).iter().any(|a| a == marker)
}

/// Stops `pid` if it is still ours (see [`is_ours`]): SIGTERM, then SIGKILL
/// after `grace`. Reaps it when it is a child of this process. Returns
/// whether it was ours and is gone.
pub fn stop(pid: u32, marker: &str, grace: Duration) -> bool {
    if !is_ours(pid, marker) {
        reap(pid);
        return false;
    }
    stop_pid(pid, grace);
    true
}

/// Stops every `(pid, marker)` that is still ours at once: SIGTERM to all,
/// then SIGKILL to whatever is left after `grace`. Returns the PIDs stopped.
pub fn stop_all(list: &[(u32, String)], grace: Duration) -> Vec<u32> {
    let ours: Vec<u32> = list
        .iter()
        .filter(|(pid, marker)| {
            let mine = is_ours(*pid, marker);
            if !mine {
                reap(*pid);
            }
            mine
        })
        .map(|(pid, _)| *pid)
        .collect();
    let signal = |sig| {
        for pid in &ours {
            if let Ok(p) = i32::try_from(*pid) {
                if p > 1 {
                    // SAFETY: kill(2) on PIDs verified as the lab's just above.
                    unsafe { libc::kill(p, sig) };
                }
            }
        }
    };
    let wait = |limit: Duration| {
        let start = Instant::now();
        while start.elapsed() < limit {
            ours.iter().for_each(|p| reap(*p));
            if ours.iter().all(|p| !alive(*p)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    };
    signal(libc::SIGTERM);
    if !wait(grace) {
        signal(libc::SIGKILL);
        wait(Duration::from_secs(2));
    }
    ours
}

/// SIGTERM then SIGKILL, for a PID already established as the lab's.
pub fn stop_pid(pid: u32, grace: Duration) {
    let Ok(p) = i32::try_from(pid) else { return };
    if p <= 1 {
        return;
    }
    // SAFETY: kill(2) on one positive PID the lab has verified as its own.
    unsafe { libc::kill(p, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < grace {
        reap(pid);
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above.
    unsafe { libc::kill(p, libc::SIGKILL) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        reap(pid);
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Collects the exit status of `pid` if it is a child of this process.
pub fn reap(pid: u32) {
    if let Ok(p) = i32::try_from(pid) {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on one PID; fails harmlessly (ECHILD)
        // for a process that is not our child.
        unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) };
    }
}

/// Every process whose network namespace is one of `inodes`, or whose
/// arguments satisfy `args_match`: how `lab down` finds what a crashed lab
/// left behind.
pub fn find(inodes: &HashSet<u64>, args_match: &dyn Fn(&[String]) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut out = vec![];
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let in_ns = netns::inode(&PathBuf::from(format!("/proc/{pid}/ns/net")))
            .is_some_and(|i| inodes.contains(&i));
        if in_ns || args_match(&cmdline(pid)) {
            out.push(pid);
        }
    }
    out
}
