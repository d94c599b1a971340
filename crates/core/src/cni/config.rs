//! The network configuration a plugin receives on stdin (the fields every
//! plugin shares; each plugin reads its own fields from the same JSON).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CniError;
use super::result::{CniResult, Dns};
use super::version::Version;

/// An attachment listed for GC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// The shared part of a plugin configuration.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetConf {
    /// Spec version of the configuration (and of the result).
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Plugin type (binary name).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// IPAM section, if any.
    #[serde(default)]
    pub ipam: Option<Value>,
    /// DNS settings.
    #[serde(default)]
    pub dns: Option<Dns>,
    /// Runtime-supplied capability arguments.
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: Option<Value>,
    /// Extra arguments (`args.cni.ips`, ...).
    #[serde(default)]
    pub args: Option<Value>,
    /// The previous plugin's result in a chain.
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments", default)]
    legacy_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// Decode a configuration from stdin bytes: undecodable JSON is error 6,
    /// an unsupported `cniVersion` error 1, a field of the wrong type or a
    /// bad name error 7.
    pub fn from_slice(bytes: &[u8]) -> Result<(NetConf, Value, Version), CniError> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode(format!("network configuration is not JSON: {e}")))?;
        if !raw.is_object() {
            return Err(CniError::decode(
                "network configuration must be a JSON object",
            ));
        }
        let ver = match raw.get("cniVersion") {
            Some(Value::String(s)) => Version::parse(s)?,
            Some(_) => {
                return Err(CniError::config(
                    "cniVersion must be a string such as \"1.0.0\"",
                ))
            }
            None => {
                return Err(CniError::config(
                    "network configuration has no cniVersion (e.g. \"cniVersion\": \"1.0.0\")",
                ))
            }
        };
        let conf: NetConf = serde_json::from_value(raw.clone())
            .map_err(|e| CniError::config(format!("invalid network configuration: {e}")))?;
        if !conf.name.is_empty() && !super::is_valid_id(&conf.name) {
            return Err(CniError::config(format!(
                "network name {:?} is invalid: it must start with a letter or digit and contain only [A-Za-z0-9_.-]",
                conf.name
            )));
        }
        Ok((conf, raw, ver))
    }

    /// The valid attachments of a GC request (`cni.dev/valid-attachments`,
    /// or the legacy `cni.dev/attachments`); `None` when neither is given.
    pub fn gc_attachments(&self) -> Option<&[Attachment]> {
        self.valid_attachments
            .as_deref()
            .or(self.legacy_attachments.as_deref())
    }

    /// The parsed `prevResult`, if any.
    pub fn prev(&self) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::parse(v).map(Some),
        }
    }

    /// `runtimeConfig.<key>`, if present.
    pub fn runtime(&self, key: &str) -> Option<&Value> {
        self.runtime_config.as_ref()?.get(key)
    }

    /// `args.cni.<key>`, if present.
    pub fn args_cni(&self, key: &str) -> Option<&Value> {
        self.args.as_ref()?.get("cni")?.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_and_classifies_errors() {
        let ok = br#"{"cniVersion":"0.4.0","name":"n1","type":"aksnet-cni","ipam":{"type":"aksnet-ipam"}}"#;
        let (c, raw, v) = NetConf::from_slice(ok).unwrap();
        assert_eq!(v, Version::V0_4_0);
        assert_eq!(c.plugin_type, "aksnet-cni");
        assert_eq!(raw["ipam"]["type"], "aksnet-ipam");
        assert_eq!(NetConf::from_slice(b"{").unwrap_err().code, 6);
        assert_eq!(NetConf::from_slice(b"[]").unwrap_err().code, 6);
        assert_eq!(
            NetConf::from_slice(br#"{"cniVersion":"0.2.0"}"#)
                .unwrap_err()
                .code,
            1
        );
        assert_eq!(NetConf::from_slice(br#"{"name":"x"}"#).unwrap_err().code, 7);
        assert_eq!(
            NetConf::from_slice(br#"{"cniVersion":"1.0.0","name":"-bad"}"#)
                .unwrap_err()
                .code,
            7
        );
        assert_eq!(
            NetConf::from_slice(br#"{"cniVersion":"1.0.0","name":"n","ipam":7,"dns":3}"#)
                .unwrap_err()
                .code,
            7
        );
    }

    #[test]
    fn gc_attachments_accept_both_keys() {
        let (c, _, _) = NetConf::from_slice(
            br#"{"cniVersion":"1.1.0","name":"n","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.gc_attachments().unwrap()[0].container_id, "a");
        let (c, _, _) = NetConf::from_slice(
            br#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[],"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert!(c.gc_attachments().unwrap().is_empty());
    }

    #[test]
    fn runtime_and_args() {
        let (c, _, _) = NetConf::from_slice(
            br#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"ips":["10.0.0.9/24"]},"args":{"cni":{"ips":["10.0.0.8"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.runtime("ips").unwrap(), &json!(["10.0.0.9/24"]));
        assert_eq!(c.args_cni("ips").unwrap(), &json!(["10.0.0.8"]));
        assert!(c.prev().unwrap().is_none());
    }
}
