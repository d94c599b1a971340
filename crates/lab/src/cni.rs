//! A minimal container runtime's CNI side (as libcni does it): reads the
//! conflist a node's agent wrote and runs its plugin chain for ADD (in
//! order, each given the previous result) and DEL (in reverse), executing
//! each plugin inside the node namespace, which is the plugins' "host".
//! The plugins themselves (`aksnet-cni`, `aksnet-ipam`, `aksnet-portmap`)
//! do all the networking.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::error::{LabError, Result};
use crate::netns;

/// The conflist `aksnet agent` writes for its node.
pub const CONFLIST: &str = "10-aksnet.conflist";

/// The CNI plugins a node's conflist chains (needed once pods start).
pub fn check_plugins(dir: &std::path::Path) -> Result<()> {
    for bin in ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        let p = dir.join(bin);
        if !p.exists() {
            return Err(LabError::Invalid(format!(
                "{} is missing: build the CNI plugins (`cargo build --workspace`) or point --cni-bin-dir (AKSNET_CNI_BIN_DIR) at them",
                p.display()
            )));
        }
    }
    Ok(())
}

pub struct Runtime {
    /// Where plugin binaries are (`CNI_PATH`).
    pub bin_dir: PathBuf,
    /// The node namespace the plugins run in.
    pub host_netns: PathBuf,
}

/// One attachment: a container (pod sandbox) and its interface.
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `K8S_POD_NAME` and friends, as the kubelet passes them.
    pub pod_name: &'a str,
}

impl Runtime {
    pub fn load_conflist(path: &Path) -> Result<Value> {
        let text = std::fs::read(path).map_err(|e| LabError::io(path, e))?;
        let v: Value = serde_json::from_slice(&text).map_err(|e| {
            LabError::Invalid(format!("{}: not a CNI conflist: {e}", path.display()))
        })?;
        if !v.get("plugins").is_some_and(Value::is_array) {
            return Err(LabError::Invalid(format!(
                "{}: a conflist needs a \"plugins\" list",
                path.display()
            )));
        }
        Ok(v)
    }

    /// ADD through the whole chain; returns the final result.
    pub fn add(&self, conflist: &Value, a: &Attachment<'_>) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for plugin in plugins(conflist) {
            let conf = net_conf(conflist, &plugin, prev.as_ref());
            let out = self.exec("ADD", &conf, a)?;
            prev = Some(out);
        }
        prev.ok_or_else(|| LabError::Invalid("the conflist has no plugins".into()))
    }

    /// DEL through the chain in reverse, with the cached ADD result as
    /// `prevResult`; every plugin is run even when one fails, and the first
    /// error is returned.
    pub fn del(&self, conflist: &Value, a: &Attachment<'_>, cached: Option<&Value>) -> Result<()> {
        let mut first_err = None;
        for plugin in plugins(conflist).iter().rev() {
            let conf = net_conf(conflist, plugin, cached);
            if let Err(e) = self.exec("DEL", &conf, a) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn exec(&self, command: &str, conf: &Value, a: &Attachment<'_>) -> Result<Value> {
        let ty = conf.get("type").and_then(Value::as_str).unwrap_or("");
        let cni_err = |msg: String| LabError::Cni {
            command: command.into(),
            container: a.container_id.into(),
            plugin: ty.into(),
            msg,
        };
        if ty.is_empty() || ty.contains('/') {
            return Err(cni_err(format!("plugin type {ty:?} is not a binary name")));
        }
        let bin = self.bin_dir.join(ty);
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", a.container_id)
            .env("CNI_NETNS", a.netns)
            .env("CNI_IFNAME", a.ifname)
            .env("CNI_PATH", &self.bin_dir)
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
                    a.pod_name, a.container_id
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        netns::command_in(&mut cmd, &self.host_netns)?;
        let mut child = cmd
            .spawn()
            .map_err(|e| cni_err(format!("cannot run {}: {e}", bin.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec(conf)
                .map_err(|e| cni_err(format!("encoding its configuration: {e}")))?;
            stdin
                .write_all(&body)
                .map_err(|e| cni_err(format!("writing its stdin: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| cni_err(format!("waiting for it: {e}")))?;
        let stdout: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            let msg = match &stdout {
                Some(v) => format!(
                    "code {}: {} {}",
                    v.get("code").cloned().unwrap_or(Value::Null),
                    v.get("msg").and_then(Value::as_str).unwrap_or(""),
                    v.get("details").and_then(Value::as_str).unwrap_or("")
                ),
                None => format!(
                    "{}; stderr: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            };
            return Err(cni_err(msg.trim().to_string()));
        }
        Ok(stdout.unwrap_or(Value::Null))
    }
}

fn plugins(conflist: &Value) -> Vec<Value> {
    conflist
        .get("plugins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A plugin's network configuration: its own object plus the list's `name`
/// and `cniVersion`, and `prevResult` after the first plugin.
pub fn net_conf(conflist: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    if let Some(obj) = conf.as_object_mut() {
        for k in ["name", "cniVersion"] {
            if let Some(v) = conflist.get(k) {
                obj.insert(k.to_string(), v.clone());
            }
        }
        if let Some(p) = prev {
            if !p.is_null() {
                obj.insert("prevResult".into(), p.clone());
            }
        }
        // Capabilities the runtime supplies: no port mappings in the lab.
        if obj
            .get("capabilities")
            .and_then(|c| c.get("portMappings"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            obj.insert("runtimeConfig".into(), json!({ "portMappings": [] }));
        }
    }
    conf
}

/// The first IPv4 address of a CNI result (any version's `ips[].address`).
pub fn result_ipv4(result: &Value) -> Option<Ipv4Addr> {
    result
        .get("ips")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.get("address")?.as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_plugin_configs_like_libcni() {
        let list = json!({
            "cniVersion": "1.0.0",
            "name": "aksnet",
            "plugins": [
                {"type": "aksnet-cni", "mode": "bridge", "ipam": {"type": "aksnet-ipam"}},
                {"type": "aksnet-portmap", "capabilities": {"portMappings": true}}
            ]
        });
        let ps = plugins(&list);
        let first = net_conf(&list, &ps[0], None);
        assert_eq!(first["name"], "aksnet");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("prevResult").is_none());
        let res = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.0.2/24", "gateway": "10.244.0.1"}]});
        let second = net_conf(&list, &ps[1], Some(&res));
        assert_eq!(second["prevResult"], res);
        assert_eq!(second["runtimeConfig"]["portMappings"], json!([]));
        assert_eq!(result_ipv4(&res), Some("10.244.0.2".parse().unwrap()));
        assert_eq!(result_ipv4(&json!({"ips": []})), None);
        assert_eq!(result_ipv4(&json!(null)), None);
    }

    #[test]
    fn refuses_odd_plugin_types_and_bad_lists() {
        let rt = Runtime {
            bin_dir: "/nonexistent".into(),
            host_netns: "/nonexistent".into(),
        };
        let list = json!({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../sh"}]});
        let a = Attachment {
            container_id: "c",
            netns: Path::new("/x"),
            ifname: "eth0",
            pod_name: "p",
        };
        let e = rt.add(&list, &a).unwrap_err().to_string();
        assert!(e.contains("not a binary name"), "{e}");
        let dir = std::env::temp_dir().join(format!("aksnet-lab-cni-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.conflist");
        std::fs::write(&p, "{\"name\": \"x\"}").unwrap();
        assert!(Runtime::load_conflist(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
