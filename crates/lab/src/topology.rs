//! Names and addresses: which namespace, port and address each part of a lab
//! gets. Pure; no I/O.
//!
//! Every namespace of lab `NAME` is `aksnet-lab-NAME-<role>` with a role of
//! `fabric`, `vm`, `internet`, `apiserver`, `node-<i>`, `pod-<i>-<j>` or `bench-<x>`, so
//! `lab down` can find all of them (and only them) by name even when no state
//! file was written.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use aksnet_core::cidr;
use aksnet_core::spec::ClusterNetwork;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// Every lab namespace starts with this.
pub const NS_PREFIX: &str = "aksnet-lab-";
/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// The TCP port every probe server listens on.
pub const PROBE_PORT: u16 = 7777;
/// The documentation range that plays the internet.
pub const INTERNET_NET: &str = "203.0.113.0/24";
/// The VM subnet when the VNet has room for it (DESIGN §3).
pub const DEFAULT_VM_SUBNET: &str = "10.225.0.0/24";
/// Fabric port names: `n<i>` for node i's NIC, and these two.
pub const VM_PORT: &str = "vm";
pub const INTERNET_PORT: &str = "inet";
/// The fabric port of the API server's namespace (the control plane's
/// public endpoint, outside the VNet).
pub const APISERVER_PORT: &str = "api";
/// The port the API server listens on (kube-apiserver's 443).
pub const APISERVER_PORT_NUMBER: u16 = 443;

/// Checks a lab name: short, lower-case, no separators that would make one
/// lab's namespaces look like another's.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(LabError::BadName(name.to_string()))
    }
}

pub fn node_name(index: u32) -> String {
    format!("node-{index}")
}

pub fn pod_name(node_index: u32, pod_index: u32) -> String {
    format!("pod-{node_index}-{pod_index}")
}

/// The fabric port of node `index` (an interface name, at most 15 bytes).
pub fn node_port(index: u32) -> String {
    format!("n{index}")
}

/// What a lab namespace is, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Fabric,
    Vm,
    Internet,
    ApiServer,
    Node(u32),
    Pod(u32, u32),
    Bench(String),
}

/// The names of one lab's namespaces.
#[derive(Debug, Clone)]
pub struct Names {
    lab: String,
}

impl Names {
    pub fn new(lab: &str) -> Self {
        Self {
            lab: lab.to_string(),
        }
    }

    pub fn lab(&self) -> &str {
        &self.lab
    }

    /// `aksnet-lab-NAME-`
    pub fn prefix(&self) -> String {
        format!("{NS_PREFIX}{}-", self.lab)
    }

    pub fn fabric(&self) -> String {
        format!("{}fabric", self.prefix())
    }

    pub fn vm(&self) -> String {
        format!("{}vm", self.prefix())
    }

    pub fn internet(&self) -> String {
        format!("{}internet", self.prefix())
    }

    /// The API server's public endpoint.
    pub fn apiserver(&self) -> String {
        format!("{}apiserver", self.prefix())
    }

    pub fn node(&self, index: u32) -> String {
        format!("{}{}", self.prefix(), node_name(index))
    }

    pub fn pod(&self, node_index: u32, pod_index: u32) -> String {
        format!("{}{}", self.prefix(), pod_name(node_index, pod_index))
    }

    pub fn bench(&self, what: &str) -> String {
        format!("{}bench-{what}", self.prefix())
    }

    /// The role of a namespace of this lab; `None` for anything else,
    /// including namespaces of a lab whose name merely starts like this one.
    pub fn role_of(&self, ns: &str) -> Option<Role> {
        let rest = ns.strip_prefix(&self.prefix())?;
        let num = |s: &str| -> Option<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        match rest {
            "fabric" => Some(Role::Fabric),
            "vm" => Some(Role::Vm),
            "internet" => Some(Role::Internet),
            "apiserver" => Some(Role::ApiServer),
            _ => {
                if let Some(i) = rest.strip_prefix("node-") {
                    return num(i).map(Role::Node);
                }
                if let Some(p) = rest.strip_prefix("pod-") {
                    let (a, b) = p.split_once('-')?;
                    return Some(Role::Pod(num(a)?, num(b)?));
                }
                if let Some(b) = rest.strip_prefix("bench-") {
                    if !b.is_empty() && b.bytes().all(|c| c.is_ascii_lowercase()) {
                        return Some(Role::Bench(b.to_string()));
                    }
                }
                None
            }
        }
    }
}

/// `/run/netns/<name>`
pub fn netns_path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

/// The fixed addresses of a lab, decided at `lab up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressing {
    /// The node subnet and its gateway (.1, held by the fabric).
    pub node_subnet: Ipv4Net,
    pub node_gateway: Ipv4Addr,
    /// The second subnet of the VNet, with no route table associated.
    pub vm_subnet: Ipv4Net,
    pub vm_gateway: Ipv4Addr,
    pub vm_ip: Ipv4Addr,
    /// The internet side of the fabric.
    pub internet_net: Ipv4Net,
    pub fabric_internet_ip: Ipv4Addr,
    pub internet_ip: Ipv4Addr,
    /// The outbound public IP every VNet address is SNAT'd to.
    pub public_ip: Ipv4Addr,
    /// The API server's public endpoint (its own namespace behind the
    /// fabric, as the control plane is outside the VNet).
    #[serde(default = "default_apiserver_ip")]
    pub apiserver_ip: Ipv4Addr,
}

/// `.200` of the internet range (labs recorded before the API server had one).
fn default_apiserver_ip() -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 200)
}

impl Addressing {
    /// Works out the VM subnet (given, or 10.225.0.0/24, or the first free
    /// /24 of the VNet) and the fixed addresses.
    pub fn plan(net: &ClusterNetwork, vm_subnet: Option<Ipv4Net>) -> Result<Self> {
        let node_subnet = net.subnet_cidr.trunc();
        let internet_net: Ipv4Net = INTERNET_NET
            .parse()
            .map_err(|_| LabError::Invalid("internet range".into()))?;
        let taken: Vec<Ipv4Net> = [
            Some(node_subnet),
            net.pod_subnet_cidr.map(|n| n.trunc()),
            net.effective_pod_cidr().map(|n| n.trunc()),
            Some(net.service_cidr.trunc()),
        ]
        .into_iter()
        .flatten()
        .collect();
        for v in net.vnet_cidrs.iter().chain(taken.iter()) {
            if cidr::overlaps(v, &internet_net) {
                return Err(LabError::Design(format!(
                    "{v} overlaps the lab's internet range {internet_net}; choose ranges outside it"
                )));
            }
        }
        let in_vnet = |s: &Ipv4Net| net.vnet_cidrs.iter().any(|v| cidr::contains_net(v, s));
        let free = |s: &Ipv4Net| !taken.iter().any(|t| cidr::overlaps(t, s));
        let vm_subnet = match vm_subnet {
            Some(s) => {
                let s = s.trunc();
                if !in_vnet(&s) {
                    return Err(LabError::Design(format!(
                        "--vm-subnet-cidr {s} is not inside the VNet ({}); choose a range inside it",
                        join(&net.vnet_cidrs)
                    )));
                }
                if !free(&s) {
                    return Err(LabError::Design(format!(
                        "--vm-subnet-cidr {s} overlaps the node subnet, pod subnet, pod CIDR or service CIDR; choose a free range of the VNet"
                    )));
                }
                if s.prefix_len() > 29 {
                    return Err(LabError::Design(format!(
                        "--vm-subnet-cidr {s} is too small; Azure subnets are /29 or larger"
                    )));
                }
                s
            }
            None => auto_vm_subnet(net, &in_vnet, &free)?,
        };
        let nth = |n: &Ipv4Net, i: u64| {
            cidr::nth_addr(n, i).ok_or_else(|| LabError::Design(format!("{n} is too small")))
        };
        Ok(Self {
            node_subnet,
            node_gateway: nth(&node_subnet, 1)?,
            vm_subnet,
            vm_gateway: nth(&vm_subnet, 1)?,
            vm_ip: nth(&vm_subnet, 4)?,
            internet_net,
            fabric_internet_ip: nth(&internet_net, 1)?,
            internet_ip: nth(&internet_net, 10)?,
            public_ip: nth(&internet_net, 100)?,
            apiserver_ip: nth(&internet_net, 200)?,
        })
    }

    /// The lowest address of the node subnet Azure would give a new NIC:
    /// not one of the 4 first or the last (Azure keeps them), not `used`.
    pub fn next_node_ip(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let size = cidr::size(&self.node_subnet);
        (4..size.saturating_sub(1))
            .filter_map(|i| cidr::nth_addr(&self.node_subnet, i))
            .find(|a| !used.contains(a))
    }
}

fn auto_vm_subnet(
    net: &ClusterNetwork,
    in_vnet: &dyn Fn(&Ipv4Net) -> bool,
    free: &dyn Fn(&Ipv4Net) -> bool,
) -> Result<Ipv4Net> {
    if let Ok(d) = DEFAULT_VM_SUBNET.parse::<Ipv4Net>() {
        if in_vnet(&d) && free(&d) {
            return Ok(d);
        }
    }
    for v in &net.vnet_cidrs {
        let v = v.trunc();
        let prefix = v.prefix_len().max(24);
        let count = cidr::subnet_count(&v, prefix).min(1 << 16);
        for i in 0..count {
            if let Some(s) = cidr::nth_subnet(&v, prefix, i) {
                if free(&s) && s.prefix_len() <= 29 {
                    return Ok(s);
                }
            }
        }
    }
    Err(LabError::Design(format!(
        "the VNet ({}) has no room for the lab's VM subnet next to the node subnet {}; give a larger --vnet-cidr or --vm-subnet-cidr",
        join(&net.vnet_cidrs),
        net.subnet_cidr
    )))
}

fn join(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::planner;
    use aksnet_core::spec::SpecInput;

    fn network(plugin: &str, extra: impl FnOnce(&mut SpecInput)) -> ClusterNetwork {
        let mut input = SpecInput {
            network_plugin: Some(aksnet_core::spec::Sourced::new(
                plugin.into(),
                "--network-plugin",
            )),
            ..Default::default()
        };
        extra(&mut input);
        planner::plan_input(&input).unwrap().network
    }

    #[test]
    fn names_and_roles() {
        validate_name("ak5-demo-1").unwrap();
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", "a.b", &"x".repeat(25)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let n = Names::new("x");
        assert_eq!(n.fabric(), "aksnet-lab-x-fabric");
        assert_eq!(n.pod(2, 3), "aksnet-lab-x-pod-2-3");
        assert_eq!(n.role_of("aksnet-lab-x-node-12"), Some(Role::Node(12)));
        assert_eq!(n.role_of("aksnet-lab-x-pod-2-3"), Some(Role::Pod(2, 3)));
        assert_eq!(n.role_of("aksnet-lab-x-vm"), Some(Role::Vm));
        assert_eq!(n.role_of("aksnet-lab-x-apiserver"), Some(Role::ApiServer));
        assert_eq!(
            n.role_of("aksnet-lab-x-bench-a"),
            Some(Role::Bench("a".into()))
        );
        // Another lab whose name starts with "x-" is never taken for this one.
        for other in [
            "aksnet-lab-x-node-1-fabric",
            "aksnet-lab-x-pod-1-node-2",
            "aksnet-lab-x-pod-1-pod-2-3",
            "aksnet-lab-x-vm-vm",
            "aksnet-lab-xy-fabric",
            "aksnet-lab-x-node-",
            "aksnet-lab-x-bench-a-fabric",
        ] {
            assert_eq!(n.role_of(other), None, "{other}");
        }
        assert_eq!(node_port(400), "n400");
    }

    #[test]
    fn default_addressing() {
        let a = Addressing::plan(&network("kubenet", |_| {}), None).unwrap();
        assert_eq!(a.node_subnet.to_string(), "10.224.0.0/16");
        assert_eq!(a.node_gateway.to_string(), "10.224.0.1");
        assert_eq!(a.vm_subnet.to_string(), "10.225.0.0/24");
        assert_eq!(a.vm_ip.to_string(), "10.225.0.4");
        assert_eq!(a.internet_ip.to_string(), "203.0.113.10");
        assert_eq!(a.public_ip.to_string(), "203.0.113.100");
        assert_eq!(a.apiserver_ip.to_string(), "203.0.113.200");
        let mut used = BTreeSet::new();
        let first = a.next_node_ip(&used).unwrap();
        assert_eq!(first.to_string(), "10.224.0.4");
        used.insert(first);
        assert_eq!(a.next_node_ip(&used).unwrap().to_string(), "10.224.0.5");
    }

    #[test]
    fn vm_subnet_found_or_refused() {
        let net = network("azure", |i| {
            i.vnet_cidrs = vec![aksnet_core::spec::Sourced::new(
                "10.10.0.0/16".into(),
                "--vnet-cidr",
            )];
            i.subnet_cidr = Some(aksnet_core::spec::Sourced::new(
                "10.10.0.0/24".into(),
                "--subnet-cidr",
            ));
        });
        let a = Addressing::plan(&net, None).unwrap();
        assert_eq!(a.vm_subnet.to_string(), "10.10.1.0/24");
        let bad = Addressing::plan(&net, Some("10.10.0.128/25".parse().unwrap()));
        assert!(bad.unwrap_err().to_string().contains("overlaps"));
        let outside = Addressing::plan(&net, Some("10.11.0.0/24".parse().unwrap()));
        assert!(outside
            .unwrap_err()
            .to_string()
            .contains("not inside the VNet"));
        let full = network("azure", |i| {
            i.subnet_cidr = Some(aksnet_core::spec::Sourced::new(
                "10.10.0.0/24".into(),
                "--subnet-cidr",
            ));
        });
        let err = Addressing::plan(&full, None).unwrap_err().to_string();
        assert!(err.contains("no room"), "{err}");
    }

    #[test]
    fn small_subnet_runs_out() {
        let net = network("kubenet", |i| {
            i.vnet_cidrs = vec![aksnet_core::spec::Sourced::new(
                "10.10.0.0/16".into(),
                "--vnet-cidr",
            )];
            i.subnet_cidr = Some(aksnet_core::spec::Sourced::new(
                "10.10.0.0/29".into(),
                "--subnet-cidr",
            ));
            i.node_count = Some(aksnet_core::spec::Sourced::new(1, "--node-count"));
        });
        let a = Addressing::plan(&net, None).unwrap();
        let mut used = BTreeSet::new();
        while let Some(ip) = a.next_node_ip(&used) {
            used.insert(ip);
        }
        // .4, .5, .6 of a /29 (.7 is the broadcast Azure keeps).
        assert_eq!(used.len(), 3);
    }
}
