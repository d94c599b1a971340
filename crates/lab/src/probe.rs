//! The probe: a tiny TCP server in every pod, node, the VM and the internet
//! host that answers each connection with the source address it saw and
//! its own label (`10.224.0.4 pod-2-1\n`), so NAT is visible; and the
//! client side, run from a thread inside the source namespace.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::netns;

/// Serves forever on `bind:port` (every address of the current namespace
/// with `0.0.0.0`).
pub fn serve(bind: Ipv4Addr, port: u16, label: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddrV4::new(bind, port))?;
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let peer = s
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "?".into());
        let _ = s.write_all(format!("{peer} {label}\n").as_bytes());
    }
    Ok(())
}

/// One connection to make.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The source namespace (`/run/netns/...`).
    pub from_netns: PathBuf,
    pub to: Ipv4Addr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reachable: bool,
    /// The address the destination saw.
    pub source: Option<Ipv4Addr>,
    /// The destination's label.
    pub label: Option<String>,
    pub error: Option<String>,
}

impl Outcome {
    fn failed(e: impl ToString) -> Self {
        Self {
            reachable: false,
            source: None,
            label: None,
            error: Some(e.to_string()),
        }
    }
}

/// Connects from the current thread's namespace.
pub fn connect(to: Ipv4Addr, port: u16, timeout: Duration) -> Outcome {
    let addr = SocketAddr::V4(SocketAddrV4::new(to, port));
    let s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(e),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut line = String::new();
    if let Err(e) = BufReader::new(s).read_line(&mut line) {
        return Outcome::failed(e);
    }
    let mut parts = line.split_whitespace();
    let source = parts.next().and_then(|p| p.parse().ok());
    Outcome {
        reachable: source.is_some(),
        source,
        label: parts.next().map(str::to_string),
        error: if source.is_some() {
            None
        } else {
            Some(format!("unexpected answer {line:?}"))
        },
    }
}

/// Runs every probe, `parallel` at a time, each from its own namespace.
pub fn run_all(probes: &[Probe], parallel: usize, timeout: Duration) -> Vec<Outcome> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; probes.len()]);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, 64).min(probes.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(p) = probes.get(i) else { return };
                let outcome = match netns::enter(&p.from_netns) {
                    Ok(_guard) => connect(p.to, p.port, timeout),
                    Err(e) => Outcome::failed(e),
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::failed("not run")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_source_address() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        std::thread::spawn(move || serve(Ipv4Addr::LOCALHOST, port, "me"));
        let mut out = Outcome::failed("x");
        for _ in 0..100 {
            out = connect(Ipv4Addr::LOCALHOST, port, Duration::from_secs(1));
            if out.reachable {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(out.reachable, "{out:?}");
        assert_eq!(out.source, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(out.label.as_deref(), Some("me"));
        let closed = connect(Ipv4Addr::LOCALHOST, 1, Duration::from_millis(300));
        assert!(!closed.reachable && closed.error.is_some());
    }
}
