//! The Services controller: every Service of the store in the node's
//! `ip aksnet-services` table, as kube-proxy's nftables mode programs them
//! ([`crate::services`]). Desired: the Services and their endpoints (the
//! EndpointSlices derived from ready Pods, or the user's own), read from
//! the store's Kubernetes objects in the same pass; applied as the diff
//! from what it applied last (an [`aksnet_nft::Owner`]), so one changed
//! Service rewrites its own chains and map elements only.

use std::time::{Duration, Instant};

use aksnet_core::k8s::endpoints::{backends, service_slices};
use aksnet_core::k8s::{K8sState, Kind, Object};
use aksnet_core::spec::NetworkPlugin;
use aksnet_nft::{Owner, Synced};

use super::{Controller, Pass, Programmed};
use crate::agent::Agent;
use crate::error::AgentError;
use crate::services::{self, PortInput, ServicesInput};
use crate::stale_udp::UdpFrontends;

/// How often the table is read back from the kernel (someone may have
/// flushed the ruleset); between reads the owner trusts what it applied. A
/// listing equal to the rendering is adopted without a write (tested
/// against the kernel: `tests/services_kernel.rs`).
const RECHECK: Duration = Duration::from_secs(30);

pub struct Services {
    owner: Owner,
    checked: Option<Instant>,
    /// The UDP frontends at the last conntrack sweep (`None` before the
    /// first: a started agent sweeps once, cleaning what changed while it
    /// was down).
    swept: Option<UdpFrontends>,
    /// The input of the table last synced: an equal input is not rendered
    /// and diffed again (at 10,000 Services that is hundreds of ms a pass).
    rendered: Option<ServicesInput>,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            owner: Owner::new(services::table_id()),
            checked: None,
            swept: None,
            rendered: None,
        }
    }
}

impl Services {
    /// Deletes the UDP conntrack entries still translated to endpoints the
    /// table no longer has, when the UDP frontends changed since the last
    /// sweep. After the table is written: a flow deleted earlier could be
    /// re-created by a packet still seeing the old rules.
    fn sweep_udp(&mut self, agent: &mut Agent, now: UdpFrontends) {
        if self.swept.as_ref() == Some(&now) {
            return;
        }
        let select = match &self.swept {
            Some(before) => now.with_gone(before),
            None => now.clone(),
        };
        if select.is_empty() {
            self.swept = Some(now);
            return;
        }
        match agent.kernel.flush_conntrack(&|f| select.is_stale(f)) {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(
                        deleted = n,
                        "stale UDP conntrack entries of Services deleted"
                    );
                }
                self.swept = Some(now);
            }
            // Tried again next pass: `swept` is left as it was.
            Err(e) => tracing::warn!(error = %e, "cannot delete stale UDP conntrack entries"),
        }
    }
}

/// The input of the Services table for this node.
pub fn input(agent: &Agent, k8s: &K8sState) -> ServicesInput {
    let net = &agent.net;
    let cluster_cidrs = match net.network_plugin {
        NetworkPlugin::Kubenet | NetworkPlugin::Overlay => {
            net.effective_pod_cidr().into_iter().collect()
        }
        NetworkPlugin::Azure => vec![net.pod_subnet_cidr.unwrap_or(net.subnet_cidr).trunc()],
    };
    let mut out = ServicesInput {
        node: agent.cfg.node.clone(),
        node_ips: vec![agent.cfg.node_ip],
        cluster_cidrs,
        services: vec![],
    };
    for svc in k8s
        .of_kind(Kind::Service, None)
        .filter_map(Object::as_service)
    {
        if svc.cluster_ipv4().is_none() {
            continue; // headless and ExternalName: DNS only
        }
        let slices = service_slices(k8s, svc);
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let ports = backends(svc, &slices)
            .into_iter()
            .map(|(port, backends)| PortInput {
                namespace: ns.clone(),
                name: svc.metadata.name.clone(),
                port,
                backends,
            })
            .collect();
        out.services.push((svc.clone(), ports));
    }
    out
}

impl Controller for Services {
    fn name(&self) -> &'static str {
        "services"
    }

    fn reconcile(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError> {
        let k8s = pass.k8s(agent)?;
        let input = input(agent, &k8s);
        // The healthCheckNodePort servers follow every pass (their answer
        // depends on local endpoints only; setting the same set is free).
        if let Some(h) = agent.health.as_mut() {
            h.set(&crate::healthcheck::desired(&input));
        }
        let first = self.checked.is_none();
        let recheck = self.checked.is_none_or(|at| at.elapsed() >= RECHECK);
        let objects = services::service_ports(&input);
        if !recheck && self.rendered.as_ref() == Some(&input) {
            self.sweep_udp(agent, UdpFrontends::of(&input));
            return Ok(Programmed {
                objects,
                changed: 0,
            });
        }
        let want = services::desired(&input);
        self.rendered = None;
        if recheck {
            self.owner.forget();
        }
        let driver: &mut dyn aksnet_nft::Driver = &mut *agent.kernel;
        let outcome = self.owner.sync(driver, &want)?;
        if recheck {
            self.checked = Some(Instant::now());
        }
        self.sweep_udp(agent, UdpFrontends::of(&input));
        self.rendered = Some(input);
        let changed = match outcome {
            Synced::Applied(commands) => {
                tracing::info!(services = objects, commands, "Services table programmed");
                commands
            }
            // A restarted agent found its table as it would write it: the
            // connections translated by it were never touched.
            Synced::Adopted if first => {
                tracing::info!(services = objects, "Services table adopted");
                0
            }
            _ => 0,
        };
        Ok(Programmed { objects, changed })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, network};
    use aksnet_core::cluster::RouteMode;
    use aksnet_linux::conntrack::{Flow, Tuple, PROTO_UDP};
    use std::net::Ipv4Addr;

    fn put(f: &super::super::testing::Fixture, key: &str, v: serde_json::Value) {
        f.kv.put(key, &serde_json::to_vec(&v).unwrap(), None)
            .unwrap();
    }

    fn slice(f: &super::super::testing::Fixture, ips: &[&str]) {
        put(
            f,
            "/aksnet/k8s/endpointslices/default/dns-1",
            serde_json::json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "dns-1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "dns"}},
                "addressType": "IPv4",
                "ports": [{"port": 5353, "protocol": "UDP"}],
                "endpoints": ips.iter().map(|ip| serde_json::json!(
                    {"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
            }),
        );
    }

    fn flow(ep: [u8; 4], sport: u16) -> Flow {
        let client = Ipv4Addr::new(10, 244, 0, 9);
        Flow {
            orig: Tuple {
                src: client,
                dst: Ipv4Addr::new(10, 0, 0, 53),
                proto: PROTO_UDP,
                sport,
                dport: 53,
            },
            reply: Tuple {
                src: ep.into(),
                dst: client,
                proto: PROTO_UDP,
                sport: 5353,
                dport: sport,
            },
            zone: 0,
            id: 0,
        }
    }

    #[test]
    fn the_controller_deletes_the_udp_flows_of_an_endpoint_that_went() {
        let mut f = fixture(
            &network("kubenet", None),
            "node-1",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        put(
            &f,
            "/aksnet/k8s/services/default/dns",
            serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "dns", "namespace": "default"},
                "spec": {"clusterIP": "10.0.0.53",
                         "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]},
            }),
        );
        slice(&f, &["10.244.1.5", "10.244.1.6"]);
        let to_5 = flow([10, 244, 1, 5], 40000);
        let to_6 = flow([10, 244, 1, 6], 40001);
        f.kernel.state().conntrack.flows = vec![to_5, to_6];
        // The first pass sweeps once: both endpoints exist, nothing goes.
        f.agent.reconcile().unwrap();
        assert!(f.kernel.state().conntrack.deleted.is_empty());
        // Nothing changed: no sweep at all.
        f.agent.reconcile().unwrap();
        assert!(f.kernel.state().conntrack.deleted.is_empty());
        // .5 goes: its flow is deleted, the one to .6 stays.
        slice(&f, &["10.244.1.6"]);
        f.agent.reconcile().unwrap();
        assert_eq!(f.kernel.state().conntrack.deleted, vec![to_5]);
        assert_eq!(f.kernel.state().conntrack.flows, vec![to_6]);
        // The Service goes: the flows it translated go with it.
        f.kv.delete("/aksnet/k8s/services/default/dns").unwrap();
        f.agent.reconcile().unwrap();
        assert!(f.kernel.state().conntrack.flows.is_empty());
    }
}
