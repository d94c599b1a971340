//! Network namespaces: open them, and enter them for a scope.
//!
//! `setns(2)` changes the namespace of the calling *thread* only. A
//! [`NetnsGuard`] remembers the thread's namespace before it switched and
//! switches back when dropped, also when the scope is left by `?` or a
//! panic. Sockets created while inside a namespace stay bound to it after the
//! guard is dropped, which is how [`crate::Socket::new_in`] works.

use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{setns, CloneFlags};

use crate::{Error, Result};

/// An open network namespace (a file descriptor on its nsfs inode).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Open the namespace at `path` (e.g. `/run/netns/x` or
    /// `/proc/<pid>/ns/net`). Fails if the path is not a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let file = File::open(path)
            .map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
        // NS_GET_NSTYPE (0xb703) answers CLONE_NEWNET for a network namespace.
        // SAFETY: the ioctl takes no argument and the fd is valid.
        let ty = unsafe { libc::ioctl(file.as_raw_fd(), 0xb703 as _) };
        if ty < 0 || ty != libc::CLONE_NEWNET {
            return Err(Error::Invalid {
                what: format!("network namespace {}", path.display()),
                msg: "the path is not a network namespace (expected a file like /run/netns/NAME or /proc/PID/ns/net)".into(),
            });
        }
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        let path = PathBuf::from("/proc/thread-self/ns/net");
        let file = File::open(&path).map_err(|e| Error::io("open /proc/thread-self/ns/net", e))?;
        Ok(Netns { file, path })
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The raw file descriptor (valid as long as `self` lives).
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The (device, inode) pair that identifies the namespace.
    pub fn id(&self) -> Result<(u64, u64)> {
        let m = self
            .file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", self.path.display()), e))?;
        Ok((m.dev(), m.ino()))
    }

    /// True when the calling thread is in this namespace.
    pub fn is_current(&self) -> Result<bool> {
        Ok(Netns::current()?.id()? == self.id()?)
    }

    /// Switch the calling thread into this namespace until the guard drops.
    pub fn enter(&self) -> Result<NetnsGuard> {
        let prev = Netns::current()?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::io(
                format!("enter network namespace {}", self.path.display()),
                e.into(),
            )
        })?;
        Ok(NetnsGuard {
            prev,
            _thread_bound: PhantomData,
        })
    }

    /// Makes `cmd` start inside this namespace: `setns(2)` in the child
    /// between fork and exec, as `ip netns exec` does (without its mount
    /// namespace). The calling thread never moves.
    pub fn set_for_command(&self, cmd: &mut Command) -> Result<()> {
        let file = self.file.try_clone().map_err(|e| {
            Error::io(
                format!("duplicate the descriptor of {}", self.path.display()),
                e,
            )
        })?;
        // SAFETY: only an async-signal-safe call (setns) between fork and
        // exec; the descriptor is owned by the closure, so it stays open
        // until the spawn is done.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// Run `f` inside this namespace and switch back afterwards, whatever
    /// `f` returns.
    pub fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _guard = self.enter()?;
        f()
    }
}

/// Switches the thread back to the namespace it was in before
/// [`Netns::enter`] when dropped.
///
/// `setns(2)` moves one thread, so the guard must be dropped on the thread
/// that entered: it is neither `Send` nor `Sync`. Dropped on another
/// thread it would switch *that* thread, and strand the first one in the
/// foreign namespace; the compiler refuses it:
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// fn guard(ns: &aksnet_linux::Netns) -> aksnet_linux::Result<()> {
///     needs_send(ns.enter()?);
///     Ok(())
/// }
/// ```
///
/// ```compile_fail
/// fn needs_sync<T: Sync>(_: &T) {}
/// fn guard(ns: &aksnet_linux::Netns) -> aksnet_linux::Result<()> {
///     let g = ns.enter()?;
///     needs_sync(&g);
///     Ok(())
/// }
/// ```
///
/// Held and dropped on one thread, it is fine:
///
/// ```no_run
/// let ns = aksnet_linux::Netns::open("/run/netns/example")?;
/// std::thread::spawn(move || -> aksnet_linux::Result<()> {
///     let _guard = ns.enter()?;
///     // … work inside the namespace, on this thread only …
///     Ok(())
/// });
/// # Ok::<(), aksnet_linux::Error>(())
/// ```
#[must_use = "the thread switches back as soon as the guard is dropped"]
#[derive(Debug)]
pub struct NetnsGuard {
    prev: Netns,
    /// A raw pointer is neither `Send` nor `Sync`: so is the guard.
    _thread_bound: PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.prev.file.as_fd(), CloneFlags::CLONE_NEWNET) {
            // A thread left in a foreign namespace would configure the wrong
            // network from here on: stopping is the only safe answer.
            tracing::error!(error = %e, "cannot switch the thread back to its network namespace");
            eprintln!("aksnet-linux: cannot switch back to the previous network namespace: {e}");
            std::process::abort();
        }
    }
}
