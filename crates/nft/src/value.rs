//! Values: what the right-hand side of a match, a set element's key and a
//! map's data are made of.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A layer-4 protocol (`meta l4proto`, `inet_proto` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
}

impl L4Proto {
    /// The name nft uses.
    pub fn as_str(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
            L4Proto::Icmp => "icmp",
            L4Proto::Icmpv6 => "ipv6-icmp",
        }
    }

    /// Parses nft's name (also `icmpv6`).
    pub fn parse(s: &str) -> Option<L4Proto> {
        Some(match s {
            "tcp" => L4Proto::Tcp,
            "udp" => L4Proto::Udp,
            "sctp" => L4Proto::Sctp,
            "icmp" => L4Proto::Icmp,
            "ipv6-icmp" | "icmpv6" => L4Proto::Icmpv6,
            _ => return None,
        })
    }

    /// True for protocols with ports (what `th dport` reads).
    pub fn has_ports(self) -> bool {
        matches!(self, L4Proto::Tcp | L4Proto::Udp | L4Proto::Sctp)
    }
}

/// A conntrack state (`ct state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtState {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
}

impl CtState {
    pub fn as_str(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        }
    }
}

/// A conntrack status bit (`ct status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtStatus {
    Dnat,
    Snat,
}

impl CtStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CtStatus::Dnat => "dnat",
            CtStatus::Snat => "snat",
        }
    }
}

/// An address type as `fib ... type` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FibType {
    Local,
    Unicast,
    Broadcast,
    Multicast,
}

impl FibType {
    pub fn as_str(self) -> &'static str {
        match self {
            FibType::Local => "local",
            FibType::Unicast => "unicast",
            FibType::Broadcast => "broadcast",
            FibType::Multicast => "multicast",
        }
    }
}

/// A value. Concatenations (`a . b`) are [`Value::Concat`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// One address.
    Addr(IpAddr),
    /// A prefix (a host prefix is the same as [`Value::Addr`] and is
    /// normalised to it by [`Value::net`]).
    Net(IpNet),
    /// An inclusive address range.
    AddrRange(IpAddr, IpAddr),
    /// A port.
    Port(u16),
    /// An inclusive port range.
    PortRange(u16, u16),
    /// A layer-4 protocol.
    Proto(L4Proto),
    /// An interface name; a trailing `*` matches every name with that prefix.
    IfName(String),
    /// A packet mark.
    Mark(u32),
    /// A plain integer (e.g. what `numgen` yields).
    Int(u32),
    /// Conntrack states (a flag set: matches when any is set).
    CtStates(Vec<CtState>),
    /// Conntrack status bits.
    CtStatus(Vec<CtStatus>),
    /// A `fib` address type.
    Fib(FibType),
    /// A concatenation.
    Concat(Vec<Value>),
}

impl Value {
    /// A prefix, as an address when it is a host prefix (how nft lists it).
    pub fn net(n: IpNet) -> Value {
        let n = n.trunc();
        if n.prefix_len() == n.max_prefix_len() {
            Value::Addr(n.addr())
        } else {
            Value::Net(n)
        }
    }

    /// True for a value that covers more than one point (needs an interval set).
    pub fn is_interval(&self) -> bool {
        match self {
            Value::Net(_) | Value::AddrRange(..) | Value::PortRange(..) => true,
            Value::Concat(v) => v.iter().any(Value::is_interval),
            _ => false,
        }
    }

    /// Does the point `v` fall in this value (a prefix contains an address,
    /// a range its members, a flag set any of its flags, otherwise equality)?
    pub fn covers(&self, v: &Value) -> bool {
        match (self, v) {
            (Value::Net(n), Value::Addr(a)) => n.contains(a),
            (Value::Net(n), Value::Net(m)) => n.contains(m),
            (Value::AddrRange(lo, hi), Value::Addr(a)) => {
                lo.is_ipv4() == a.is_ipv4() && lo <= a && a <= hi
            }
            (Value::PortRange(lo, hi), Value::Port(p)) => lo <= p && p <= hi,
            (Value::IfName(pat), Value::IfName(name)) => match pat.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pat == name,
            },
            (Value::CtStates(want), Value::CtStates(have)) => want.iter().any(|s| have.contains(s)),
            (Value::CtStatus(want), Value::CtStatus(have)) => want.iter().any(|s| have.contains(s)),
            (Value::Concat(a), Value::Concat(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.covers(y))
            }
            (a, b) => a == b,
        }
    }

    /// Do two (interval) values share a point? Used for interval sets,
    /// where the kernel refuses overlapping elements.
    pub fn overlaps(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Concat(a), Value::Concat(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.overlaps(y))
            }
            _ => {
                let (Some((a0, a1)), Some((b0, b1))) = (self.bounds(), other.bounds()) else {
                    return self == other;
                };
                a0 <= b1 && b0 <= a1
            }
        }
    }

    /// Inclusive bounds of an address or port value, as comparable keys.
    fn bounds(&self) -> Option<(Bound, Bound)> {
        match self {
            Value::Addr(a) => Some((Bound::Ip(*a), Bound::Ip(*a))),
            Value::Net(n) => Some((Bound::Ip(n.network()), Bound::Ip(n.broadcast()))),
            Value::AddrRange(lo, hi) => Some((Bound::Ip(*lo), Bound::Ip(*hi))),
            Value::Port(p) => Some((Bound::Port(*p), Bound::Port(*p))),
            Value::PortRange(lo, hi) => Some((Bound::Port(*lo), Bound::Port(*hi))),
            _ => None,
        }
    }
}

#[derive(PartialEq, PartialOrd)]
enum Bound {
    Ip(IpAddr),
    Port(u16),
}

impl From<IpAddr> for Value {
    fn from(a: IpAddr) -> Value {
        Value::Addr(a)
    }
}

impl From<IpNet> for Value {
    fn from(n: IpNet) -> Value {
        Value::net(n)
    }
}

impl From<ipnet::Ipv4Net> for Value {
    fn from(n: ipnet::Ipv4Net) -> Value {
        Value::net(IpNet::V4(n))
    }
}

impl From<std::net::Ipv4Addr> for Value {
    fn from(a: std::net::Ipv4Addr) -> Value {
        Value::Addr(IpAddr::V4(a))
    }
}

impl From<L4Proto> for Value {
    fn from(p: L4Proto) -> Value {
        Value::Proto(p)
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

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Addr(a) => write!(f, "{a}"),
            Value::Net(n) => write!(f, "{n}"),
            Value::AddrRange(a, b) => write!(f, "{a}-{b}"),
            Value::Port(p) => write!(f, "{p}"),
            Value::PortRange(a, b) => write!(f, "{a}-{b}"),
            Value::Proto(p) => f.write_str(p.as_str()),
            Value::IfName(n) => write!(f, "\"{n}\""),
            Value::Mark(m) => write!(f, "{m:#x}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::CtStates(s) => {
                let names: Vec<&str> = s.iter().map(|s| s.as_str()).collect();
                f.write_str(&names.join(","))
            }
            Value::CtStatus(s) => {
                let names: Vec<&str> = s.iter().map(|s| s.as_str()).collect();
                f.write_str(&names.join(","))
            }
            Value::Fib(t) => f.write_str(t.as_str()),
            Value::Concat(v) => join(f, v, " . "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        Value::net(s.parse().unwrap())
    }

    #[test]
    fn host_prefixes_are_addresses_and_coverage_follows_prefixes() {
        assert_eq!(v("10.0.0.5/32"), Value::Addr("10.0.0.5".parse().unwrap()));
        assert_eq!(v("10.0.0.5/24"), Value::Net("10.0.0.0/24".parse().unwrap()));
        assert!(v("10.0.0.0/24").covers(&v("10.0.0.9/32")));
        assert!(!v("10.0.0.0/24").covers(&v("10.0.1.9/32")));
        assert!(Value::IfName("n*".into()).covers(&Value::IfName("n12".into())));
        assert!(!Value::IfName("n*".into()).covers(&Value::IfName("vm".into())));
        assert!(Value::IfName("eth0".into()).covers(&Value::IfName("eth0".into())));
        assert!(Value::PortRange(80, 90).covers(&Value::Port(85)));
    }

    #[test]
    fn overlap_of_intervals_and_concatenations() {
        assert!(v("10.0.0.0/8").overlaps(&v("10.1.0.0/16")));
        assert!(!v("10.0.0.0/16").overlaps(&v("10.1.0.0/16")));
        let a = Value::Concat(vec![v("10.0.0.0/8"), Value::Port(80)]);
        let b = Value::Concat(vec![v("10.2.0.0/16"), Value::Port(80)]);
        let c = Value::Concat(vec![v("10.2.0.0/16"), Value::Port(81)]);
        assert!(a.overlaps(&b) && !a.overlaps(&c));
        assert_eq!(a.to_string(), "10.0.0.0/8 . 80");
        assert!(a.is_interval() && !Value::Port(1).is_interval());
    }
}
