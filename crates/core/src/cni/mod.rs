//! The Container Network Interface, as data: versions, configuration,
//! results and their conversion between spec versions, the error object,
//! `CNI_ARGS`, and the host-local compatible IP allocator logic.
//!
//! Nothing here does I/O; the plugins in `aksnet-cni-plugins` read the
//! environment, stdin, the disk and the kernel.

pub mod args;
pub mod config;
pub mod error;
pub mod ipam;
pub mod ipmath;
pub mod result;
pub mod version;

pub use args::CniArgs;
pub use config::{Attachment, NetConf};
pub use error::{code, CniError};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::Version;

/// True for a valid network name or container ID: an alphanumeric first
/// character, then `[A-Za-z0-9_.-]`.
pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// True for a valid Linux interface name: 1 to 15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace.
pub fn is_valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_ifnames() {
        assert!(is_valid_id("abc-1.2_3"));
        assert!(is_valid_id("0a"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("-a"));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a b"));
        assert!(is_valid_ifname("eth0"));
        assert!(is_valid_ifname("a23456789012345"));
        assert!(!is_valid_ifname("a234567890123456"));
        assert!(!is_valid_ifname(".."));
        assert!(!is_valid_ifname("a/b"));
        assert!(!is_valid_ifname("a:b"));
        assert!(!is_valid_ifname(""));
    }
}
