//! The portmap configuration: `snat` and `runtimeConfig.portMappings`,
//! validated, and the container addresses taken from `prevResult`.

use std::net::IpAddr;

use aksnet_core::cni::{CniError, CniResult};
use serde_json::Value;

/// A transport protocol a mapping forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The name nft uses as payload protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    fn parse(s: &str) -> Option<Proto> {
        // Runtimes differ in case (Kubernetes says "TCP", podman "tcp").
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// One entry of `runtimeConfig.portMappings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// Protocol.
    pub proto: Proto,
    /// Host address the mapping is limited to; every local address if
    /// `None` (also for `""`, `0.0.0.0` and `::`, which runtimes send to
    /// mean "any").
    pub host_ip: Option<IpAddr>,
}

/// The plugin's own configuration fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapConf {
    /// Masquerade hairpin and localhost-originated connections so that the
    /// replies come back through the host (the reference plugin's `snat`).
    pub snat: bool,
    /// The mappings, in the order given, duplicates removed.
    pub mappings: Vec<PortMapping>,
}

fn port(entry: &Value, i: usize, key: &str) -> Result<u16, CniError> {
    let v = entry.get(key).ok_or_else(|| {
        CniError::config(format!(
            "runtimeConfig.portMappings[{i}] has no {key} (a port number 1-65535)"
        ))
    })?;
    v.as_u64()
        .filter(|p| (1..=65535).contains(p))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| {
            CniError::config(format!(
                "runtimeConfig.portMappings[{i}].{key} is {v}, expected a port number 1-65535"
            ))
        })
}

fn mapping(entry: &Value, i: usize) -> Result<PortMapping, CniError> {
    if !entry.is_object() {
        return Err(CniError::config(format!(
            "runtimeConfig.portMappings[{i}] is {entry}, expected an object {{hostPort, containerPort, protocol, hostIP}}"
        )));
    }
    let host_port = port(entry, i, "hostPort")?;
    let container_port = port(entry, i, "containerPort")?;
    let proto = match entry.get("protocol") {
        None | Some(Value::Null) => Proto::Tcp,
        Some(Value::String(s)) if s.is_empty() => Proto::Tcp,
        Some(Value::String(s)) => Proto::parse(s).ok_or_else(|| {
            CniError::config(format!(
                "runtimeConfig.portMappings[{i}].protocol is {s:?}, expected \"tcp\", \"udp\" or \"sctp\""
            ))
        })?,
        Some(v) => {
            return Err(CniError::config(format!(
                "runtimeConfig.portMappings[{i}].protocol is {v}, expected \"tcp\", \"udp\" or \"sctp\""
            )))
        }
    };
    let host_ip = match entry.get("hostIP") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => {
            let ip: IpAddr = s.parse().map_err(|_| {
                CniError::config(format!(
                    "runtimeConfig.portMappings[{i}].hostIP is {s:?}, expected an IP address"
                ))
            })?;
            Some(ip).filter(|ip| !ip.is_unspecified())
        }
        Some(v) => {
            return Err(CniError::config(format!(
                "runtimeConfig.portMappings[{i}].hostIP is {v}, expected an IP address string"
            )))
        }
    };
    Ok(PortMapping {
        host_port,
        container_port,
        proto,
        host_ip,
    })
}

impl PortmapConf {
    /// Read the configuration from the whole plugin configuration `raw`.
    /// A missing `runtimeConfig.portMappings` means no mappings.
    pub fn parse(raw: &Value) -> Result<PortmapConf, CniError> {
        let snat = match raw.get("snat") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(CniError::config(format!(
                    "snat is {v}, expected true or false"
                )))
            }
        };
        let list = raw
            .get("runtimeConfig")
            .and_then(|rc| rc.get("portMappings"));
        let mut mappings: Vec<PortMapping> = Vec::new();
        match list {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for (i, e) in entries.iter().enumerate() {
                    let m = mapping(e, i)?;
                    if !mappings.contains(&m) {
                        mappings.push(m);
                    }
                }
            }
            Some(v) => {
                return Err(CniError::config(format!(
                    "runtimeConfig.portMappings is {v}, expected a list of {{hostPort, containerPort, protocol, hostIP}}"
                )))
            }
        }
        Ok(PortmapConf { snat, mappings })
    }
}

/// The container's addresses from `prevResult`: those on the sandbox
/// interface named `ifname`. When no IP names its interface (an
/// abbreviated result), every IP is taken.
pub fn container_ips(prev: &CniResult, ifname: &str) -> Vec<IpAddr> {
    let is_ours = |idx: usize| {
        prev.interfaces.get(idx).is_some_and(|i| {
            i.name == ifname && i.sandbox.as_deref().is_some_and(|s| !s.is_empty())
        })
    };
    let with_index = prev.ips.iter().any(|ip| ip.interface.is_some());
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in &prev.ips {
        let take = match ip.interface {
            Some(idx) => is_ours(idx),
            None => !with_index,
        };
        if take && !out.contains(&ip.address.addr()) {
            out.push(ip.address.addr());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Result<PortmapConf, CniError> {
        PortmapConf::parse(&v)
    }

    #[test]
    fn defaults_and_mappings() {
        let c = conf(json!({"cniVersion": "1.0.0"})).unwrap();
        assert!(c.snat);
        assert!(c.mappings.is_empty());
        let c = conf(json!({"snat": false, "runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 53, "containerPort": 5353, "protocol": "UDP", "hostIP": "192.0.2.1"},
            {"hostPort": 9, "containerPort": 9, "hostIP": ""},
            {"hostPort": 10, "containerPort": 10, "protocol": "sctp", "hostIP": "0.0.0.0"}
        ]}}))
        .unwrap();
        assert!(!c.snat);
        assert_eq!(c.mappings.len(), 4);
        assert_eq!(c.mappings[1].proto, Proto::Udp);
        assert_eq!(c.mappings[1].host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(c.mappings[2].proto, Proto::Tcp);
        assert_eq!(c.mappings[2].host_ip, None);
        assert_eq!(c.mappings[3].host_ip, None);
    }

    #[test]
    fn bad_input_is_error_7() {
        for bad in [
            json!({"snat": "yes"}),
            json!({"runtimeConfig": {"portMappings": {}}}),
            json!({"runtimeConfig": {"portMappings": [7]}}),
            json!({"runtimeConfig": {"portMappings": [{"containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 65536, "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": -1, "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1.5, "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": 6}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "hostIP": "host"}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "hostIP": 1}]}}),
        ] {
            let e = conf(bad.clone()).unwrap_err();
            assert_eq!(e.code, 7, "{bad}: {e}");
        }
    }

    #[test]
    fn container_ips_follow_the_sandbox_interface() {
        let prev = CniResult::parse(&json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cbr0", "mac": "00:00:00:00:00:01"},
                {"name": "veth1"},
                {"name": "eth0", "sandbox": "/run/netns/p"},
                {"name": "eth1", "sandbox": "/run/netns/p"}
            ],
            "ips": [
                {"address": "10.244.0.5/24", "gateway": "10.244.0.1", "interface": 2},
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.9.0.5/24", "interface": 3},
                {"address": "10.244.0.1/24", "interface": 0}
            ]
        }))
        .unwrap();
        let ips = container_ips(&prev, "eth0");
        assert_eq!(
            ips,
            vec![
                "10.244.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        let abbreviated = CniResult::parse(&json!({"ips": [{"address": "10.1.0.2/16"}]})).unwrap();
        assert_eq!(
            container_ips(&abbreviated, "eth0"),
            vec!["10.1.0.2".parse::<IpAddr>().unwrap()]
        );
        assert!(container_ips(&prev, "eth9").is_empty());
    }
}
