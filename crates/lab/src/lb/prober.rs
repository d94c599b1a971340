//! Health probes from the fabric, as Azure's come: from
//! [`super::PROBE_SOURCE`] to each member's NIC address. A TCP probe is up
//! when the connection is accepted; an HTTP probe when `GET PATH` answers
//! 200 (the agent's `healthCheckNodePort` answers 503 without a local
//! endpoint). Each probe has [`super::PROBE_TIMEOUT`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use nix::sys::time::TimeVal;

use super::ProbeSpec;
use crate::error::Result;

/// One probe to run: the member's address and the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub spec: ProbeSpec,
}

/// A probe's result: whether it passed and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Result1 {
    pub ok: bool,
    pub seen: String,
}

/// A TCP connection from `src` (any port) to `to` within `timeout`.
fn connect_from(src: Ipv4Addr, to: SocketAddrV4, timeout: Duration) -> std::io::Result<TcpStream> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // Linux bounds a blocking connect(2) by SO_SNDTIMEO.
    let tv = TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    setsockopt(&fd, sockopt::SendTimeout, &tv)?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
    // A source the namespace does not hold (a fabric without it) falls
    // back to the kernel's choice.
    let _ = bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(src, 0)),
    );
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timeout".into(),
        _ if e.raw_os_error() == Some(libc::EINPROGRESS) => "timeout".into(),
        _ => e.to_string(),
    }
}

/// Runs one probe from the calling thread's namespace.
pub fn once(src: Ipv4Addr, t: &Target, timeout: Duration) -> Result1 {
    let to = SocketAddrV4::new(t.ip, t.spec.port);
    let mut s = match connect_from(src, to, timeout) {
        Ok(s) => s,
        Err(e) => {
            return Result1 {
                ok: false,
                seen: describe(&e),
            }
        }
    };
    let Some(path) = t.spec.request_path.as_deref() else {
        return Result1 {
            ok: true,
            seen: "connected".into(),
        };
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {to}\r\nUser-Agent: Load Balancer Agent\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Result1 {
            ok: false,
            seen: describe(&e),
        };
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    // The status line is all a probe reads (Azure: 200 is up).
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return Result1 {
                    ok: false,
                    seen: describe(&e),
                }
            }
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let code = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("no answer")
        .to_string();
    Result1 {
        ok: code == "200",
        seen: code,
    }
}

/// Runs every probe at once from the namespace at `netns`.
pub fn run(
    netns: &Path,
    src: Ipv4Addr,
    targets: &[Target],
    timeout: Duration,
) -> Result<Vec<Result1>> {
    crate::netns::run_in(netns, || {
        // Threads made here start in the namespace this thread entered.
        std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .map(|t| s.spawn(move || once(src, t, timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or(Result1 {
                        ok: false,
                        seen: "probe thread panicked".into(),
                    })
                })
                .collect()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spec(path: Option<&str>, port: u16) -> ProbeSpec {
        ProbeSpec {
            protocol: if path.is_some() { "Http" } else { "Tcp" }.into(),
            port,
            request_path: path.map(str::to_string),
            interval_seconds: 5,
            probe_threshold: 2,
        }
    }

    #[test]
    fn tcp_and_http_probes_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (i, c) in l.incoming().take(3).enumerate() {
                let mut c = c.unwrap();
                if i == 0 {
                    continue; // the TCP probe: accepted is enough
                }
                let mut b = [0u8; 256];
                let _ = c.read(&mut b);
                let status = if i == 1 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let lo = Ipv4Addr::LOCALHOST;
        let t = |p| Target {
            ip: lo,
            spec: spec(p, port),
        };
        let r = once(lo, &t(None), Duration::from_secs(2));
        assert_eq!((r.ok, r.seen.as_str()), (true, "connected"));
        let r = once(lo, &t(Some("/healthz")), Duration::from_secs(2));
        assert_eq!((r.ok, r.seen.as_str()), (true, "200"));
        let r = once(lo, &t(Some("/healthz")), Duration::from_secs(2));
        assert_eq!((r.ok, r.seen.as_str()), (false, "503"));
        server.join().unwrap();
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = once(
            lo,
            &Target {
                ip: lo,
                spec: spec(None, closed),
            },
            Duration::from_secs(2),
        );
        assert_eq!((r.ok, r.seen.as_str()), (false, "refused"));
    }
}
