//! CNI spec versions this project speaks.

use std::fmt;

use super::error::{code, CniError};

/// A supported CNI spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.3.0
    V0_3_0,
    /// 0.3.1
    V0_3_1,
    /// 0.4.0: CHECK, prevResult on DEL.
    V0_4_0,
    /// 1.0.0: no `version` on IPs.
    V1_0_0,
    /// 1.1.0: GC, STATUS.
    V1_1_0,
}

/// Every supported version, oldest first.
pub const SUPPORTED: [Version; 5] = [
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

impl Version {
    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Parse a version string; anything not in [`SUPPORTED`] is error 1.
    pub fn parse(s: &str) -> Result<Version, CniError> {
        SUPPORTED
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                CniError::new(
                    code::INCOMPATIBLE_VERSION,
                    format!("unsupported CNI version {s:?}"),
                    format!("supported versions: {}", supported_list()),
                )
            })
    }

    /// Results of this version carry `"version"` on each IP (0.3.x, 0.4.0).
    pub fn ip_has_version(self) -> bool {
        self < Version::V1_0_0
    }

    /// CHECK exists from 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// GC and STATUS exist from 1.1.0.
    pub fn has_gc_status(self) -> bool {
        self >= Version::V1_1_0
    }
}

fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to VERSION: `{"cniVersion": <asked or newest>, "supportedVersions": [...]}`.
pub fn version_answer(asked: Option<&str>) -> serde_json::Value {
    let v = asked
        .filter(|s| !s.is_empty())
        .unwrap_or(Version::V1_1_0.as_str());
    serde_json::json!({
        "cniVersion": v,
        "supportedVersions": SUPPORTED.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_all_and_reject_others() {
        for v in SUPPORTED {
            assert_eq!(Version::parse(v.as_str()).unwrap(), v);
        }
        for bad in ["0.2.0", "0.1.0", "1.2.0", "", "1.0", "x"] {
            assert_eq!(Version::parse(bad).unwrap_err().code, 1, "{bad}");
        }
        assert!(Version::V0_3_1.ip_has_version());
        assert!(Version::V0_4_0.ip_has_version());
        assert!(!Version::V1_0_0.ip_has_version());
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V1_1_0.has_gc_status());
        assert!(!Version::V1_0_0.has_gc_status());
    }

    #[test]
    fn version_answer_lists_all() {
        let a = version_answer(Some("0.4.0"));
        assert_eq!(a["cniVersion"], "0.4.0");
        assert_eq!(a["supportedVersions"].as_array().unwrap().len(), 5);
        assert_eq!(version_answer(None)["cniVersion"], "1.1.0");
    }
}
