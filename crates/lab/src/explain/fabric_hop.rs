//! The fabric's route and NSG for one packet, and its delivery to a
//! node, a pod, the VM or the internet.

use super::*;

impl<'a> World<'a> {
    /// The fabric's route for `p`: the node it goes to (with why), none for
    /// the VM or the internet, or why there is no route.
    pub(super) fn fabric_next(
        &self,
        p: &Packet,
        node_subnet: bool,
    ) -> Result<(Option<&'a NodeState>, String), String> {
        let d = p.daddr;
        if let Some(n) = self.node_by_ip(d) {
            return Ok((Some(n), format!("{d}/32 → {} (its NIC)", n.name)));
        }
        if let Some(pod) = self.pod_by_ip(d) {
            let n = self.node(&pod.node);
            match self.plugin() {
                NetworkPlugin::Kubenet => {
                    if !node_subnet {
                        return Err(format!("{d}: not routable: the route table (UDR) is associated with the node subnet only (kubenet pods are not reachable from the VNet)"));
                    }
                    let entry = self
                        .snap
                        .routes
                        .values()
                        .filter_map(|r| r.value.as_ref())
                        .find(|r| r.destination.contains(&d));
                    return match entry {
                        Some(r) => Ok((self.node_by_ip(r.next_hop).or(n), format!("route table (UDR): {} → next hop {} ({})", r.destination, r.next_hop, r.node))),
                        None => Err(format!("{d}: no entry in the route table (UDR) for {}'s /24 ({} is NetworkUnavailable?)", pod.node, pod.node)),
                    };
                }
                NetworkPlugin::Overlay => {
                    if !node_subnet {
                        return Err(format!("{d}: not routable: the overlay's pod CIDR is routed only inside the cluster"));
                    }
                    let block = self.snap.blocks.iter().find(|(b, c)| {
                        b.contains(&d)
                            && c.value
                                .as_ref()
                                .is_some_and(|c| c.kind == ClaimKind::PodBlock)
                    });
                    return match block.and_then(|(b, c)| Some((b, c.value.as_ref()?))) {
                        Some((b, c)) => Ok((
                            self.node(&c.node).or(n),
                            format!("overlay routing domain: {b} → {}", c.node),
                        )),
                        None => Err(format!("{d}: no block of the overlay holds it")),
                    };
                }
                NetworkPlugin::Azure => {
                    let claim = self.snap.ips.get(&d).and_then(|c| c.value.as_ref());
                    return match claim {
                        Some(c) => Ok((
                            self.node(&c.node).or(n),
                            format!(
                                "NIC IP configuration: {d} is a secondary IP of {}'s NIC",
                                c.node
                            ),
                        )),
                        None => Err(format!("{d}: no NIC holds it")),
                    };
                }
            }
        }
        if self.lab && d == self.state.addressing.vm_ip {
            return Ok((
                None,
                format!(
                    "{d}/32 → the VM's NIC (subnet {})",
                    self.state.addressing.vm_subnet
                ),
            ));
        }
        let private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .filter_map(|c| c.parse::<Ipv4Net>().ok())
            .chain(self.state.network.vnet_cidrs.iter().copied())
            .chain(self.state.network.effective_pod_cidr());
        for c in private {
            if c.contains(&d) {
                return Err(format!(
                    "{d}: no NIC or route for it in the VNet ({c} is unreachable in the fabric)"
                ));
            }
        }
        Ok((None, format!("{d}: default route to the internet")))
    }

    pub(super) fn deliver_node(&self, mut path: Path, node: &NodeState, p: &Packet) -> Path {
        let at = node.name.clone();
        if self.lab && p.dport != PROBE_PORT {
            path.steps.push(Step { at, kind: StepKind::Drop, ok: false, detail: format!("nothing listens on {}:{}/{} (the node's probe server is on {PROBE_PORT}): refused", node.ip, p.dport, p.proto) });
            return path;
        }
        path.steps.push(Step {
            at,
            kind: StepKind::Deliver,
            ok: true,
            detail: format!("delivered to {} (source seen: {})", node.name, p.saddr),
        });
        path.allowed = true;
        path.delivered_to = Some(node.name.clone());
        path.source_ip_seen = Some(p.saddr.to_string());
        path
    }

    pub(super) fn deliver_pod(
        &self,
        mut path: Path,
        pod: &PodState,
        p: &Packet,
        policy: &PolicyView<'_>,
    ) -> Path {
        let at = format!("pod {}", pod.id());
        if let Some(v) = policy.ingress(&Flow::new(p.saddr, p.daddr, p.dport, proto_k8s(p.proto))) {
            let ok = v.allowed;
            path.steps.push(Step {
                at: pod.node.clone(),
                kind: StepKind::Policy,
                ok,
                detail: format!("ingress: {}", v.message),
            });
            path.policy.push(v);
            if !ok {
                return path;
            }
        }
        let serves = p.dport == PROBE_PORT
            || pod
                .ports
                .iter()
                .any(|l| l.port == p.dport && l.protocol == p.proto);
        if self.lab && !serves {
            path.steps.push(Step {
                at,
                kind: StepKind::Drop,
                ok: false,
                detail: format!(
                    "nothing listens on {}:{}/{}: refused",
                    p.daddr, p.dport, p.proto
                ),
            });
            return path;
        }
        path.steps.push(Step {
            at,
            kind: StepKind::Deliver,
            ok: true,
            detail: format!(
                "delivered to {}:{}/{} (source seen: {})",
                p.daddr, p.dport, p.proto, p.saddr
            ),
        });
        path.allowed = true;
        path.delivered_to = Some(pod.id());
        path.source_ip_seen = Some(p.saddr.to_string());
        path
    }

    pub(super) fn deliver_outside(&self, mut path: Path, p: &Packet) -> Path {
        let mut p = p.clone();
        let a = &self.state.addressing;
        if p.daddr == a.vm_ip {
            let ok = p.dport == PROBE_PORT;
            path.steps.push(Step {
                at: "vm".into(),
                kind: if ok {
                    StepKind::Deliver
                } else {
                    StepKind::Drop
                },
                ok,
                detail: if ok {
                    format!("delivered to the VM (source seen: {})", p.saddr)
                } else {
                    format!(
                        "nothing listens on the VM's {}/{}: refused",
                        p.dport, p.proto
                    )
                },
            });
            if ok {
                path.allowed = true;
                path.delivered_to = Some("vm".into());
                path.source_ip_seen = Some(p.saddr.to_string());
            }
            return path;
        }
        let old = p.saddr;
        p.saddr = a.public_ip;
        path.steps.push(Step {
            at: "fabric".into(),
            kind: StepKind::Snat,
            ok: true,
            detail: format!("{old} → {} (outbound SNAT to the public IP)", a.public_ip),
        });
        let ok = p.daddr == a.internet_ip && p.dport == PROBE_PORT;
        path.steps.push(Step {
            at: "internet".into(),
            kind: if ok {
                StepKind::Deliver
            } else {
                StepKind::Drop
            },
            ok,
            detail: if ok {
                format!("delivered to the internet host (source seen: {})", p.saddr)
            } else if p.daddr == a.internet_ip {
                format!(
                    "nothing listens on the internet host's {}/{}: refused",
                    p.dport, p.proto
                )
            } else {
                format!("{}: no host of the lab's internet answers there", p.daddr)
            },
        });
        if ok {
            path.allowed = true;
            path.delivered_to = Some("internet".into());
            path.source_ip_seen = Some(p.saddr.to_string());
        }
        path
    }
}

pub(super) fn nsg_link_local(ip: Ipv4Addr) -> bool {
    ip.is_link_local()
}

/// The NSG rule that decides a packet in one direction: the user rules in
/// priority order, first match wins, then Azure's defaults.
pub fn nsg_decide(
    rules: &[NsgRule],
    vnet: &[Ipv4Net],
    dir: nsg::Direction,
    p_: &impl NsgPacket,
) -> NsgDecision {
    let (saddr, daddr, dport, proto) = p_.fields();
    let mut user: Vec<&NsgRule> = rules.iter().filter(|r| r.direction == dir).collect();
    user.sort_by_key(|r| r.priority);
    for r in user {
        let m = r.source.is_none_or(|s| s.trunc().contains(&saddr))
            && r.destination.is_none_or(|d| d.trunc().contains(&daddr))
            && r.protocol.is_none_or(|x| x.as_str() == proto.as_str())
            && r.port.is_none_or(|x| x == dport);
        if m {
            return NsgDecision {
                direction: dir,
                priority: u32::from(r.priority),
                rule: r.name(),
                access: r.access,
                default: false,
            };
        }
    }
    let in_vnet = |ip: Ipv4Addr| vnet.iter().any(|n| n.contains(&ip));
    let d = |priority, rule: &str, access| NsgDecision {
        direction: dir,
        priority,
        rule: rule.into(),
        access,
        default: true,
    };
    match dir {
        nsg::Direction::Inbound if in_vnet(saddr) => d(65000, "AllowVnetInBound", Access::Allow),
        nsg::Direction::Inbound => d(65500, "DenyAllInBound", Access::Deny),
        nsg::Direction::Outbound if in_vnet(daddr) => d(65000, "AllowVnetOutBound", Access::Allow),
        nsg::Direction::Outbound => d(65001, "AllowInternetOutBound", Access::Allow),
    }
}

/// What the NSG looks at: source, destination, destination port, protocol.
pub trait NsgPacket {
    fn fields(&self) -> (Ipv4Addr, Ipv4Addr, u16, Protocol);
}

impl NsgPacket for Packet {
    fn fields(&self) -> (Ipv4Addr, Ipv4Addr, u16, Protocol) {
        (self.saddr, self.daddr, self.dport, self.proto)
    }
}

impl NsgPacket for (Ipv4Addr, Ipv4Addr, u16, Protocol) {
    fn fields(&self) -> (Ipv4Addr, Ipv4Addr, u16, Protocol) {
        *self
    }
}
