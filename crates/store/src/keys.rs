//! Key helpers shared by both backends.
//!
//! The cluster's key layout (which object lives under which key) is defined
//! with the cluster objects in `aksnet_core::cluster`; `docs/store.md`
//! describes it. This module only holds what the store itself needs: key
//! checks, prefix ranges, and the `ADDR-LEN` form of a CIDR in a key.

use ipnet::IpNet;

use crate::error::{Result, StoreError};

/// Longest key accepted (etcd's default request limit is far larger; this
/// only catches mistakes).
pub const MAX_KEY_LEN: usize = 4096;

/// Root of every aksnet key.
pub const ROOT: &str = "/aksnet/";

/// Writes a CIDR as one key segment: `10.244.3.0/24` → `10.244.3.0-24`
/// (no `/` inside a segment, as flannel writes its subnet keys).
pub fn cidr_segment(net: &IpNet) -> String {
    format!("{}-{}", net.addr(), net.prefix_len())
}

/// Reads a key segment written by [`cidr_segment`].
pub fn parse_cidr_segment(segment: &str) -> Option<IpNet> {
    let (addr, len) = segment.rsplit_once('-')?;
    format!("{addr}/{len}").parse().ok()
}

/// Rejects keys no backend can hold.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: "keys must not be empty".into(),
        });
    }
    if key.len() > MAX_KEY_LEN {
        let shown: String = key.chars().take(64).collect();
        return Err(StoreError::InvalidKey {
            key: format!("{shown}..."),
            reason: format!("keys are at most {MAX_KEY_LEN} bytes"),
        });
    }
    Ok(())
}

/// The first key after every key that starts with `prefix` (etcd's
/// `range_end` for a prefix); `None` when there is no such key (the prefix
/// is empty or all `0xff`), meaning "to the end".
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn cidr_segments_round_trip() {
        for s in ["10.244.3.0/24", "10.224.1.16/28", "fd00::/64"] {
            let net: IpNet = s.parse().unwrap();
            assert_eq!(parse_cidr_segment(&cidr_segment(&net)), Some(net));
        }
        assert_eq!(
            cidr_segment(&"10.244.3.0/24".parse().unwrap()),
            "10.244.3.0-24"
        );
        assert_eq!(parse_cidr_segment("nonsense"), None);
        assert_eq!(parse_cidr_segment("10.0.0.0-99"), None);
    }

    #[test]
    fn key_checks() {
        assert!(check_key("").is_err());
        assert!(check_key("/a").is_ok());
        assert!(check_key(&"é".repeat(MAX_KEY_LEN)).is_err());
    }
}
