//! The upstream scenarios (`upstream/mod.rs`) on the rule set alone: two
//! nodes, each with its Services table and its policy table in a Fake;
//! every flow of every phase is traced through the source node
//! (prerouting DNAT, forward: egress, and ingress when the destination is
//! local) and, when the backend lives elsewhere, through the destination
//! node, to the pod IP and to the pod's Service IP. The same truth tables
//! are checked on real labs by `crates/cli/tests/lab_policy.rs`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod upstream;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use aksnet_agent::policy::{self, PodInfo, PolicyInput};
use aksnet_agent::services::{self, PortInput, ServicesInput};
use aksnet_core::k8s::documents::{self, Parsed};
use aksnet_core::k8s::endpoints::Backend;
use aksnet_core::k8s::meta::Labels;
use aksnet_core::k8s::netpol::NetworkPolicy;
use aksnet_core::k8s::{Object, Service};
use aksnet_nft::{diff, trace, Fake, Final, Hook, Host, Packet};
use upstream::{Ctx, Flow};

const NODES: [&str; 2] = ["node-1", "node-2"];
const HOOKS: &[Hook] = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];

fn node_ip(n: &str) -> Ipv4Addr {
    if n == NODES[0] {
        "10.224.0.4".parse().unwrap()
    } else {
        "10.224.0.5".parse().unwrap()
    }
}

/// The cluster as the agents would read it from the store.
#[derive(Clone)]
struct Cluster {
    pods: BTreeMap<String, PodInfo>,
    namespaces: BTreeMap<String, Labels>,
    policies: BTreeMap<(String, String), NetworkPolicy>,
    services: BTreeMap<String, Ipv4Addr>,
}

fn objects(yaml: &str) -> Vec<Object> {
    documents::parse("t", yaml)
        .unwrap()
        .into_iter()
        .map(|d| match documents::read(d).unwrap() {
            Parsed::Object { object, .. } => *object,
            Parsed::Ignored(i) => panic!("ignored {}", i.display()),
        })
        .collect()
}

impl Cluster {
    fn new() -> Cluster {
        let mut c = Cluster {
            pods: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            policies: BTreeMap::new(),
            services: BTreeMap::new(),
        };
        c.apply(&upstream::model_yaml(&NODES));
        for (n, ns) in upstream::NAMESPACES.iter().enumerate() {
            for (i, pod) in upstream::PODS.iter().enumerate() {
                let r = format!("{ns}/{pod}");
                let node = c.pods[&r].node.clone().unwrap();
                let block = if node == NODES[0] { 0 } else { 1 };
                c.pods.get_mut(&r).unwrap().ip = format!("10.244.{block}.{}", 10 + n * 3 + i)
                    .parse()
                    .unwrap();
                c.services
                    .insert(r, format!("10.0.{n}.{}", 10 + i).parse().unwrap());
            }
        }
        c
    }

    fn apply(&mut self, yaml: &str) {
        for o in objects(yaml) {
            match o {
                Object::Namespace(mut n) => {
                    n.set_defaults();
                    self.namespaces
                        .insert(n.metadata.name.clone(), n.metadata.labels);
                }
                Object::Pod(mut p) => {
                    let r = format!(
                        "{}/{}",
                        p.metadata.namespace.clone().unwrap(),
                        p.metadata.name
                    );
                    let ip = self.pods.get(&r).map(|x| x.ip.to_string());
                    p.status = Some(
                        serde_json::from_value(
                            serde_json::json!({"podIP": ip.unwrap_or("10.244.9.9".into())}),
                        )
                        .unwrap(),
                    );
                    self.pods.insert(r, PodInfo::from_pod(&p).unwrap());
                }
                Object::NetworkPolicy(mut n) => {
                    n.set_defaults();
                    self.policies.insert(
                        (
                            n.metadata.namespace.clone().unwrap(),
                            n.metadata.name.clone(),
                        ),
                        n,
                    );
                }
                Object::Service(_) => {}
                o => panic!("unexpected {}", o.id()),
            }
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            ips: self.pods.iter().map(|(k, p)| (k.clone(), p.ip)).collect(),
            nodes: self
                .pods
                .iter()
                .map(|(k, p)| (k.clone(), p.node.clone().unwrap()))
                .collect(),
        }
    }

    /// Each node's ruleset: its Services table and its policy table.
    fn nodes(&self) -> BTreeMap<&'static str, Fake> {
        let mut out = BTreeMap::new();
        for node in NODES {
            let input = PolicyInput {
                node: node.into(),
                node_ips: vec![node_ip(node)],
                pods: self.pods.values().cloned().collect(),
                namespaces: self.namespaces.clone(),
                policies: self.policies.values().cloned().collect(),
            };
            let mut f = Fake::new();
            f.apply_batch(&diff::create(&policy::desired(&input).table))
                .unwrap();
            f.apply_batch(&diff::create(&services::desired(
                &self.services_input(node),
            )))
            .unwrap();
            out.insert(node, f);
        }
        out
    }

    fn services_input(&self, node: &str) -> ServicesInput {
        let mut services = vec![];
        for (r, ip) in &self.services {
            let (ns, pod) = r.split_once('/').unwrap();
            let mut s: Service = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("s-{pod}"), "namespace": ns},
                "spec": {"clusterIP": ip.to_string(), "ports": upstream::PORTS.iter().map(|(p, proto)|
                    serde_json::json!({"name": format!("p{p}{proto}"), "port": p, "targetPort": p, "protocol": proto.to_uppercase()})).collect::<Vec<_>>()}
            }))
            .unwrap();
            s.set_defaults();
            let p = &self.pods[r];
            let ports = s
                .spec
                .ports
                .iter()
                .map(|sp| PortInput {
                    namespace: ns.into(),
                    name: s.metadata.name.clone(),
                    port: sp.clone(),
                    backends: vec![Backend {
                        ip: p.ip,
                        port: u16::try_from(sp.port).unwrap(),
                        node: p.node.clone(),
                        ready: true,
                        serving: true,
                        terminating: false,
                    }],
                })
                .collect();
            services.push((s, ports));
        }
        ServicesInput {
            node: node.into(),
            node_ips: vec![node_ip(node)],
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            services,
        }
    }

    fn node_of(&self, ip: IpAddr) -> Option<&str> {
        self.pods
            .values()
            .find(|p| IpAddr::V4(p.ip) == ip)
            .and_then(|p| p.node.as_deref())
    }

    /// Whether a first packet from `f.from` to `to` gets through.
    fn reaches(&self, nodes: &BTreeMap<&str, Fake>, f: &Flow, to: Ipv4Addr) -> bool {
        let src = &self.pods[&f.from];
        let sip = src.ip.to_string();
        let mut p = if f.proto == "tcp" {
            Packet::tcp(&sip, 40000, &to.to_string(), f.port)
        } else {
            Packet::udp(&sip, 40000, &to.to_string(), f.port)
        };
        let mut node = src.node.clone().unwrap();
        // At most two nodes: the source's, then the backend's.
        for _ in 0..2 {
            let host = Host {
                local: vec![IpAddr::V4(node_ip(&node))],
                masquerade_to: Some(IpAddr::V4(node_ip(&node))),
            };
            let t = trace(&nodes[node.as_str()].ruleset(), &host, &p, HOOKS);
            if t.verdict != Final::Accept {
                return false;
            }
            let next = self.node_of(t.after.daddr).unwrap().to_string();
            if next == node {
                return true;
            }
            p = t.after.clone();
            p.ct_status.clear();
            node = next;
        }
        true
    }
}

#[test]
fn the_upstream_scenarios_hold_on_the_rule_set_through_pod_and_service_ips() {
    let base = Cluster::new();
    let scenarios = upstream::all(&base.ctx());
    let mut checked = 0;
    let mut failures = vec![];
    for s in &scenarios {
        let mut c = base.clone();
        for (i, ph) in s.phases.iter().enumerate() {
            if !ph.apply.is_empty() {
                c.apply(&ph.apply);
            }
            for (ns, name) in &ph.delete {
                c.policies.remove(&(ns.to_string(), name.to_string()));
            }
            let nodes = c.nodes();
            for via in ["pod", "service"] {
                let mut got = BTreeMap::new();
                for f in upstream::flows() {
                    let to = if via == "pod" {
                        c.pods[&f.to].ip
                    } else {
                        c.services[&f.to]
                    };
                    got.insert(f.clone(), c.reaches(&nodes, &f, to));
                    checked += 1;
                }
                for (port, proto) in upstream::PORTS {
                    let wrong = got
                        .iter()
                        .filter(|(f, g)| {
                            f.port == port && f.proto == proto && **g != (ph.expect)(f)
                        })
                        .count();
                    if wrong > 0 {
                        failures.push(format!(
                            "{} phase {i} via {via}: {wrong} wrong\n{}",
                            s.name,
                            upstream::table(&got, &*ph.expect, port, proto)
                        ));
                    }
                }
            }
        }
    }
    println!("{} scenarios, {checked} flows traced", scenarios.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(scenarios.len() >= 20);
}
