//! The ADD result, and its conversion to each spec version.
//!
//! Internally a result has the 1.1 shape. [`CniResult::to_json`] renders it
//! in the configuration's version: 0.3.0, 0.3.1 and 0.4.0 carry
//! `"version": "4"|"6"` on each IP and drop the fields added in 1.1
//! (interface `mtu`/`socketPath`/`pciID`, route `mtu`/`advmss`/`priority`/
//! `table`/`scope`). [`CniResult::parse`] reads any of those shapes (a
//! `prevResult` from an earlier plugin of the chain).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{code, CniError};
use super::version::Version;

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Netns path; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Socket path (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI id (1.1).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An IP configuration in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: IpNet,
    /// Default gateway of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result (also the shape of IPAM `routes` in configs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; the IP's gateway if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// MTU (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Priority (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Table (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    /// A route to `dst` via `gw`.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A result (1.1 shape).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// IP configurations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

const V1_1_ROUTE_FIELDS: [&str; 5] = ["mtu", "advmss", "priority", "table", "scope"];
const V1_1_IFACE_FIELDS: [&str; 3] = ["mtu", "socketPath", "pciID"];

impl CniResult {
    /// Render in `version`, with `cniVersion` set.
    pub fn to_json(&self, version: Version) -> Value {
        let mut v =
            serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()));
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        if version.ip_has_version() {
            if let Some(ips) = obj.get_mut("ips").and_then(Value::as_array_mut) {
                for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                    if let Some(o) = ip.as_object_mut() {
                        let fam = if cfg.address.addr().is_ipv4() {
                            "4"
                        } else {
                            "6"
                        };
                        o.insert("version".into(), fam.into());
                    }
                }
            }
            if let Some(rs) = obj.get_mut("routes").and_then(Value::as_array_mut) {
                for r in rs.iter_mut().filter_map(Value::as_object_mut) {
                    for f in V1_1_ROUTE_FIELDS {
                        r.remove(f);
                    }
                }
            }
            if let Some(is) = obj.get_mut("interfaces").and_then(Value::as_array_mut) {
                for i in is.iter_mut().filter_map(Value::as_object_mut) {
                    for f in V1_1_IFACE_FIELDS {
                        i.remove(f);
                    }
                }
            }
        }
        obj.insert("cniVersion".into(), version.as_str().into());
        v
    }

    /// Read a result of any supported version (e.g. a `prevResult`).
    /// Results of 0.2.0 and older (`ip4`/`ip6`) are error 1.
    pub fn parse(v: &Value) -> Result<CniResult, CniError> {
        if v.get("ip4").is_some() || v.get("ip6").is_some() {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                "prevResult has the 0.2.0 layout (ip4/ip6)",
                "aksnet reads results of versions 0.3.0 to 1.1.0",
            ));
        }
        serde_json::from_value(v.clone())
            .map_err(|e| CniError::decode(format!("cannot read prevResult: {e}")))
    }

    /// The abbreviated form an IPAM plugin returns: no interfaces, no
    /// interface index on IPs.
    pub fn ipam_only(&self) -> CniResult {
        CniResult {
            interfaces: Vec::new(),
            ips: self
                .ips
                .iter()
                .map(|i| IpConfig {
                    interface: None,
                    ..i.clone()
                })
                .collect(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: Some("/run/netns/x".into()),
                ..Default::default()
            }],
            ips: vec![
                IpConfig {
                    address: "10.244.0.5/24".parse().unwrap(),
                    gateway: Some("10.244.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![Route {
                mtu: Some(1400),
                ..Route::new("0.0.0.0/0".parse().unwrap(), None)
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn renders_1_1_unchanged() {
        let v = sample().to_json(Version::V1_1_0);
        assert_eq!(v["cniVersion"], "1.1.0");
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["interfaces"][0]["mtu"], 1500);
        assert_eq!(v["routes"][0]["mtu"], 1400);
        assert!(v.get("dns").is_none());
    }

    #[test]
    fn renders_pre_1_0_with_ip_version() {
        for ver in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
            let v = sample().to_json(ver);
            assert_eq!(v["cniVersion"], ver.as_str());
            assert_eq!(v["ips"][0]["version"], "4");
            assert_eq!(v["ips"][1]["version"], "6");
            assert_eq!(v["ips"][0]["address"], "10.244.0.5/24");
            assert!(v["interfaces"][0].get("mtu").is_none());
            assert!(v["routes"][0].get("mtu").is_none());
        }
    }

    #[test]
    fn round_trips_every_version() {
        for ver in crate::cni::version::SUPPORTED {
            let back = CniResult::parse(&sample().to_json(ver)).unwrap();
            assert_eq!(back.ips, sample().ips);
            assert_eq!(back.interfaces[0].name, "eth0");
        }
    }

    #[test]
    fn rejects_old_and_bad() {
        assert_eq!(
            CniResult::parse(&json!({"ip4": {"ip": "10.0.0.2/24"}}))
                .unwrap_err()
                .code,
            1
        );
        assert_eq!(
            CniResult::parse(&json!({"ips": [{"address": "nope"}]}))
                .unwrap_err()
                .code,
            6
        );
        assert_eq!(CniResult::parse(&json!({})).unwrap(), CniResult::default());
    }

    #[test]
    fn ipam_form_has_no_interfaces() {
        let r = sample().ipam_only();
        assert!(r.interfaces.is_empty());
        assert!(r.ips.iter().all(|i| i.interface.is_none()));
    }
}
