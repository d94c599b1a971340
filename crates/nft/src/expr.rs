//! Rules as typed expressions and statements, with nft's text form
//! (`Display`) for dumps, traces and logs.

use std::fmt;
use std::net::IpAddr;

use crate::value::{CtState, CtStatus, FibType, L4Proto, Value};

/// A header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Payload {
    IpSaddr,
    IpDaddr,
    Ip6Saddr,
    Ip6Daddr,
    TcpSport,
    TcpDport,
    UdpSport,
    UdpDport,
    /// The transport header's source port, whatever the protocol (`th sport`).
    ThSport,
    /// `th dport`.
    ThDport,
}

impl Payload {
    /// `(protocol, field)` as nft names them.
    pub fn parts(self) -> (&'static str, &'static str) {
        match self {
            Payload::IpSaddr => ("ip", "saddr"),
            Payload::IpDaddr => ("ip", "daddr"),
            Payload::Ip6Saddr => ("ip6", "saddr"),
            Payload::Ip6Daddr => ("ip6", "daddr"),
            Payload::TcpSport => ("tcp", "sport"),
            Payload::TcpDport => ("tcp", "dport"),
            Payload::UdpSport => ("udp", "sport"),
            Payload::UdpDport => ("udp", "dport"),
            Payload::ThSport => ("th", "sport"),
            Payload::ThDport => ("th", "dport"),
        }
    }

    /// The field from its nft names.
    pub fn from_parts(protocol: &str, field: &str) -> Option<Payload> {
        Some(match (protocol, field) {
            ("ip", "saddr") => Payload::IpSaddr,
            ("ip", "daddr") => Payload::IpDaddr,
            ("ip6", "saddr") => Payload::Ip6Saddr,
            ("ip6", "daddr") => Payload::Ip6Daddr,
            ("tcp", "sport") => Payload::TcpSport,
            ("tcp", "dport") => Payload::TcpDport,
            ("udp", "sport") => Payload::UdpSport,
            ("udp", "dport") => Payload::UdpDport,
            ("th", "sport") => Payload::ThSport,
            ("th", "dport") => Payload::ThDport,
            _ => return None,
        })
    }

    /// The source address field of `addr`'s family.
    pub fn saddr(addr: &IpAddr) -> Payload {
        if addr.is_ipv4() {
            Payload::IpSaddr
        } else {
            Payload::Ip6Saddr
        }
    }

    /// The destination address field of `addr`'s family.
    pub fn daddr(addr: &IpAddr) -> Payload {
        if addr.is_ipv4() {
            Payload::IpDaddr
        } else {
            Payload::Ip6Daddr
        }
    }
}

/// A `meta` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaKey {
    L4Proto,
    IifName,
    OifName,
    Mark,
}

impl MetaKey {
    pub fn as_str(self) -> &'static str {
        match self {
            MetaKey::L4Proto => "l4proto",
            MetaKey::IifName => "iifname",
            MetaKey::OifName => "oifname",
            MetaKey::Mark => "mark",
        }
    }
}

/// A conntrack key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtKey {
    State,
    Status,
}

impl CtKey {
    pub fn as_str(self) -> &'static str {
        match self {
            CtKey::State => "state",
            CtKey::Status => "status",
        }
    }
}

/// What the left side of a match, a set lookup or a map lookup reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expr {
    Payload(Payload),
    Meta(MetaKey),
    Ct(CtKey),
    /// `fib daddr type` (the type of the destination address in the FIB).
    FibDaddrType,
    /// `numgen random mod N [offset O]`.
    NumgenRandom {
        modulus: u32,
        offset: u32,
    },
    /// `a . b . c`.
    Concat(Vec<Expr>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Eq,
    Ne,
}

/// What a match compares with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rhs {
    Value(Value),
    /// An anonymous set `{ a, b }`.
    Set(Vec<Value>),
    /// A named set `@name` of the same table.
    Named(String),
}

/// `left [!=] right`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    pub left: Expr,
    pub op: Op,
    pub right: Rhs,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(String),
    Goto(String),
}

impl Verdict {
    /// The chain a jump or goto names.
    pub fn target(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// `reject [with ...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// The family's default (ICMP port unreachable).
    Default,
    /// `reject with tcp reset`.
    TcpReset,
    /// `reject with icmpx admin-prohibited`.
    AdminProhibited,
}

/// `snat` or `dnat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatKind {
    Snat,
    Dnat,
}

/// `dnat|snat [ip|ip6] to ADDR[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nat {
    pub kind: NatKind,
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// The map of a verdict-map lookup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VmapRef {
    /// `@name`, a verdict map of the same table.
    Named(String),
    /// `{ key : verdict, ... }`.
    Anon(Vec<(Value, Verdict)>),
}

/// A statement of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stmt {
    Match(Match),
    /// An anonymous counter (its figures are the kernel's, never compared).
    Counter,
    /// `meta mark set MARK`.
    SetMark(u32),
    Nat(Nat),
    Masquerade,
    /// `KEY vmap MAP`: the verdict of the element the key finds (none: go on).
    Vmap {
        key: Expr,
        map: VmapRef,
    },
    Reject(Reject),
    Verdict(Verdict),
    /// `update @SET { KEY }`: adds the packet's key to a dynamic set, or
    /// refreshes its timeout (session affinity).
    SetUpdate {
        set: String,
        key: Expr,
    },
}

/// A rule: statements in order and an optional comment (at most 128 bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rule {
    pub stmts: Vec<Stmt>,
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of `stmts`.
    pub fn new(stmts: impl IntoIterator<Item = Stmt>) -> Rule {
        Rule {
            stmts: stmts.into_iter().collect(),
            comment: None,
        }
    }

    /// The same rule with a comment.
    pub fn comment(mut self, c: impl Into<String>) -> Rule {
        self.comment = Some(c.into());
        self
    }

    /// Chains this rule's verdicts (also in an anonymous verdict map) name.
    pub fn targets(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for s in &self.stmts {
            match s {
                Stmt::Verdict(v) => out.extend(v.target()),
                Stmt::Vmap {
                    map: VmapRef::Anon(items),
                    ..
                } => out.extend(items.iter().filter_map(|(_, v)| v.target())),
                _ => {}
            }
        }
        out
    }

    /// Named sets and maps this rule looks up.
    pub fn sets(&self) -> Vec<&str> {
        self.stmts
            .iter()
            .filter_map(|s| match s {
                Stmt::Match(Match {
                    right: Rhs::Named(n),
                    ..
                }) => Some(n.as_str()),
                Stmt::Vmap {
                    map: VmapRef::Named(n),
                    ..
                } => Some(n.as_str()),
                Stmt::SetUpdate { set, .. } => Some(set.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Builders for the statements owners write most.
pub mod build {
    use super::*;
    use ipnet::IpNet;

    /// `left == value`.
    pub fn eq(left: Expr, v: impl Into<Value>) -> Stmt {
        Stmt::Match(Match {
            left,
            op: Op::Eq,
            right: Rhs::Value(v.into()),
        })
    }

    /// `left != value`.
    pub fn ne(left: Expr, v: impl Into<Value>) -> Stmt {
        Stmt::Match(Match {
            left,
            op: Op::Ne,
            right: Rhs::Value(v.into()),
        })
    }

    /// `left { a, b }`.
    pub fn any_of(left: Expr, vs: impl IntoIterator<Item = Value>) -> Stmt {
        Stmt::Match(Match {
            left,
            op: Op::Eq,
            right: Rhs::Set(vs.into_iter().collect()),
        })
    }

    /// `left @set`.
    pub fn in_set(left: Expr, set: &str) -> Stmt {
        Stmt::Match(Match {
            left,
            op: Op::Eq,
            right: Rhs::Named(set.to_string()),
        })
    }

    /// `left != @set`.
    pub fn not_in_set(left: Expr, set: &str) -> Stmt {
        Stmt::Match(Match {
            left,
            op: Op::Ne,
            right: Rhs::Named(set.to_string()),
        })
    }

    /// `ip[6] saddr NET`.
    pub fn saddr(n: IpNet) -> Stmt {
        eq(Expr::Payload(Payload::saddr(&n.addr())), Value::net(n))
    }

    /// `ip[6] daddr NET`.
    pub fn daddr(n: IpNet) -> Stmt {
        eq(Expr::Payload(Payload::daddr(&n.addr())), Value::net(n))
    }

    /// `ip[6] daddr != NET`.
    pub fn daddr_ne(n: IpNet) -> Stmt {
        ne(Expr::Payload(Payload::daddr(&n.addr())), Value::net(n))
    }

    /// `meta l4proto P`.
    pub fn l4proto(p: L4Proto) -> Stmt {
        eq(Expr::Meta(MetaKey::L4Proto), p)
    }

    /// `th dport PORT` (give the protocol first with [`l4proto`]).
    pub fn th_dport(port: u16) -> Stmt {
        eq(Expr::Payload(Payload::ThDport), Value::Port(port))
    }

    /// `meta l4proto P th dport PORT`, the protocol-safe form of `tcp dport`.
    pub fn proto_dport(p: L4Proto, port: u16) -> [Stmt; 2] {
        [l4proto(p), th_dport(port)]
    }

    /// `iifname NAME` (`n*` for a prefix).
    pub fn iifname(n: &str) -> Stmt {
        eq(Expr::Meta(MetaKey::IifName), Value::IfName(n.to_string()))
    }

    /// `oifname NAME`.
    pub fn oifname(n: &str) -> Stmt {
        eq(Expr::Meta(MetaKey::OifName), Value::IfName(n.to_string()))
    }

    /// `meta mark M`.
    pub fn mark(m: u32) -> Stmt {
        eq(Expr::Meta(MetaKey::Mark), Value::Mark(m))
    }

    /// `ct state S1,S2`.
    pub fn ct_state(states: &[CtState]) -> Stmt {
        eq(Expr::Ct(CtKey::State), Value::CtStates(states.to_vec()))
    }

    /// `ct status dnat`.
    pub fn ct_status(s: CtStatus) -> Stmt {
        eq(Expr::Ct(CtKey::Status), Value::CtStatus(vec![s]))
    }

    /// `fib daddr type local`.
    pub fn fib_daddr_local() -> Stmt {
        eq(Expr::FibDaddrType, Value::Fib(FibType::Local))
    }

    pub fn accept() -> Stmt {
        Stmt::Verdict(Verdict::Accept)
    }
    pub fn drop() -> Stmt {
        Stmt::Verdict(Verdict::Drop)
    }
    pub fn ret() -> Stmt {
        Stmt::Verdict(Verdict::Return)
    }
    pub fn jump(c: &str) -> Stmt {
        Stmt::Verdict(Verdict::Jump(c.to_string()))
    }
    pub fn goto(c: &str) -> Stmt {
        Stmt::Verdict(Verdict::Goto(c.to_string()))
    }
    pub fn snat(addr: IpAddr) -> Stmt {
        Stmt::Nat(Nat {
            kind: NatKind::Snat,
            addr,
            port: None,
        })
    }
    pub fn dnat(addr: IpAddr, port: Option<u16>) -> Stmt {
        Stmt::Nat(Nat {
            kind: NatKind::Dnat,
            addr,
            port,
        })
    }
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T], sep: &str) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{x}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Payload(p) => {
                let (proto, field) = p.parts();
                write!(f, "{proto} {field}")
            }
            Expr::Meta(k @ (MetaKey::IifName | MetaKey::OifName | MetaKey::L4Proto)) => {
                if *k == MetaKey::L4Proto {
                    f.write_str("meta l4proto")
                } else {
                    f.write_str(k.as_str())
                }
            }
            Expr::Meta(k) => write!(f, "meta {}", k.as_str()),
            Expr::Ct(k) => write!(f, "ct {}", k.as_str()),
            Expr::FibDaddrType => f.write_str("fib daddr type"),
            Expr::NumgenRandom { modulus, offset } => {
                write!(f, "numgen random mod {modulus}")?;
                if *offset != 0 {
                    write!(f, " offset {offset}")?;
                }
                Ok(())
            }
            Expr::Concat(v) => join(f, v, " . "),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Continue => f.write_str("continue"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

impl fmt::Display for Rhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rhs::Value(v) => write!(f, "{v}"),
            Rhs::Set(vs) => {
                f.write_str("{ ")?;
                join(f, vs, ", ")?;
                f.write_str(" }")
            }
            Rhs::Named(n) => write!(f, "@{n}"),
        }
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Match(m) => {
                let op = match m.op {
                    Op::Eq => "",
                    Op::Ne => "!= ",
                };
                write!(f, "{} {op}{}", m.left, m.right)
            }
            Stmt::Counter => f.write_str("counter"),
            Stmt::SetMark(m) => write!(f, "meta mark set {m:#x}"),
            Stmt::Nat(n) => {
                let kind = match n.kind {
                    NatKind::Snat => "snat",
                    NatKind::Dnat => "dnat",
                };
                match (n.addr, n.port) {
                    (IpAddr::V6(a), Some(p)) => write!(f, "{kind} to [{a}]:{p}"),
                    (a, Some(p)) => write!(f, "{kind} to {a}:{p}"),
                    (a, None) => write!(f, "{kind} to {a}"),
                }
            }
            Stmt::Masquerade => f.write_str("masquerade"),
            Stmt::SetUpdate { set, key } => write!(f, "update @{set} {{ {key} }}"),
            Stmt::Vmap { key, map } => match map {
                VmapRef::Named(n) => write!(f, "{key} vmap @{n}"),
                VmapRef::Anon(items) => {
                    write!(f, "{key} vmap {{ ")?;
                    for (i, (k, v)) in items.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{k} : {v}")?;
                    }
                    f.write_str(" }")
                }
            },
            Stmt::Reject(Reject::Default) => f.write_str("reject"),
            Stmt::Reject(Reject::TcpReset) => f.write_str("reject with tcp reset"),
            Stmt::Reject(Reject::AdminProhibited) => {
                f.write_str("reject with icmpx admin-prohibited")
            }
            Stmt::Verdict(v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, &self.stmts, " ")?;
        if let Some(c) = &self.comment {
            if !self.stmts.is_empty() {
                f.write_str(" ")?;
            }
            write!(f, "comment \"{c}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn rules_print_as_nft_writes_them() {
        let r = Rule::new([
            saddr("10.244.0.0/24".parse().unwrap()),
            daddr_ne("10.244.0.0/16".parse().unwrap()),
            l4proto(L4Proto::Tcp),
            th_dport(80),
            iifname("n*"),
            ct_state(&[CtState::Established, CtState::Related]),
            Stmt::Counter,
            snat("10.224.0.4".parse().unwrap()),
        ])
        .comment("x");
        assert_eq!(
            r.to_string(),
            "ip saddr 10.244.0.0/24 ip daddr != 10.244.0.0/16 meta l4proto tcp th dport 80 iifname \"n*\" ct state established,related counter snat to 10.224.0.4 comment \"x\""
        );
        let lb = Rule::new([Stmt::Vmap {
            key: Expr::NumgenRandom {
                modulus: 2,
                offset: 0,
            },
            map: VmapRef::Anon(vec![
                (Value::Int(0), Verdict::Goto("ep-a".into())),
                (Value::Int(1), Verdict::Goto("ep-b".into())),
            ]),
        }]);
        assert_eq!(
            lb.to_string(),
            "numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }"
        );
        assert_eq!(lb.targets(), vec!["ep-a", "ep-b"]);
        let look = Rule::new([
            in_set(
                Expr::Concat(vec![
                    Expr::Payload(Payload::IpDaddr),
                    Expr::Meta(MetaKey::L4Proto),
                    Expr::Payload(Payload::ThDport),
                ]),
                "svc",
            ),
            dnat("10.244.1.5".parse().unwrap(), Some(8080)),
        ]);
        assert_eq!(
            look.to_string(),
            "ip daddr . meta l4proto . th dport @svc dnat to 10.244.1.5:8080"
        );
        assert_eq!(look.sets(), vec!["svc"]);
    }
}
