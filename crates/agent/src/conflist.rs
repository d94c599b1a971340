//! The node's CNI network configuration, `10-aksnet.conflist`: `aksnet-cni`
//! in the model's mode with `aksnet-ipam` holding the node's ranges, and
//! `aksnet-portmap` chained. Rendered as data, written atomically (temp file
//! and rename) and only when its content changes, so a runtime reading it
//! never sees half a file and an unchanged node never touches it.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aksnet_core::cluster::IpRange;
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;
use serde_json::{json, Value};

use crate::error::AgentError;

pub const FILE_NAME: &str = "10-aksnet.conflist";
/// The CNI network name; host-local-format allocations live in
/// `<dataDir>/<NETWORK_NAME>/`.
pub const NETWORK_NAME: &str = "aksnet";
/// Highest CNI version every runtime we target (podman 4.3's CNI backend
/// included) accepts.
pub const CNI_VERSION: &str = "1.0.0";
pub const BRIDGE: &str = "cbr0";

/// Where the node's pods take their addresses from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodRanges {
    /// Kubenet/overlay: the node's block (the gateway is its .1).
    Block(Ipv4Net),
    /// Azure CNI: addresses of `subnet` the node holds.
    Pool {
        subnet: Ipv4Net,
        ranges: Vec<IpRange>,
    },
}

#[derive(Debug, Clone)]
pub struct ConflistParams {
    pub plugin: NetworkPlugin,
    pub ranges: PodRanges,
    pub mtu: u32,
    pub ipam_data_dir: PathBuf,
}

/// The conflist as JSON.
pub fn render(p: &ConflistParams) -> Value {
    let range_set: Vec<Value> = match &p.ranges {
        PodRanges::Block(block) => {
            let gw = gateway(block);
            vec![json!({ "subnet": block.trunc().to_string(), "gateway": gw.to_string() })]
        }
        PodRanges::Pool { subnet, ranges } => ranges
            .iter()
            .map(|r| {
                json!({
                    "subnet": subnet.trunc().to_string(),
                    "rangeStart": r.start.to_string(),
                    "rangeEnd": r.end.to_string(),
                })
            })
            .collect(),
    };
    let ipam = json!({
        "type": "aksnet-ipam",
        "ranges": [range_set],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": p.ipam_data_dir.display().to_string(),
    });
    let main = match p.plugin.cni_mode() {
        "bridge" => json!({
            "type": "aksnet-cni",
            "mode": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "mtu": p.mtu,
            // kubelet's `hairpin-veth` mode: a pod reaching itself through a
            // host port or a Service comes back out of its own bridge port.
            // Measured: with br_netfilter loaded, a promiscuous bridge alone
            // does not deliver it.
            "promiscMode": false,
            "hairpinMode": true,
            "ipMasq": false,
            "ipam": ipam,
        }),
        _ => json!({
            "type": "aksnet-cni",
            "mode": "transparent",
            "mtu": p.mtu,
            "ipMasq": false,
            "ipam": ipam,
        }),
    };
    json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            main,
            { "type": "aksnet-portmap", "capabilities": { "portMappings": true }, "snat": true },
        ],
    })
}

/// The block's gateway: its first host address (`.1` of a /24).
pub fn gateway(block: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(block.network()).saturating_add(1))
}

/// The block a conflist written earlier gave the node, if any: where a
/// restarted agent looks first (as flannel reads its subnet file).
pub fn previous_block(dir: &Path) -> Option<Ipv4Net> {
    let text = std::fs::read_to_string(dir.join(FILE_NAME)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let subnet = v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"].as_str()?;
    let net: Ipv4Net = subnet.parse().ok()?;
    (net.prefix_len() == 24 && v["plugins"][0]["ipam"]["ranges"][0][0]["rangeStart"].is_null())
        .then_some(net)
}

/// Writes `value` to `dir/FILE_NAME` unless the file already holds exactly
/// that text. Returns whether it wrote.
pub fn write_if_changed(dir: &Path, value: &Value) -> Result<bool, AgentError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| AgentError::Encode {
        key: dir.join(FILE_NAME).display().to_string(),
        source,
    })?;
    text.push('\n');
    let path = dir.join(FILE_NAME);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let io = |source| AgentError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    // A dot file without the .conflist suffix: runtimes ignore it.
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn kubenet_is_bridge_with_gateway() {
        let v = render(&ConflistParams {
            plugin: NetworkPlugin::Kubenet,
            ranges: PodRanges::Block("10.244.3.0/24".parse().unwrap()),
            mtu: 1500,
            ipam_data_dir: "/var/lib/cni/networks".into(),
        });
        assert_eq!(v["name"], "aksnet");
        let p = &v["plugins"][0];
        assert_eq!(p["type"], "aksnet-cni");
        assert_eq!(p["mode"], "bridge");
        assert_eq!(p["bridge"], "cbr0");
        assert_eq!(p["isGateway"], true);
        assert_eq!(p["ipam"]["type"], "aksnet-ipam");
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(p["ipam"]["ranges"][0][0]["gateway"], "10.244.3.1");
        assert_eq!(p["ipam"]["dataDir"], "/var/lib/cni/networks");
        assert_eq!(v["plugins"][1]["type"], "aksnet-portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn azure_pool_is_transparent_with_ranges() {
        let v = render(&ConflistParams {
            plugin: NetworkPlugin::Azure,
            ranges: PodRanges::Pool {
                subnet: "10.225.0.0/16".parse().unwrap(),
                ranges: vec![
                    IpRange {
                        start: a("10.225.0.4"),
                        end: a("10.225.0.19"),
                    },
                    IpRange {
                        start: a("10.225.0.40"),
                        end: a("10.225.0.55"),
                    },
                ],
            },
            mtu: 1500,
            ipam_data_dir: "/d".into(),
        });
        let p = &v["plugins"][0];
        assert_eq!(p["mode"], "transparent");
        assert!(p.get("bridge").is_none());
        let set = p["ipam"]["ranges"][0].as_array().unwrap();
        assert_eq!(set.len(), 2, "one range set, one IP per pod");
        assert_eq!(set[1]["rangeStart"], "10.225.0.40");
        assert_eq!(set[1]["subnet"], "10.225.0.0/16");
    }

    #[test]
    fn writes_only_on_change_and_finds_previous_block() {
        let dir = tempfile::tempdir().unwrap();
        let params = ConflistParams {
            plugin: NetworkPlugin::Overlay,
            ranges: PodRanges::Block("10.244.7.0/24".parse().unwrap()),
            mtu: 1500,
            ipam_data_dir: "/d".into(),
        };
        let v = render(&params);
        assert!(write_if_changed(dir.path(), &v).unwrap());
        let mtime = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        assert!(!write_if_changed(dir.path(), &v).unwrap());
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .modified()
                .unwrap(),
            mtime
        );
        assert_eq!(
            previous_block(dir.path()),
            Some("10.244.7.0/24".parse().unwrap())
        );
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "no temp file left");
        std::fs::write(dir.path().join(FILE_NAME), "{garbage").unwrap();
        assert_eq!(previous_block(dir.path()), None);
        assert!(write_if_changed(dir.path(), &v).unwrap());
    }
}
