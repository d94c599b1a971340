//! Prerequisites of the workspace's kernel tests (feature `testing`).
//!
//! A test that needs root or a binary calls [`can_run`] (or [`ready`] with
//! its own list of what is missing): outside CI it prints why and is
//! skipped; under `CI=true` it fails, so a CI machine that lacks a
//! prerequisite cannot pass by skipping.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// True under CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `tool` exists: a path (it contains `/`) that exists, or a
/// name found on `PATH`.
pub fn which(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// What of root and `tools` is missing, one entry each.
pub fn missing(tools: &[&str]) -> Vec<String> {
    let mut m = Vec::new();
    if !is_root() {
        m.push("root".to_string());
    }
    m.extend(tools.iter().filter(|t| !which(t)).map(|t| t.to_string()));
    m
}

/// True when nothing is missing. Otherwise prints why `what` is skipped and
/// returns false, or panics under `CI=true`.
pub fn ready(what: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let why = format!("{what} needs {}", missing.join(", "));
    if in_ci() {
        panic!("{why} (CI=true: failing instead of skipping)");
    }
    eprintln!("skipping: {why}");
    false
}

/// Root and every tool in `tools` (names on `PATH` or paths): see [`ready`].
pub fn can_run(what: &str, tools: &[&str]) -> bool {
    ready(what, &missing(tools))
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u32::from(u16::from_be_bytes([c[0], c[1]]))
        } else {
            u32::from(c[0]) << 8
        };
        sum = sum.wrapping_add(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Send ICMP echo requests to `dst` from inside `ns` until a reply comes
/// (true) or `timeout` passes (false).
pub fn ping(ns: &crate::Netns, dst: Ipv4Addr, timeout: Duration) -> bool {
    let sock = {
        let _g = ns.enter().expect("enter netns");
        // SAFETY: plain socket(2) call.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) }
    };
    assert!(sock >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh, valid descriptor this function owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(sock) };
    let id: u16 = (std::process::id() as u16) ^ 0x5a5a;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: valid fd and option value.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    let deadline = Instant::now() + timeout;
    let mut seq: u16 = 0;
    while Instant::now() < deadline {
        seq = seq.wrapping_add(1);
        let mut pkt = [0u8; 16];
        pkt[0] = 8;
        pkt[4..6].copy_from_slice(&id.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        // SAFETY: valid buffer and address.
        unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
        }
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            let mut buf = [0u8; 1500];
            // SAFETY: valid buffer.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            let n = n as usize;
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            if n < ihl + 8 {
                continue;
            }
            let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
            let icmp = &buf[ihl..n];
            if icmp[0] == 0 && src == dst && icmp[4..6] == id.to_be_bytes() {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_paths_and_names() {
        assert!(which("/bin/sh") || which("/usr/bin/sh"));
        assert!(which("sh"));
        assert!(!which("/nonexistent/aksnet-tool"));
        assert!(!which("aksnet-no-such-tool"));
    }

    #[test]
    fn nothing_missing_is_ready() {
        assert!(ready("a test", &[]));
    }

    #[test]
    fn a_missing_tool_is_listed() {
        let m = missing(&["aksnet-no-such-tool"]);
        assert!(m.contains(&"aksnet-no-such-tool".to_string()), "{m:?}");
    }
}
