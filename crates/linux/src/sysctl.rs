//! `/proc/sys` keys. `net.*` keys belong to the network namespace of the
//! calling thread at the time the file is opened, so call these inside a
//! [`crate::NetnsGuard`] to reach another namespace.

use std::fs;
use std::io::Write;

use crate::{Error, Result};

/// The `/proc/sys` path of a key given as parts, e.g.
/// `["net", "ipv4", "conf", "veth1", "proxy_arp"]` (parts may contain dots,
/// as interface names can).
pub fn path(parts: &[&str]) -> Result<String> {
    let mut p = String::from("/proc/sys");
    for part in parts {
        if part.is_empty() || part.contains('/') || *part == ".." || *part == "." {
            return Err(Error::Invalid {
                what: format!("sysctl key part {part:?}"),
                msg: "must be a non-empty name without '/'".into(),
            });
        }
        p.push('/');
        p.push_str(part);
    }
    Ok(p)
}

/// Read a key (trailing newline removed).
pub fn get(parts: &[&str]) -> Result<String> {
    let p = path(parts)?;
    let s = fs::read_to_string(&p).map_err(|e| Error::io(format!("read {p}"), e))?;
    Ok(s.trim_end().to_string())
}

/// Write `value` to a key.
pub fn set(parts: &[&str], value: &str) -> Result<()> {
    let p = path(parts)?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(format!("open {p}"), e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| Error::io(format!("write {value:?} to {p}"), e))
}

/// Write `value` unless the key already holds it; returns whether it wrote.
pub fn ensure(parts: &[&str], value: &str) -> Result<bool> {
    if get(parts)? == value {
        return Ok(false);
    }
    set(parts, value)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path(&["net", "ipv4", "conf", "eth0.100", "proxy_arp"]).unwrap(),
            "/proc/sys/net/ipv4/conf/eth0.100/proxy_arp"
        );
        assert!(path(&["net", "../etc"]).is_err());
        assert!(path(&["net", ""]).is_err());
        assert!(path(&["net", ".."]).is_err());
    }
}
