//! Which rules a packet hits, in the spirit of kube-proxy's nftables
//! tracer: a packet (5-tuple, interfaces, mark, conntrack state) runs
//! through the base chains of the given hooks, in priority order across
//! every table of its family; jumps, gotos, returns, verdict maps, marks and
//! NAT are followed; the result names every rule that matched and the
//! final verdict and address translation.

use std::fmt;
use std::net::IpAddr;

use crate::expr::{CtKey, Expr, Match, MetaKey, NatKind, Op, Payload, Rhs, Stmt, Verdict, VmapRef};
use crate::model::{ChainType, ElemData, Family, Hook, Table};
use crate::value::{CtState, CtStatus, FibType, L4Proto, Value};

/// The packet being traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub proto: L4Proto,
    pub sport: u16,
    pub dport: u16,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub mark: u32,
    pub ct_state: CtState,
    /// Conntrack status bits (`dnat` is set by a traced DNAT).
    pub ct_status: Vec<CtStatus>,
    /// What `numgen random` draws for this packet (before `mod`).
    pub random: u32,
}

impl Packet {
    /// A new TCP connection's first packet.
    pub fn tcp(saddr: &str, sport: u16, daddr: &str, dport: u16) -> Packet {
        Packet::new(L4Proto::Tcp, saddr, sport, daddr, dport)
    }

    /// A new UDP flow's first packet.
    pub fn udp(saddr: &str, sport: u16, daddr: &str, dport: u16) -> Packet {
        Packet::new(L4Proto::Udp, saddr, sport, daddr, dport)
    }

    fn new(proto: L4Proto, saddr: &str, sport: u16, daddr: &str, dport: u16) -> Packet {
        let parse = |s: &str| {
            s.parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        };
        Packet {
            saddr: parse(saddr),
            daddr: parse(daddr),
            proto,
            sport,
            dport,
            iif: None,
            oif: None,
            mark: 0,
            ct_state: CtState::New,
            ct_status: vec![],
            random: 0,
        }
    }

    pub fn iif(mut self, i: &str) -> Packet {
        self.iif = Some(i.to_string());
        self
    }

    pub fn oif(mut self, o: &str) -> Packet {
        self.oif = Some(o.to_string());
        self
    }

    pub fn state(mut self, s: CtState) -> Packet {
        self.ct_state = s;
        self
    }

    pub fn random(mut self, r: u32) -> Packet {
        self.random = r;
        self
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{} ct {}",
            self.proto.as_str(),
            self.saddr,
            self.sport,
            self.daddr,
            self.dport,
            self.ct_state.as_str()
        )?;
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " oif {o}")?;
        }
        if self.mark != 0 {
            write!(f, " mark {:#x}", self.mark)?;
        }
        Ok(())
    }
}

/// What the host knows that rules may ask (`fib daddr type local`).
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Addresses local to the host.
    pub local: Vec<IpAddr>,
    /// The address `masquerade` takes on the outgoing interface.
    pub masquerade_to: Option<IpAddr>,
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub hook: Hook,
    pub table: String,
    pub chain: String,
    /// Index of the rule in its chain, from 0.
    pub index: usize,
    pub rule: String,
}

/// The end of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Accept,
    Drop,
    Reject,
}

/// A traced packet.
#[derive(Debug, Clone)]
pub struct Trace {
    pub before: Packet,
    /// The packet after marks and NAT.
    pub after: Packet,
    pub hits: Vec<Hit>,
    pub verdict: Final,
    /// NAT applied, as nft writes it (`dnat to 10.0.0.2:80`, `masquerade`).
    pub nat: Vec<String>,
}

impl Trace {
    /// The rules hit, as `table chain: rule` lines.
    pub fn rules(&self) -> Vec<String> {
        self.hits
            .iter()
            .map(|h| format!("{} {}: {}", h.table, h.chain, h.rule))
            .collect()
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "packet {}", self.before)?;
        for h in &self.hits {
            writeln!(
                f,
                "  {} {} {} rule {}: {}",
                h.hook.as_str(),
                h.table,
                h.chain,
                h.index,
                h.rule
            )?;
        }
        let v = match self.verdict {
            Final::Accept => "accept",
            Final::Drop => "drop",
            Final::Reject => "reject",
        };
        write!(f, "verdict {v}")?;
        if !self.nat.is_empty() {
            write!(f, "; {}", self.nat.join(", "))?;
        }
        if self.after != self.before {
            write!(f, "; leaves as {}", self.after)?;
        }
        writeln!(f)
    }
}

enum Flow {
    /// Fell off the chain or returned.
    Next,
    Accept,
    Drop,
    Reject,
}

struct Run<'a> {
    host: &'a Host,
    p: Packet,
    hits: Vec<Hit>,
    nat: Vec<String>,
}

fn family_sees(f: Family, p: &Packet, hook: Hook, dev: Option<&str>) -> bool {
    match f {
        Family::Ip => p.saddr.is_ipv4(),
        Family::Ip6 => p.saddr.is_ipv6(),
        Family::Inet => true,
        Family::Netdev => hook == Hook::Ingress && dev.is_some() && dev == p.iif.as_deref(),
        Family::Bridge => false,
    }
}

/// Traces `packet` through `hooks` in order (e.g. prerouting, forward,
/// postrouting) over every table of `ruleset`. NAT chains see only a new
/// connection's first packet, as in the kernel.
pub fn trace(ruleset: &[Table], host: &Host, packet: &Packet, hooks: &[Hook]) -> Trace {
    let mut run = Run {
        host,
        p: packet.clone(),
        hits: vec![],
        nat: vec![],
    };
    let mut verdict = Final::Accept;
    'hooks: for &hook in hooks {
        let mut chains: Vec<(i32, &Table, &String)> = ruleset
            .iter()
            .flat_map(|t| t.chains.iter().map(move |(n, c)| (t, n, c)))
            .filter_map(|(t, n, c)| {
                let b = c.base.as_ref()?;
                let seen =
                    b.hook == hook && family_sees(t.family, &run.p, hook, b.device.as_deref());
                let nat_ok = b.kind != ChainType::Nat || run.p.ct_state == CtState::New;
                (seen && nat_ok).then_some((b.priority, t, n))
            })
            .collect();
        chains.sort_by_key(|c| (c.0, c.1.id()));
        for (_, t, name) in chains {
            let flow = run.chain(hook, t, name, 0);
            let policy = t.chains[name].base.as_ref().map(|b| b.policy);
            let end = match flow {
                Flow::Next if policy == Some(crate::Policy::Drop) => Final::Drop,
                Flow::Next | Flow::Accept => Final::Accept,
                Flow::Drop => Final::Drop,
                Flow::Reject => Final::Reject,
            };
            if end != Final::Accept {
                verdict = end;
                break 'hooks;
            }
        }
    }
    Trace {
        before: packet.clone(),
        after: run.p,
        hits: run.hits,
        verdict,
        nat: run.nat,
    }
}

impl Run<'_> {
    fn chain(&mut self, hook: Hook, t: &Table, name: &str, depth: usize) -> Flow {
        // The kernel refuses loops; a bad desired state must not hang a test.
        if depth > 16 {
            return Flow::Drop;
        }
        let Some(c) = t.chains.get(name) else {
            return Flow::Drop;
        };
        'rules: for (i, r) in c.rules.iter().enumerate() {
            let mut hit = false;
            for s in &r.stmts {
                if let Stmt::Match(m) = s {
                    if !self.matches(t, m) {
                        continue 'rules;
                    }
                    continue;
                }
                // A verdict map that finds nothing ends the rule, unhit.
                let found = match s {
                    Stmt::Vmap { key, map } => match self.lookup_vmap(t, key, map) {
                        Some(v) => Some(v),
                        None => continue 'rules,
                    },
                    _ => None,
                };
                if !hit {
                    hit = true;
                    self.hits.push(Hit {
                        hook,
                        table: t.id().to_string(),
                        chain: name.to_string(),
                        index: i,
                        rule: r.to_string(),
                    });
                }
                let v = match s {
                    // A dynamic set's update is state the trace does not
                    // keep (each trace is one first packet).
                    Stmt::Match(_) | Stmt::Counter | Stmt::SetUpdate { .. } => continue,
                    Stmt::SetMark(m) => {
                        self.p.mark = *m;
                        continue;
                    }
                    Stmt::Nat(n) => {
                        self.nat.push(s.to_string());
                        match n.kind {
                            NatKind::Dnat => {
                                self.p.daddr = n.addr;
                                if let Some(port) = n.port {
                                    self.p.dport = port;
                                }
                                self.p.ct_status.push(CtStatus::Dnat);
                            }
                            NatKind::Snat => {
                                self.p.saddr = n.addr;
                                if let Some(port) = n.port {
                                    self.p.sport = port;
                                }
                                self.p.ct_status.push(CtStatus::Snat);
                            }
                        }
                        return Flow::Accept;
                    }
                    Stmt::Masquerade => {
                        self.nat.push("masquerade".into());
                        if let Some(a) = self.host.masquerade_to {
                            self.p.saddr = a;
                        }
                        self.p.ct_status.push(CtStatus::Snat);
                        return Flow::Accept;
                    }
                    Stmt::Reject(_) => return Flow::Reject,
                    Stmt::Verdict(v) => v.clone(),
                    Stmt::Vmap { .. } => match found {
                        Some(v) => v,
                        None => continue 'rules,
                    },
                };
                match self.verdict(hook, t, &v, depth) {
                    Some(flow) => return flow,
                    None => continue 'rules,
                }
            }
        }
        Flow::Next
    }

    /// `None`: go on with the next rule (a jump that returned, continue).
    fn verdict(&mut self, hook: Hook, t: &Table, v: &Verdict, depth: usize) -> Option<Flow> {
        match v {
            Verdict::Accept => Some(Flow::Accept),
            Verdict::Drop => Some(Flow::Drop),
            Verdict::Continue => None,
            Verdict::Return => Some(Flow::Next),
            Verdict::Jump(c) => match self.chain(hook, t, c, depth + 1) {
                Flow::Next => None,
                f => Some(f),
            },
            Verdict::Goto(c) => Some(self.chain(hook, t, c, depth + 1)),
        }
    }

    fn lookup_vmap(&self, t: &Table, key: &Expr, map: &VmapRef) -> Option<Verdict> {
        let k = self.read(key)?;
        match map {
            VmapRef::Anon(items) => items
                .iter()
                .find(|(v, _)| v.covers(&k))
                .map(|(_, v)| v.clone()),
            VmapRef::Named(n) => {
                t.sets
                    .get(n)?
                    .elements
                    .iter()
                    .find_map(|(ek, e)| match (&e.data, ek.covers(&k)) {
                        (Some(ElemData::Verdict(v)), true) => Some(v.clone()),
                        _ => None,
                    })
            }
        }
    }

    fn read(&self, e: &Expr) -> Option<Value> {
        let p = &self.p;
        let v4 = p.saddr.is_ipv4();
        let ports = p.proto.has_ports();
        Some(match e {
            Expr::Payload(f) => match f {
                Payload::IpSaddr if v4 => Value::Addr(p.saddr),
                Payload::IpDaddr if v4 => Value::Addr(p.daddr),
                Payload::Ip6Saddr if !v4 => Value::Addr(p.saddr),
                Payload::Ip6Daddr if !v4 => Value::Addr(p.daddr),
                Payload::TcpSport if p.proto == L4Proto::Tcp => Value::Port(p.sport),
                Payload::TcpDport if p.proto == L4Proto::Tcp => Value::Port(p.dport),
                Payload::UdpSport if p.proto == L4Proto::Udp => Value::Port(p.sport),
                Payload::UdpDport if p.proto == L4Proto::Udp => Value::Port(p.dport),
                Payload::ThSport if ports => Value::Port(p.sport),
                Payload::ThDport if ports => Value::Port(p.dport),
                _ => return None,
            },
            Expr::Meta(MetaKey::L4Proto) => Value::Proto(p.proto),
            Expr::Meta(MetaKey::IifName) => Value::IfName(p.iif.clone().unwrap_or_default()),
            Expr::Meta(MetaKey::OifName) => Value::IfName(p.oif.clone().unwrap_or_default()),
            Expr::Meta(MetaKey::Mark) => Value::Mark(p.mark),
            Expr::Ct(CtKey::State) => Value::CtStates(vec![p.ct_state]),
            Expr::Ct(CtKey::Status) => Value::CtStatus(p.ct_status.clone()),
            Expr::FibDaddrType => Value::Fib(if self.host.local.contains(&p.daddr) {
                FibType::Local
            } else if p.daddr.is_multicast() {
                FibType::Multicast
            } else {
                FibType::Unicast
            }),
            Expr::NumgenRandom { modulus, offset } => {
                Value::Int(p.random % (*modulus).max(1) + offset)
            }
            Expr::Concat(parts) => Value::Concat(
                parts
                    .iter()
                    .map(|x| self.read(x))
                    .collect::<Option<Vec<_>>>()?,
            ),
        })
    }

    fn matches(&self, t: &Table, m: &Match) -> bool {
        let Some(have) = self.read(&m.left) else {
            return false;
        };
        let found = match &m.right {
            Rhs::Value(v) => v.covers(&have),
            Rhs::Set(vs) => vs.iter().any(|v| v.covers(&have)),
            Rhs::Named(n) => t
                .sets
                .get(n)
                .is_some_and(|s| s.elements.keys().any(|k| k.covers(&have))),
        };
        match m.op {
            Op::Eq => found,
            Op::Ne => !found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::build::*;
    use crate::expr::Rule;
    use crate::model::{BaseChain, Chain, Element, KeyType, Policy, Set};

    fn svc_table() -> Table {
        let mut t = Table::new(Family::Inet, "svc");
        let mut vm = Set::vmap(vec![
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
        ]);
        vm.insert(
            Value::Concat(vec![
                Value::Addr("10.0.0.10".parse().unwrap()),
                Value::Proto(L4Proto::Udp),
                Value::Port(53),
            ]),
            Element {
                data: Some(ElemData::Verdict(Verdict::Goto("svc-dns".into()))),
                ..Element::default()
            },
        );
        t.set("services", vm);
        t.chain(
            "pre",
            Chain::base(
                BaseChain::nat(Hook::Prerouting),
                vec![Rule::new([Stmt::Vmap {
                    key: Expr::Concat(vec![
                        Expr::Payload(Payload::IpDaddr),
                        Expr::Meta(MetaKey::L4Proto),
                        Expr::Payload(Payload::ThDport),
                    ]),
                    map: VmapRef::Named("services".into()),
                }])],
            ),
        );
        t.chain(
            "svc-dns",
            Chain::regular(vec![Rule::new([Stmt::Vmap {
                key: Expr::NumgenRandom {
                    modulus: 2,
                    offset: 0,
                },
                map: VmapRef::Anon(vec![
                    (Value::Int(0), Verdict::Goto("ep-a".into())),
                    (Value::Int(1), Verdict::Goto("ep-b".into())),
                ]),
            }])]),
        );
        t.chain(
            "ep-a",
            Chain::regular(vec![Rule::new([dnat(
                "10.244.0.5".parse().unwrap(),
                Some(53),
            )])]),
        );
        t.chain(
            "ep-b",
            Chain::regular(vec![Rule::new([dnat(
                "10.244.1.7".parse().unwrap(),
                Some(53),
            )])]),
        );
        t.chain(
            "fwd",
            Chain::base(
                BaseChain::filter(Hook::Forward).policy(Policy::Drop),
                vec![
                    Rule::new([
                        ct_state(&[CtState::Established, CtState::Related]),
                        accept(),
                    ]),
                    Rule::new([ct_status(CtStatus::Dnat), Stmt::Counter, accept()]),
                ],
            ),
        );
        t
    }

    #[test]
    fn a_service_packet_follows_the_vmap_and_numgen_to_its_endpoint() {
        let ruleset = [svc_table()];
        let p = Packet::udp("10.244.2.9", 40000, "10.0.0.10", 53)
            .iif("eth0")
            .random(1);
        let tr = trace(
            &ruleset,
            &Host::default(),
            &p,
            &[Hook::Prerouting, Hook::Forward],
        );
        assert_eq!(tr.verdict, Final::Accept);
        assert_eq!(tr.nat, vec!["dnat to 10.244.1.7:53"]);
        assert_eq!(tr.after.daddr, "10.244.1.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            tr.rules(),
            vec![
                "inet svc pre: ip daddr . meta l4proto . th dport vmap @services",
                "inet svc svc-dns: numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }",
                "inet svc ep-b: dnat to 10.244.1.7:53",
                "inet svc fwd: ct status dnat counter accept",
            ]
        );
        let other = trace(
            &ruleset,
            &Host::default(),
            &p.clone().random(4),
            &[Hook::Prerouting],
        );
        assert_eq!(other.nat, vec!["dnat to 10.244.0.5:53"]);
    }

    #[test]
    fn unmatched_traffic_meets_the_policy_and_established_skips_nat() {
        let ruleset = [svc_table()];
        let p = Packet::tcp("10.244.2.9", 40000, "10.0.0.99", 80);
        let tr = trace(
            &ruleset,
            &Host::default(),
            &p,
            &[Hook::Prerouting, Hook::Forward],
        );
        assert_eq!(tr.verdict, Final::Drop);
        assert!(tr.hits.is_empty());
        let est = Packet::udp("10.244.2.9", 40000, "10.0.0.10", 53).state(CtState::Established);
        let tr = trace(
            &ruleset,
            &Host::default(),
            &est,
            &[Hook::Prerouting, Hook::Forward],
        );
        assert!(tr.nat.is_empty(), "NAT chains see only new connections");
        assert_eq!(tr.verdict, Final::Accept);
        assert_eq!(
            tr.rules(),
            vec!["inet svc fwd: ct state established,related accept"]
        );
        assert_eq!(
            tr.to_string(),
            "packet udp 10.244.2.9:40000 -> 10.0.0.10:53 ct established\n  forward inet svc fwd rule 0: ct state established,related accept\nverdict accept\n"
        );
    }

    #[test]
    fn jumps_return_and_reject() {
        let mut t = Table::new(Family::Ip, "f");
        t.chain(
            "in",
            Chain::base(
                BaseChain::filter(Hook::Input),
                vec![
                    Rule::new([jump("check")]),
                    Rule::new([
                        l4proto(L4Proto::Tcp),
                        th_dport(22),
                        Stmt::Reject(crate::Reject::TcpReset),
                    ]),
                ],
            ),
        );
        t.chain(
            "check",
            Chain::regular(vec![
                Rule::new([saddr("10.0.0.0/8".parse().unwrap()), ret()]),
                Rule::new([drop()]),
            ]),
        );
        let ok = trace(
            &[t.clone()],
            &Host::default(),
            &Packet::tcp("10.1.1.1", 1, "10.2.2.2", 80),
            &[Hook::Input],
        );
        assert_eq!(ok.verdict, Final::Accept);
        let ssh = trace(
            &[t.clone()],
            &Host::default(),
            &Packet::tcp("10.1.1.1", 1, "10.2.2.2", 22),
            &[Hook::Input],
        );
        assert_eq!(ssh.verdict, Final::Reject);
        let out = trace(
            &[t],
            &Host::default(),
            &Packet::tcp("192.0.2.1", 1, "10.2.2.2", 80),
            &[Hook::Input],
        );
        assert_eq!(out.verdict, Final::Drop);
        assert_eq!(out.rules(), vec!["ip f in: jump check", "ip f check: drop"]);
    }
}
