//! The CNI error object and the spec's codes.

use std::fmt;

/// Error codes of the CNI spec (0-99 are reserved by it).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Invalid network namespace (libcni `ErrInvalidNetNS`).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, existing containers may lose connectivity.
    pub const NOT_AVAILABLE_LIMITED: u32 = 51;
    /// Internal error (libcni `ErrInternal`).
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: what a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// Spec code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation (may be empty).
    pub details: String,
}

impl CniError {
    /// A new error.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Invalid network configuration (7).
    pub fn config(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_CONFIG, msg, "")
    }

    /// Invalid environment (4).
    pub fn env(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_ENV, msg, "")
    }

    /// Undecodable input (6).
    pub fn decode(msg: impl Into<String>) -> CniError {
        CniError::new(code::DECODE, msg, "")
    }

    /// Internal error (999).
    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(code::INTERNAL, msg, "")
    }

    /// Try again later (11).
    pub fn try_again(msg: impl Into<String>) -> CniError {
        CniError::new(code::TRY_AGAIN, msg, "")
    }

    /// The error object as printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if let (false, Some(o)) = (self.details.is_empty(), v.as_object_mut()) {
            o.insert("details".into(), self.details.clone().into());
        }
        v
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{} (code {})", self.msg, self.code)
        } else {
            write!(f, "{}: {} (code {})", self.msg, self.details, self.code)
        }
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let e = CniError::new(7, "bad", "");
        assert_eq!(
            e.to_json("1.0.0"),
            serde_json::json!({"cniVersion": "1.0.0", "code": 7, "msg": "bad"})
        );
        let e = CniError::new(11, "busy", "lock held");
        assert_eq!(e.to_json("0.4.0")["details"], "lock held");
        assert_eq!(e.to_string(), "busy: lock held (code 11)");
    }
}
