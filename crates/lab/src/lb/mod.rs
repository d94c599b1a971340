//! The Azure Standard Load Balancer of the lab, as cloud-provider-azure
//! sets one up for AKS (`../shared/reference/kubernetes-services.md` §5):
//!
//! - a **frontend IP** per Service of type LoadBalancer: from the lab's
//!   public range ([`alloc`]), or the node subnet with
//!   `service.beta.kubernetes.io/azure-load-balancer-internal: "true"`, or
//!   `spec.loadBalancerIP`; written to the Service's
//!   `status.loadBalancer.ingress` (the agents program it from there) and
//!   given back when the Service goes;
//! - a **load-balancing rule** per Service port, floating IP on: the packet
//!   reaches a node NIC of the backend pool with the frontend IP still its
//!   destination ([`nft`], [`routing`]);
//! - a **health probe** per rule: `externalTrafficPolicy: Local` → HTTP GET
//!   of the `healthCheckNodePort` `/healthz` (the agent answers 200 only
//!   with a local ready endpoint); `Cluster` → TCP connect to the port's
//!   NodePort; UDP under `Cluster` → none (every member takes traffic).
//!   Interval 5 s, down after 2 consecutive failures, up after one success
//!   ([`prober`]);
//! - `spec.loadBalancerSourceRanges`: only those sources reach the rule.
//!
//! What is computed here is pure: [`plan`] turns the store's Services and
//! the lab's nodes into [`Frontend`]s; the controller ([`controller`], a
//! thread of the lab's fabric controller process) probes, keeps
//! [`LbStatus`] in `lb.json` of the lab directory and programs the fabric.

pub mod alloc;
pub mod check;
pub mod controller;
pub mod nft;
pub mod prober;
pub mod routing;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use aksnet_core::k8s::{K8sState, Kind, Object, Service};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::probe::Protocol;
use crate::state::{LabDir, LabState};

/// `service.beta.kubernetes.io/azure-load-balancer-internal`.
pub const INTERNAL_ANNOTATION: &str = "service.beta.kubernetes.io/azure-load-balancer-internal";
/// Azure's probe defaults as cloud-provider-azure sets them.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
pub const PROBE_THRESHOLD: u32 = 2;
/// How long one probe may take (below the interval).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Where Azure's health probes come from (the `AzureLoadBalancer` tag).
pub const PROBE_SOURCE: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

/// A health probe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// `Tcp` or `Http`.
    pub protocol: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_path: Option<String>,
    pub interval_seconds: u64,
    pub probe_threshold: u32,
}

impl ProbeSpec {
    fn tcp(port: u16) -> Self {
        Self {
            protocol: "Tcp".into(),
            port,
            request_path: None,
            interval_seconds: PROBE_INTERVAL.as_secs(),
            probe_threshold: PROBE_THRESHOLD,
        }
    }

    fn http(port: u16) -> Self {
        Self {
            protocol: "Http".into(),
            request_path: Some("/healthz".into()),
            ..Self::tcp(port)
        }
    }

    /// `tcp:30080`, `http:31000/healthz`.
    pub fn label(&self) -> String {
        format!(
            "{}:{}{}",
            self.protocol.to_lowercase(),
            self.port,
            self.request_path.as_deref().unwrap_or("")
        )
    }
}

/// One load-balancing rule: frontend port = backend port = the Service
/// port (floating IP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbRule {
    /// `NS-NAME-PROTO-PORT`, as cloud-provider-azure names rules (without
    /// its hash prefix).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// None: no probe (UDP under `Cluster`): every member takes traffic.
    pub probe: Option<ProbeSpec>,
    pub pool: Vec<Member>,
}

impl LbRule {
    /// The members that take new flows now.
    pub fn healthy(&self) -> Vec<&Member> {
        self.pool
            .iter()
            .filter(|m| self.probe.is_none() || m.probe.up)
            .collect()
    }
}

/// A backend pool member (a node NIC) and what its probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: String,
    pub ip: Ipv4Addr,
    /// The node's index (its fabric port `n<index>`, its mark).
    pub index: u32,
    #[serde(default)]
    pub probe: ProbeState,
}

/// One member's probe state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeState {
    /// Takes new flows (a first success, not yet `threshold` failures).
    pub up: bool,
    pub consecutive_failures: u32,
    /// What the last probe saw (`200`, `503`, `connected`, `refused`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// Unix milliseconds of the last probe and of the last up/down change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_ms: Option<u64>,
}

impl ProbeState {
    /// Counts one probe result as Azure does: up at the first success,
    /// down after `threshold` consecutive failures. Returns whether `up`
    /// changed.
    pub fn record(&mut self, ok: bool, result: String, threshold: u32, now_ms: u64) -> bool {
        let before = self.up;
        if ok {
            self.consecutive_failures = 0;
            self.up = true;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            if self.consecutive_failures >= threshold.max(1) {
                self.up = false;
            }
        }
        self.last_result = Some(result);
        self.last_probe_ms = Some(now_ms);
        if self.up != before {
            self.changed_ms = Some(now_ms);
        }
        self.up != before
    }

    /// `up`, `down`, or `unprobed` (never probed yet).
    pub fn as_str(&self) -> &'static str {
        match (self.up, self.last_probe_ms) {
            (true, _) => "up",
            (false, None) => "unprobed",
            (false, Some(_)) => "down",
        }
    }
}

/// One frontend IP configuration and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frontend {
    /// `NAMESPACE/NAME` of the Service.
    pub service: String,
    pub ip: Ipv4Addr,
    /// From the node subnet, reachable inside the VNet only.
    pub internal: bool,
    /// `Cluster` or `Local`.
    pub external_traffic_policy: String,
    /// `spec.loadBalancerSourceRanges` (empty: any source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ranges: Vec<Ipv4Net>,
    pub rules: Vec<LbRule>,
}

/// What the load balancer holds: `lb.json` in the lab directory, written
/// by the controller, read by `lab status`, `lab diagram` and the fabric's
/// nftables rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbStatus {
    pub frontends: Vec<Frontend>,
    /// Services of type LoadBalancer without a frontend, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Pending>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub service: String,
    pub reason: String,
}

impl LbStatus {
    pub fn path(dir: &LabDir) -> std::path::PathBuf {
        dir.path.join("lb.json")
    }

    /// The last status written (none yet: empty).
    pub fn load(dir: &LabDir) -> Result<Self> {
        let p = Self::path(dir);
        match std::fs::read(&p) {
            Ok(t) => {
                serde_json::from_slice(&t).map_err(|source| LabError::State { path: p, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(LabError::io(&p, e)),
        }
    }

    /// Writes it atomically.
    pub fn save(&self, dir: &LabDir) -> Result<()> {
        let p = Self::path(dir);
        let tmp = dir.path.join("lb.json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|source| LabError::State {
            path: p.clone(),
            source,
        })?;
        std::fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| LabError::io(&p, e))
    }

    pub fn frontend(&self, service: &str) -> Option<&Frontend> {
        self.frontends.iter().find(|f| f.service == service)
    }
}

/// Whether the Service asks for an internal load balancer.
pub fn is_internal(svc: &Service) -> bool {
    svc.metadata
        .annotations
        .get(INTERNAL_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `NAMESPACE/NAME`.
pub fn service_id(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name
    )
}

/// The Services the load balancer serves (type LoadBalancer, with a
/// ClusterIP, no `loadBalancerClass` of another controller).
pub fn lb_services(k8s: &K8sState) -> Vec<&Service> {
    k8s.of_kind(Kind::Service, None)
        .filter_map(Object::as_service)
        .filter(|s| {
            s.service_type() == aksnet_core::k8s::service::ServiceType::LoadBalancer
                && s.spec.load_balancer_class.is_none()
        })
        .collect()
}

/// The frontends of the Services whose frontend IP is decided (`ips`,
/// by [`alloc::assign`]), their rules and pool members, each member's
/// probe state carried over from `previous` when its probe is the same.
pub fn plan(
    state: &LabState,
    k8s: &K8sState,
    ips: &BTreeMap<String, Ipv4Addr>,
    previous: &LbStatus,
) -> Vec<Frontend> {
    let mut out = vec![];
    for svc in lb_services(k8s) {
        let id = service_id(svc);
        let Some(ip) = ips.get(&id) else { continue };
        let local = svc.external_local();
        let hc = svc
            .spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let mut rules = vec![];
        for p in &svc.spec.ports {
            let (Some(proto), Ok(port)) = (
                Protocol::from_k8s(p.protocol.as_deref()),
                u16::try_from(p.port),
            ) else {
                continue;
            };
            let node_port = p
                .node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0);
            let probe = if local {
                hc.map(ProbeSpec::http)
            } else if proto == Protocol::Tcp {
                node_port.map(ProbeSpec::tcp)
            } else {
                None
            };
            let name = format!(
                "{}-{}-{}-{}",
                svc.metadata.namespace.as_deref().unwrap_or("default"),
                svc.metadata.name,
                proto.as_str().to_uppercase(),
                port
            );
            let old_rule = previous
                .frontend(&id)
                .and_then(|f| f.rules.iter().find(|r| r.name == name))
                .filter(|r| r.probe == probe);
            let pool = state
                .nodes
                .iter()
                .map(|n| Member {
                    node: n.name.clone(),
                    ip: n.ip,
                    index: n.index,
                    probe: old_rule
                        .and_then(|r| r.pool.iter().find(|m| m.node == n.name && m.ip == n.ip))
                        .map(|m| m.probe.clone())
                        .unwrap_or_default(),
                })
                .collect();
            rules.push(LbRule {
                name,
                protocol: proto,
                port,
                probe,
                pool,
            });
        }
        out.push(Frontend {
            service: id,
            ip: *ip,
            internal: is_internal(svc),
            external_traffic_policy: if local { "Local" } else { "Cluster" }.into(),
            source_ranges: svc
                .spec
                .load_balancer_source_ranges
                .iter()
                .filter_map(|r| r.trim().parse::<Ipv4Net>().ok().map(|n| n.trunc()))
                .collect(),
            rules,
        });
    }
    out
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aksnet_core::k8s::store::Stored;
    use serde_json::json;

    pub fn k8s(objs: &[serde_json::Value]) -> K8sState {
        let mut st = K8sState::default();
        for v in objs {
            let o = Object::from_value(Kind::Service, v.clone()).unwrap();
            st.objects.insert(
                o.id(),
                Stored {
                    value: o,
                    mod_revision: 1,
                },
            );
        }
        st
    }

    pub fn lb_svc(name: &str, etp: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.10", "externalTrafficPolicy": etp,
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                          {"port": 53, "protocol": "UDP", "nodePort": 30053}]}});
        if etp == "Local" {
            v["spec"]["healthCheckNodePort"] = json!(31000);
        }
        if let Some(o) = extra.as_object() {
            for (k, x) in o {
                if k == "annotations" {
                    v["metadata"]["annotations"] = x.clone();
                } else {
                    v["spec"][k] = x.clone();
                }
            }
        }
        v
    }

    #[test]
    fn probes_follow_the_traffic_policy_as_cloud_provider_azure_sets_them() {
        let st = crate::state::tests::sample_state("kubenet", None, 2, 1);
        let k = k8s(&[
            lb_svc("c", "Cluster", json!({})),
            lb_svc("l", "Local", json!({})),
        ]);
        let ips = BTreeMap::from([
            ("shop/c".to_string(), "203.0.113.150".parse().unwrap()),
            ("shop/l".to_string(), "203.0.113.151".parse().unwrap()),
        ]);
        let f = plan(&st, &k, &ips, &LbStatus::default());
        assert_eq!(f.len(), 2);
        let c = &f[0];
        assert_eq!(c.rules[0].name, "shop-c-TCP-80");
        assert_eq!(c.rules[0].probe.as_ref().unwrap().label(), "tcp:30080");
        assert_eq!(c.rules[1].probe, None, "UDP under Cluster: no probe");
        assert_eq!(c.rules[1].healthy().len(), 2, "no probe: every member");
        assert_eq!(
            c.rules[0].healthy().len(),
            0,
            "a TCP rule waits for its probe"
        );
        let l = &f[1];
        assert_eq!(l.external_traffic_policy, "Local");
        for r in &l.rules {
            assert_eq!(r.probe.as_ref().unwrap().label(), "http:31000/healthz");
        }
        assert_eq!(l.rules[0].pool.len(), 2);
    }

    #[test]
    fn a_member_goes_up_at_once_and_down_after_two_failures() {
        let mut p = ProbeState::default();
        assert_eq!(p.as_str(), "unprobed");
        assert!(p.record(true, "200".into(), 2, 1));
        assert_eq!(p.as_str(), "up");
        assert!(
            !p.record(false, "503".into(), 2, 2),
            "one failure is not enough"
        );
        assert!(p.up);
        assert!(p.record(false, "503".into(), 2, 3));
        assert_eq!(p.as_str(), "down");
        assert_eq!(p.changed_ms, Some(3));
        assert!(p.record(true, "200".into(), 2, 4));
    }
}
