//! Running a command inside another network namespace without moving the
//! agent: the child opens nothing itself; between `fork` and `exec` it calls
//! `setns(fd, CLONE_NEWNET)` on a descriptor the parent opened.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::KernelError;

/// A namespace to run commands in (`None`: the agent's own).
#[derive(Debug)]
pub struct NetnsExec {
    netns: Option<(PathBuf, File)>,
}

impl NetnsExec {
    pub fn new(netns: Option<&Path>) -> Result<Self, KernelError> {
        let netns = match netns {
            None => None,
            Some(p) => {
                let f = File::open(p).map_err(|e| KernelError::Command {
                    command: format!("open {}", p.display()),
                    message: format!("cannot open the network namespace: {e}"),
                })?;
                Some((p.to_path_buf(), f))
            }
        };
        Ok(Self { netns })
    }

    pub fn path(&self) -> Option<&Path> {
        self.netns.as_ref().map(|(p, _)| p.as_path())
    }

    /// Runs `program args…` with `stdin`; returns stdout, or an error
    /// quoting stderr.
    pub fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<String, KernelError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((_, f)) = &self.netns {
            let fd = f.as_raw_fd();
            // SAFETY: setns is async-signal-safe; the closure allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let shown = || format!("{program} {}", args.join(" "));
        let mut child = cmd.spawn().map_err(|e| KernelError::Command {
            command: shown(),
            message: format!("cannot start: {e}"),
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).map_err(|e| KernelError::Command {
                command: shown(),
                message: format!("writing its input: {e}"),
            })?;
        }
        let out = child.wait_with_output().map_err(|e| KernelError::Command {
            command: shown(),
            message: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(KernelError::Command {
                command: shown(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
