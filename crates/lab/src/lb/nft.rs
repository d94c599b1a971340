//! The load balancer's part of the fabric's nftables table (`ip
//! aksnet_lab`), as data added to [`crate::fabric::desired_nft`]:
//!
//! ```text
//! map lb-rules      { ipv4_addr . inet_proto . inet_service : verdict }  # frontend . proto . port
//! set lb-frontends  { ipv4_addr }
//! set lb-marks      { mark }
//! chain lb_prerouting { type filter hook prerouting priority -140; policy accept;
//!     ip daddr . meta l4proto . th dport vmap @lb-rules
//!     ip daddr @lb-frontends drop }                  # a port with no rule
//! chain lb-rule-NS-NAME-TCP-80 {
//!     iifname "inet" drop                            # internal: the VNet only
//!     ip saddr != { SOURCE RANGES } drop             # loadBalancerSourceRanges
//!     ip saddr . th sport @lb-flows-…-node-1 update @… goto lb-to-node-1   # a flow keeps its member
//!     numgen random mod 2 vmap { 0 : goto lb-new-…-node-1, 1 : goto lb-new-…-node-2 }
//!     drop }                                         # no healthy member
//! chain lb-new-…-node-1 { update @lb-flows-…-node-1 { ip saddr . th sport }; goto lb-to-node-1 }
//! chain lb-to-node-1 { meta mark set 0x10001 accept }
//! forward: meta mark @lb-marks accept               # the rule's NSG allow
//! ```
//!
//! Floating IP: nothing rewrites the destination. The mark picks the
//! member's route table ([`super::routing`]): the packet leaves through
//! the member's NIC with the frontend IP as its destination. A new flow
//! goes to a random healthy member and is remembered in that member's flow
//! set (a timeout set, Azure's 4-minute idle timeout, refreshed by every
//! packet), so every later packet of the flow takes the same member, also
//! after the member's probe fails (Azure lets established flows finish).

use std::net::IpAddr;

use aksnet_nft::build::{accept, drop, goto, iifname, in_set};
use aksnet_nft::{
    priority, BaseChain, Chain, ChainType, ElemData, Element, Expr, Hook, KeyType, L4Proto, Match,
    MetaKey, Op, Payload, Rhs, Rule, Set, Stmt, Table, Value, Verdict, VmapRef,
};

use super::{Frontend, LbRule, Member};
use crate::probe::Protocol;
use crate::topology::INTERNET_PORT;

pub const RULES_MAP: &str = "lb-rules";
pub const FRONTENDS_SET: &str = "lb-frontends";
pub const MARKS_SET: &str = "lb-marks";
pub const PREROUTING: &str = "lb_prerouting";
/// Node `i`'s mark is `MARK_BASE + i` (its route table: [`super::routing`]).
pub const MARK_BASE: u32 = 0x10000;
pub fn mark_of(index: u32) -> u32 {
    MARK_BASE + index
}

pub fn rule_chain(r: &LbRule) -> String {
    format!("lb-rule-{}", r.name)
}

pub fn member_chain(m: &Member) -> String {
    format!("lb-to-{}", m.node)
}

/// The flows `r` sent to `m` (a timeout set filled from the packet path).
pub fn flow_set(r: &LbRule, m: &Member) -> String {
    format!("lb-flows-{}-{}", r.name, m.node)
}

/// Where a new flow of `r` that chose `m` is remembered.
pub fn new_flow_chain(r: &LbRule, m: &Member) -> String {
    format!("lb-new-{}-{}", r.name, m.node)
}

/// Azure's default idle timeout (4 minutes): how long a quiet flow keeps
/// its member.
pub const IDLE_TIMEOUT: u32 = 240;

fn l4(p: Protocol) -> L4Proto {
    match p {
        Protocol::Tcp => L4Proto::Tcp,
        Protocol::Udp => L4Proto::Udp,
    }
}

/// Adds the load balancer's sets and chains to the fabric's table `t`
/// (which already has its `forward` chain) for `frontends`.
pub fn extend(t: &mut Table, frontends: &[Frontend]) {
    let mut rules_map = Set::vmap(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ]);
    let mut fronts = Set::new(vec![KeyType::Ipv4Addr]);
    let mut marks = Set::new(vec![KeyType::Mark]);
    for f in frontends {
        fronts = fronts.elem(Value::Addr(IpAddr::V4(f.ip)));
        for r in &f.rules {
            let chain = rule_chain(r);
            rules_map.insert(
                Value::Concat(vec![
                    Value::Addr(IpAddr::V4(f.ip)),
                    Value::Proto(l4(r.protocol)),
                    Value::Port(r.port),
                ]),
                Element {
                    data: Some(ElemData::Verdict(Verdict::Goto(chain.clone()))),
                    ..Element::default()
                },
            );
            let mut rules = vec![];
            if f.internal {
                rules.push(
                    Rule::new([iifname(INTERNET_PORT), drop()])
                        .comment("internal frontend: the VNet only"),
                );
            }
            if !f.source_ranges.is_empty() {
                rules.push(
                    Rule::new([
                        Stmt::Match(Match {
                            left: Expr::Payload(Payload::IpSaddr),
                            op: Op::Ne,
                            right: Rhs::Set(
                                f.source_ranges
                                    .iter()
                                    .map(|n| Value::net(ipnet::IpNet::V4(*n)))
                                    .collect(),
                            ),
                        }),
                        drop(),
                    ])
                    .comment("loadBalancerSourceRanges"),
                );
            }
            let flow_key = || {
                Expr::Concat(vec![
                    Expr::Payload(Payload::IpSaddr),
                    Expr::Payload(Payload::ThSport),
                ])
            };
            for m in &r.pool {
                let set = flow_set(r, m);
                t.set(
                    &set,
                    Set::new(vec![KeyType::Ipv4Addr, KeyType::InetService])
                        .with_timeout(IDLE_TIMEOUT),
                );
                rules.push(Rule::new([
                    in_set(flow_key(), &set),
                    Stmt::SetUpdate {
                        set: set.clone(),
                        key: flow_key(),
                    },
                    goto(&member_chain(m)),
                ]));
            }
            let healthy = r.healthy();
            if !healthy.is_empty() {
                let n = u32::try_from(healthy.len()).unwrap_or(u32::MAX);
                let items = healthy
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        (
                            Value::Int(u32::try_from(i).unwrap_or(0)),
                            Verdict::Goto(new_flow_chain(r, m)),
                        )
                    })
                    .collect();
                rules.push(Rule::new([Stmt::Vmap {
                    key: Expr::NumgenRandom {
                        modulus: n,
                        offset: 0,
                    },
                    map: VmapRef::Anon(items),
                }]));
            }
            for m in &healthy {
                let set = flow_set(r, m);
                t.chain(
                    &new_flow_chain(r, m),
                    Chain::regular(vec![Rule::new([
                        Stmt::SetUpdate {
                            set,
                            key: flow_key(),
                        },
                        goto(&member_chain(m)),
                    ])]),
                );
            }
            rules.push(Rule::new([drop()]).comment("no healthy backend"));
            t.chain(&chain, Chain::regular(rules));
            for m in &r.pool {
                marks = marks.elem(Value::Mark(mark_of(m.index)));
                t.chain(
                    &member_chain(m),
                    Chain::regular(vec![Rule::new([Stmt::SetMark(mark_of(m.index)), accept()])
                        .comment(format!("to {}'s NIC ({})", m.node, m.ip))]),
                );
            }
        }
    }
    t.set(RULES_MAP, rules_map);
    t.set(FRONTENDS_SET, fronts);
    t.set(MARKS_SET, marks);
    t.chain(
        PREROUTING,
        Chain::base(
            BaseChain::new(ChainType::Filter, Hook::Prerouting, priority::MANGLE + 10),
            vec![
                Rule::new([Stmt::Vmap {
                    key: Expr::Concat(vec![
                        Expr::Payload(Payload::IpDaddr),
                        Expr::Meta(MetaKey::L4Proto),
                        Expr::Payload(Payload::ThDport),
                    ]),
                    map: VmapRef::Named(RULES_MAP.into()),
                }]),
                Rule::new([
                    in_set(Expr::Payload(Payload::IpDaddr), FRONTENDS_SET),
                    drop(),
                ])
                .comment("a frontend port with no load-balancing rule"),
            ],
        ),
    );
    // The NSG rule cloud-provider-azure adds for each rule's sources: a
    // flow the load balancer accepted reaches the node.
    if let Some(fwd) = t.chains.get_mut("forward") {
        let at = 1.min(fwd.rules.len());
        fwd.rules.insert(
            at,
            Rule::new([in_set(Expr::Meta(MetaKey::Mark), MARKS_SET), accept()])
                .comment("load-balancing rule (k8s-azure-lb allow)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::desired_nft_with;
    use crate::lb::tests::{k8s, lb_svc};
    use crate::lb::{plan, LbStatus};
    use crate::state::tests::sample_state;
    use aksnet_nft::{Driver, Fake, Final, Hook, Host, Packet};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn traced(t: &Table, p: Packet) -> aksnet_nft::Trace {
        aksnet_nft::trace(
            std::slice::from_ref(t),
            &Host::default(),
            &p,
            &[Hook::Prerouting, Hook::Forward, Hook::Postrouting],
        )
    }

    /// Two nodes; node-1 up for every probe, node-2 down for `down`'s.
    fn status(svcs: &[serde_json::Value], up: &dyn Fn(&str, &str) -> bool) -> LbStatus {
        let st = sample_state("kubenet", None, 2, 1);
        let k = k8s(svcs);
        let mut ips = BTreeMap::new();
        for (i, v) in svcs.iter().enumerate() {
            let name = v["metadata"]["name"].as_str().unwrap();
            let ip = if name.starts_with("int") {
                format!("10.224.255.{}", 254 - i)
            } else {
                format!("203.0.113.{}", 150 + i)
            };
            ips.insert(format!("shop/{name}"), ip.parse().unwrap());
        }
        let mut s = LbStatus {
            frontends: plan(&st, &k, &ips, &LbStatus::default()),
            pending: vec![],
        };
        for f in &mut s.frontends {
            let svc = f.service.clone();
            for r in &mut f.rules {
                for m in &mut r.pool {
                    m.probe.record(up(&svc, &m.node), "x".into(), 2, 1);
                }
            }
        }
        s
    }

    #[test]
    fn floating_ip_rules_spread_over_healthy_members_and_keep_the_destination() {
        let st = sample_state("kubenet", None, 2, 1);
        let lb = status(
            &[
                lb_svc("web", "Cluster", json!({})),
                lb_svc("loc", "Local", json!({})),
            ],
            &|svc, node| svc == "shop/web" || node == "node-1",
        );
        let t = desired_nft_with(&st, &lb);
        let mut fake = Fake::new();
        fake.apply(&aksnet_nft::diff::create(&t)).unwrap();
        let dump = fake.dump();
        assert!(
            dump.contains("ip daddr . meta l4proto . th dport vmap @lb-rules"),
            "{dump}"
        );
        assert!(
            dump.contains("numgen random mod 2 vmap { 0 : goto lb-new-shop-web-TCP-80-node-1, 1 : goto lb-new-shop-web-TCP-80-node-2 }"),
            "{dump}"
        );
        assert!(
            dump.contains("ip saddr . th sport @lb-flows-shop-web-TCP-80-node-1 update @lb-flows-shop-web-TCP-80-node-1 { ip saddr . th sport } goto lb-to-node-1"),
            "{dump}"
        );
        // Internet → web:80, the random draw choosing node-1, then node-2;
        // the destination stays the frontend IP (no NAT), the NSG lets
        // the rule's flow through.
        for (draw, node, mark) in [(0, "n1", 0x10001), (1, "n2", 0x10002)] {
            let p = Packet::tcp("203.0.113.10", 40000, "203.0.113.150", 80)
                .iif("inet")
                .oif(node)
                .random(draw);
            let tr = traced(&t, p);
            assert_eq!(tr.verdict, Final::Accept, "{tr}");
            assert_eq!(tr.after.mark, mark, "{tr}");
            assert_eq!(tr.after.daddr.to_string(), "203.0.113.150");
            assert!(tr.nat.is_empty(), "{tr}");
        }
        // Local: only node-1 (the one whose /healthz says 200).
        assert!(
            dump.contains("numgen random mod 1 vmap { 0 : goto lb-new-shop-loc-TCP-80-node-1 }"),
            "{dump}"
        );
        for draw in 0..4 {
            let tr = traced(
                &t,
                Packet::tcp("203.0.113.10", 50000, "203.0.113.151", 80)
                    .iif("inet")
                    .oif("n1")
                    .random(draw),
            );
            assert_eq!(tr.after.mark, 0x10001, "{tr}");
        }
        // A port without a rule is dropped at the load balancer.
        let tr = traced(
            &t,
            Packet::tcp("203.0.113.10", 50000, "203.0.113.150", 8080).iif("inet"),
        );
        assert_eq!(tr.verdict, Final::Drop, "{tr}");
        // The UDP rule of a Cluster Service has no probe: both members.
        assert!(dump.contains("chain lb-rule-shop-web-UDP-53"), "{dump}");
    }

    #[test]
    fn no_healthy_member_internal_and_source_ranges_drop() {
        let st = sample_state("kubenet", None, 2, 1);
        let lb = status(
            &[
                lb_svc("down", "Local", json!({})),
                lb_svc(
                    "int",
                    "Cluster",
                    json!({"annotations": {(crate::lb::INTERNAL_ANNOTATION): "true"}}),
                ),
                lb_svc(
                    "ranged",
                    "Cluster",
                    json!({"loadBalancerSourceRanges": ["10.225.0.0/24"]}),
                ),
            ],
            &|svc, _| svc != "shop/down",
        );
        let t = desired_nft_with(&st, &lb);
        let mut fake = Fake::new();
        fake.apply(&aksnet_nft::diff::create(&t)).unwrap();
        let drop_at = |p: Packet| {
            let tr = traced(&t, p);
            assert_eq!(tr.verdict, Final::Drop, "{tr}");
            tr.rules().last().cloned().unwrap_or_default()
        };
        let last = drop_at(Packet::tcp("203.0.113.10", 40000, "203.0.113.150", 80).iif("inet"));
        assert!(last.contains("no healthy backend"), "{last}");
        // The internal frontend: not from the internet, yes from the VM.
        let ilb = "10.224.255.253";
        let last = drop_at(Packet::tcp("203.0.113.10", 40000, ilb, 80).iif("inet"));
        assert!(last.contains("VNet only"), "{last}");
        let tr = traced(
            &t,
            Packet::tcp("10.225.0.4", 40000, ilb, 80)
                .iif("vm")
                .oif("n1"),
        );
        assert_eq!(
            (tr.verdict, tr.after.mark),
            (Final::Accept, 0x10001),
            "{tr}"
        );
        // Source ranges: the VM's subnet only.
        let last = drop_at(Packet::tcp("203.0.113.10", 40000, "203.0.113.152", 80).iif("inet"));
        assert!(last.contains("loadBalancerSourceRanges"), "{last}");
        let tr = traced(
            &t,
            Packet::tcp("10.225.0.4", 40000, "203.0.113.152", 80)
                .iif("vm")
                .oif("n1"),
        );
        assert_eq!(tr.verdict, Final::Accept, "{tr}");
        // A change of health rewrites the rule's chain only.
        let healthy = status(
            &[
                lb_svc("down", "Local", json!({})),
                lb_svc(
                    "int",
                    "Cluster",
                    json!({"annotations": {(crate::lb::INTERNAL_ANNOTATION): "true"}}),
                ),
                lb_svc(
                    "ranged",
                    "Cluster",
                    json!({"loadBalancerSourceRanges": ["10.225.0.0/24"]}),
                ),
            ],
            &|_, _| true,
        );
        let batch = aksnet_nft::diff::diff(&t, &desired_nft_with(&st, &healthy)).to_string();
        assert!(batch.contains("lb-rule-shop-down-TCP-80"), "{batch}");
        assert!(!batch.contains("lb-rule-shop-int"), "{batch}");
        assert!(!batch.contains("nsg_in"), "{batch}");
    }
}
