//! The `aksnet-cni` configuration: the fields of plugins[0] of the conflist
//! that the node agent writes (field names are a contract with the agent).

use std::net::IpAddr;

use aksnet_core::cni::CniError;
use serde::Deserialize;
use serde_json::Value;

/// Default bridge name (kubenet's).
pub const DEFAULT_BRIDGE: &str = "cbr0";

/// How pods are attached to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// kubenet: a Linux bridge holding the gateway, one veth per pod.
    Bridge,
    /// Azure CNI (node subnet, Overlay): a routed veth per pod, no bridge.
    Transparent,
}

/// The `aksnet-cni` fields.
#[derive(Debug, Clone)]
pub struct MainConf {
    /// Attachment mode.
    pub mode: Mode,
    /// Bridge name (bridge mode).
    pub bridge: String,
    /// Put the range's gateway address on the bridge (bridge mode).
    pub is_gateway: bool,
    /// MTU of the veths (and of a bridge this plugin creates).
    pub mtu: Option<u32>,
    /// Promiscuous mode on the bridge (bridge mode).
    pub promisc_mode: bool,
    /// Hairpin mode on the bridge port of each pod (bridge mode).
    pub hairpin_mode: bool,
    /// One masquerade rule per pod (node-level SNAT is the agent's).
    pub ip_masq: bool,
    /// Addresses the pod reaches through the host with a /32 route.
    pub ips_to_route_via_host: Vec<IpAddr>,
    /// IPAM plugin type.
    pub ipam_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: Option<bool>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    promisc_mode: Option<bool>,
    #[serde(default)]
    hairpin_mode: Option<bool>,
    #[serde(default)]
    ip_masq: Option<bool>,
    #[serde(default)]
    ips_to_route_via_host: Option<Vec<IpAddr>>,
}

impl MainConf {
    /// Read the plugin's fields from the whole configuration `raw`.
    pub fn parse(raw: &Value) -> Result<MainConf, CniError> {
        let r: Raw = serde_json::from_value(raw.clone())
            .map_err(|e| CniError::config(format!("invalid aksnet-cni configuration: {e}")))?;
        let mode = match r.mode.as_deref() {
            None | Some("bridge") => Mode::Bridge,
            Some("transparent") => Mode::Transparent,
            Some(other) => {
                return Err(CniError::config(format!(
                    "mode {other:?} is not supported (use \"bridge\" or \"transparent\")"
                )))
            }
        };
        let bridge = r.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        if !aksnet_core::cni::is_valid_ifname(&bridge) {
            return Err(CniError::config(format!(
                "bridge {bridge:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)"
            )));
        }
        if let Some(m) = r.mtu {
            if !(68..=65535).contains(&m) {
                return Err(CniError::config(format!(
                    "mtu {m} is out of range (68 to 65535)"
                )));
            }
        }
        let ipam_type = raw
            .get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if ipam_type.is_empty() {
            return Err(CniError::config(
                "ipam.type is missing (e.g. \"ipam\": {\"type\": \"aksnet-ipam\", ...})",
            ));
        }
        Ok(MainConf {
            mode,
            bridge,
            is_gateway: r.is_gateway.unwrap_or(false),
            mtu: r.mtu,
            promisc_mode: r.promisc_mode.unwrap_or(false),
            hairpin_mode: r.hairpin_mode.unwrap_or(false),
            ip_masq: r.ip_masq.unwrap_or(false),
            ips_to_route_via_host: r.ips_to_route_via_host.unwrap_or_default(),
            ipam_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_conflist_fields() {
        let c = MainConf::parse(&json!({"type":"aksnet-cni","mode":"bridge","bridge":"cbr0",
            "isGateway":true,"mtu":1500,"promiscMode":true,"hairpinMode":false,"ipMasq":false,
            "ipam":{"type":"aksnet-ipam"}}))
        .unwrap();
        assert_eq!(c.mode, Mode::Bridge);
        assert!(c.is_gateway && c.promisc_mode && !c.hairpin_mode && !c.ip_masq);
        assert_eq!(c.mtu, Some(1500));
        let t = MainConf::parse(
            &json!({"mode":"transparent","ipsToRouteViaHost":["169.254.20.10"],
            "ipam":{"type":"host-local"}}),
        )
        .unwrap();
        assert_eq!(t.mode, Mode::Transparent);
        assert_eq!(t.ips_to_route_via_host.len(), 1);
        assert_eq!(t.bridge, "cbr0");
        assert_eq!(t.ipam_type, "host-local");
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            json!({"mode":"tunnel","ipam":{"type":"x"}}),
            json!({"bridge":"a/b","ipam":{"type":"x"}}),
            json!({"mtu":10,"ipam":{"type":"x"}}),
            json!({"mtu":"big","ipam":{"type":"x"}}),
            json!({"ipsToRouteViaHost":["nope"],"ipam":{"type":"x"}}),
            json!({"mode":"bridge"}),
        ] {
            assert_eq!(MainConf::parse(&bad).unwrap_err().code, 7, "{bad}");
        }
    }
}
