//! One packet, hop by hop: the source pod or node, kube-proxy's DNAT,
//! egress policy, SNAT, the fabric, the destination node.

use super::fabric_hop::nsg_link_local;
use super::*;

impl<'a> World<'a> {
    /// Follows one packet (towards one backend when a Service has them).
    pub(super) fn follow(
        &self,
        mut p: Packet,
        backend: Option<(&endpoints::Backend, usize)>,
    ) -> Path {
        let mut path = Path {
            backend: backend.map(|(b, _)| BackendRef {
                ip: b.ip.to_string(),
                port: b.port,
                pod: self.pod_by_ip(b.ip).map(PodState::id),
                node: b.node.clone(),
            }),
            steps: vec![],
            allowed: false,
            delivered_to: None,
            source_ip_seen: None,
            policy: vec![],
            nsg: vec![],
        };
        // A node's own addresses: its IP, and on kubenet its bridge's.
        let policy = PolicyView::new(self.k8s).with_node_addresses(
            self.state
                .nodes
                .iter()
                .map(|n| {
                    let mut a = vec![n.ip];
                    a.extend(self.bridge_address(&n.name));
                    (n.name.clone(), a)
                })
                .collect(),
        );
        let src_pod = self.pod_by_ip(p.saddr);
        let original_src = p.saddr;
        let step = |path: &mut Path, at: &str, kind, ok, detail: String| {
            path.steps.push(Step {
                at: at.to_string(),
                kind,
                detail,
                ok,
            });
        };
        let plugin = self.plugin();
        if let Some(pod) = src_pod.filter(|pd| pd.ip == Some(p.daddr)) {
            // Its own address: never leaves the pod (lo), no policy applies.
            step(
                &mut path,
                &format!("pod {}", pod.id()),
                StepKind::Route,
                true,
                format!("{}: the pod's own address, delivered on lo", p.daddr),
            );
            return self.deliver_pod(path, pod, &p, &policy);
        }
        let mut loc = if let Some(pod) = src_pod {
            let via = match plugin {
                NetworkPlugin::Kubenet => match self.snap.block_of(&pod.node) {
                    Some(b) => format!(
                        "default via {} (cbr0 on {}: eth0 → veth → bridge)",
                        Ipv4Addr::from(u32::from(b.network()) + 1),
                        pod.node
                    ),
                    None => format!("default via cbr0 on {}", pod.node),
                },
                _ => format!(
                    "default via 169.254.1.1 dev eth0 (proxy ARP: the veth on {})",
                    pod.node
                ),
            };
            step(
                &mut path,
                &format!("pod {}", pod.id()),
                StepKind::Route,
                true,
                format!("{} → {}: {via}", p.saddr, p.daddr),
            );
            Loc::Node {
                name: pod.node.clone(),
                from_fabric: false,
            }
        } else if let Some(n) = self.node_by_ip(p.saddr) {
            // The node picks its source by route: on kubenet its own pods
            // are on cbr0, whose route has the bridge's address as `src`.
            let local_pod = self.pod_by_ip(p.daddr).is_some_and(|pd| pd.node == n.name);
            if let (true, Some(br)) = (local_pod, self.bridge_address(&n.name)) {
                step(
                    &mut path,
                    &n.name,
                    StepKind::Route,
                    true,
                    format!(
                        "{} dev cbr0 src {br}: the node's source address towards its pods is the bridge's",
                        p.daddr
                    ),
                );
                p.saddr = br;
            }
            Loc::Node {
                name: n.name.clone(),
                from_fabric: false,
            }
        } else if self.lab && p.saddr == self.state.addressing.internet_ip {
            let net = self.state.addressing.internet_net;
            step(
                &mut path,
                "internet",
                StepKind::Drop,
                false,
                format!(
                    "{}: network unreachable: the internet host routes only {net}; nothing of the VNet is published to it here",
                    p.daddr
                ),
            );
            return path;
        } else {
            let at = self.name_of(p.saddr);
            if !self.lab {
                step(&mut path, &at, StepKind::Drop, false, format!("{} is no pod or node of the cluster; without --lab the way into the cluster is not known", p.saddr));
                return path;
            }
            step(
                &mut path,
                &at,
                StepKind::Route,
                true,
                format!("{} → {}: default via the fabric", p.saddr, p.daddr),
            );
            Loc::Fabric { node_subnet: false }
        };
        let mut dnat_done = false;
        let mut egress_done = src_pod.is_none();
        // At most a few hops: pod → node → fabric → node → (fabric → node).
        for _ in 0..8 {
            match loc.clone() {
                Loc::Node { name, from_fabric } => {
                    let Some(node) = self.node(&name) else {
                        step(
                            &mut path,
                            &name,
                            StepKind::Drop,
                            false,
                            format!("no node {name}"),
                        );
                        return path;
                    };
                    // kube-proxy: DNAT of a Service address.
                    let mut dnat_here = false;
                    if !dnat_done {
                        if let Some(hit) = self.service_at(&p, node) {
                            dnat_done = true;
                            let what = format!(
                                "{} {} {}:{}/{}",
                                hit.how,
                                svc_id(hit.svc),
                                p.daddr,
                                p.dport,
                                p.proto
                            );
                            let Some(sp) = hit.port else {
                                step(&mut path, &name, StepKind::Drop, false, format!("{what}: no port {}/{} of the Service: refused (a ClusterIP port no Service declares)", p.dport, p.proto));
                                return path;
                            };
                            let Some((b, n)) = backend else {
                                step(
                                    &mut path,
                                    &name,
                                    StepKind::Drop,
                                    false,
                                    format!(
                                        "{what}: Service port {} has no endpoint{}: refused",
                                        sp.port,
                                        if hit.svc.internal_local() || hit.svc.external_local() {
                                            " here (traffic policy Local)"
                                        } else {
                                            ""
                                        }
                                    ),
                                );
                                return path;
                            };
                            let from_cluster =
                                self.cluster_cidrs().iter().any(|c| c.contains(&p.saddr));
                            let hairpin = b.ip == p.saddr;
                            // kube-proxy: a ClusterIP masquerades sources outside
                            // the cluster's pod ranges; the external path
                            // (NodePort, load-balancer IP) always, unless
                            // externalTrafficPolicy is Local (the client is
                            // kept); a pod reaching itself always (hairpin).
                            p.masq = hairpin
                                || match hit.how {
                                    "ClusterIP" => !from_cluster,
                                    _ => !hit.svc.external_local(),
                                };
                            let who = self
                                .pod_by_ip(b.ip)
                                .map(|pd| format!(" (pod {} on {})", pd.id(), pd.node))
                                .unwrap_or_default();
                            step(&mut path, &name, StepKind::Dnat, true, format!(
                                "{what} → {}:{}{who}, one of {n} backend{} (kube-proxy picks at random){}",
                                b.ip, b.port, if n == 1 { "" } else { "s" },
                                if p.masq { "; marked for masquerade" } else { "" }
                            ));
                            p.daddr = b.ip;
                            p.dport = b.port;
                            dnat_here = true;
                        } else if self.services().any(|s| s.cluster_ipv4() == Some(p.daddr)) {
                            dnat_done = true;
                        }
                    }
                    // Egress policy of the source pod, at its node, on the
                    // post-DNAT destination.
                    if !egress_done {
                        egress_done = true;
                        if let Some(v) = policy.egress(&Flow::new(
                            original_src,
                            p.daddr,
                            p.dport,
                            proto_k8s(p.proto),
                        )) {
                            let ok = v.allowed;
                            step(
                                &mut path,
                                &name,
                                StepKind::Policy,
                                ok,
                                format!("egress: {}", v.message),
                            );
                            path.policy.push(v);
                            if !ok {
                                return path;
                            }
                        }
                    }
                    // Masquerade (and ip-masq-agent's SNAT) takes the address
                    // of the interface the packet leaves by: eth0's (the node
                    // IP), or on kubenet, towards a pod of this node, the
                    // bridge's (the block's .1).
                    let masq_to = |p: &mut Packet, path: &mut Path, to: Ipv4Addr, why: &str| {
                        // Masquerade happens once, on the node that DNAT'd.
                        p.masq = false;
                        if p.saddr == to {
                            return;
                        }
                        let old = p.saddr;
                        p.saddr = to;
                        path.steps.push(Step {
                            at: name.clone(),
                            kind: StepKind::Snat,
                            ok: true,
                            detail: format!("{old} → {to} ({why})"),
                        });
                    };
                    // Delivered here?
                    if p.daddr == node.ip {
                        // Delivered locally: no postrouting, no masquerade.
                        return self.deliver_node(path, node, &p);
                    }
                    if let Some(pod) = self.pod_by_ip(p.daddr).filter(|pd| pd.node == node.name) {
                        if p.masq {
                            let to = self.bridge_address(&name).unwrap_or(node.ip);
                            let why = if to == node.ip {
                                "kube-proxy masquerade"
                            } else {
                                "kube-proxy masquerade, to the bridge cbr0's address"
                            };
                            masq_to(&mut p, &mut path, to, why);
                        }
                        let how = match plugin {
                            NetworkPlugin::Kubenet
                                if !from_fabric
                                    && src_pod.is_some_and(|s| s.node == node.name)
                                    && !p.masq =>
                            {
                                "same node: the bridge cbr0 delivers it, it never leaves the bridge"
                                    .to_string()
                            }
                            NetworkPlugin::Kubenet => {
                                format!("{} dev cbr0 (the node's /24 on the bridge)", p.daddr)
                            }
                            _ => format!("host route {}/32 dev the pod's veth", p.daddr),
                        };
                        step(&mut path, &name, StepKind::Route, true, how);
                        return self.deliver_pod(path, pod, &p, &policy);
                    }
                    if from_fabric && !dnat_here {
                        step(
                            &mut path,
                            &name,
                            StepKind::Drop,
                            false,
                            format!(
                                "{} is not on {name}: the node does not forward it back",
                                p.daddr
                            ),
                        );
                        return path;
                    }
                    // Leaves by eth0: SNAT at postrouting.
                    step(
                        &mut path,
                        &name,
                        StepKind::Route,
                        true,
                        format!(
                            "{} → default via {} dev eth0 (the subnet gateway, into the fabric)",
                            p.daddr, self.state.addressing.node_gateway
                        ),
                    );
                    if p.masq {
                        masq_to(&mut p, &mut path, node.ip, "kube-proxy masquerade");
                    } else if self
                        .node_pod_sources(&name)
                        .iter()
                        .any(|c| c.contains(&p.saddr))
                    {
                        let no_snat = self.state.network.non_masquerade_cidrs();
                        if no_snat.iter().any(|c| c.contains(&p.daddr)) || nsg_link_local(p.daddr) {
                            step(
                                &mut path,
                                &name,
                                StepKind::Snat,
                                true,
                                format!(
                                    "none: {} is in nonMasqueradeCIDRs ({}), the pod IP is kept",
                                    p.daddr,
                                    no_snat
                                        .iter()
                                        .map(|c| c.to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                        } else {
                            masq_to(
                                &mut p,
                                &mut path,
                                node.ip,
                                "ip-masq-agent: destination outside nonMasqueradeCIDRs",
                            );
                        }
                    }
                    loc = Loc::Fabric { node_subnet: true };
                }
                Loc::Fabric { node_subnet } => {
                    if !self.lab {
                        // A store alone: only the other nodes' routes are known.
                        match self.fabric_next(&p, node_subnet) {
                            Ok((Some(n), why)) => {
                                step(
                                    &mut path,
                                    "fabric",
                                    StepKind::Route,
                                    true,
                                    format!("{why} (the NSG is not known without --lab)"),
                                );
                                loc = Loc::Node {
                                    name: n.name.clone(),
                                    from_fabric: true,
                                };
                                continue;
                            }
                            Ok((None, why)) => {
                                step(
                                    &mut path,
                                    "fabric",
                                    StepKind::Route,
                                    true,
                                    format!("{why}; beyond the cluster is not known without --lab"),
                                );
                                path.allowed = true;
                                path.delivered_to = Some(p.daddr.to_string());
                                path.source_ip_seen = Some(p.saddr.to_string());
                                return path;
                            }
                            Err(why) => {
                                step(&mut path, "fabric", StepKind::Drop, false, why);
                                return path;
                            }
                        }
                    }
                    let next = self.fabric_next(&p, node_subnet);
                    let (node, why) = match next {
                        Ok(x) => x,
                        Err(why) => {
                            step(&mut path, "fabric", StepKind::Drop, false, why);
                            return path;
                        }
                    };
                    step(&mut path, "fabric", StepKind::Route, true, why);
                    // NSG: outbound for what came from a node NIC, inbound
                    // for what goes to one.
                    let vnet = virtual_network(self.state);
                    let mut dirs = vec![];
                    if node_subnet {
                        dirs.push(nsg::Direction::Outbound);
                    }
                    if node.is_some() {
                        dirs.push(nsg::Direction::Inbound);
                    }
                    for d in dirs {
                        let dec = nsg_decide(&self.state.nsg, &vnet, d, &p);
                        let ok = dec.access == Access::Allow;
                        step(
                            &mut path,
                            "fabric",
                            StepKind::Nsg,
                            ok,
                            format!(
                                "NSG {}: {} {} (priority {}) for {} → {}:{}/{}",
                                d.as_str(),
                                dec.rule,
                                dec.access.as_str(),
                                dec.priority,
                                p.saddr,
                                p.daddr,
                                p.dport,
                                p.proto
                            ),
                        );
                        path.nsg.push(dec);
                        if !ok {
                            return path;
                        }
                    }
                    match node {
                        Some(n) => {
                            loc = Loc::Node {
                                name: n.name.clone(),
                                from_fabric: true,
                            };
                        }
                        None => return self.deliver_outside(path, &p),
                    }
                }
            }
        }
        step(
            &mut path,
            "fabric",
            StepKind::Drop,
            false,
            "the packet loops".into(),
        );
        path
    }
}
