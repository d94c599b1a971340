//! Tables, chains, sets and maps: the desired state an owner renders.

use std::collections::BTreeMap;
use std::fmt;

use crate::expr::{Rule, Verdict};
use crate::value::Value;

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    Bridge,
    Netdev,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Some(match s {
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "inet" => Family::Inet,
            "bridge" => Family::Bridge,
            "netdev" => Family::Netdev,
            _ => return None,
        })
    }

    /// The single-address family for an address (`ip` or `ip6`).
    pub fn of(addr: &std::net::IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::Ip
        } else {
            Family::Ip6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A table's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub family: Family,
    pub name: String,
}

impl TableId {
    pub fn new(family: Family, name: &str) -> TableId {
        TableId {
            family,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    /// netdev (and inet) ingress: needs a device.
    Ingress,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
            Hook::Ingress => "ingress",
        }
    }

    pub fn parse(s: &str) -> Option<Hook> {
        Some(match s {
            "prerouting" => Hook::Prerouting,
            "input" => Hook::Input,
            "forward" => Hook::Forward,
            "output" => Hook::Output,
            "postrouting" => Hook::Postrouting,
            "ingress" => Hook::Ingress,
            _ => return None,
        })
    }
}

/// Standard priorities (nft's names).
pub mod priority {
    pub const RAW: i32 = -300;
    pub const MANGLE: i32 = -150;
    pub const DSTNAT: i32 = -100;
    pub const FILTER: i32 = 0;
    pub const SECURITY: i32 = 50;
    pub const SRCNAT: i32 = 100;
}

/// A base chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
    /// The device of a netdev ingress chain.
    pub device: Option<String>,
}

impl BaseChain {
    /// A base chain, policy accept.
    pub fn new(kind: ChainType, hook: Hook, priority: i32) -> BaseChain {
        BaseChain {
            kind,
            hook,
            priority,
            policy: Policy::Accept,
            device: None,
        }
    }

    /// A NAT chain with the usual priority for its hook (dstnat before
    /// routing, srcnat after).
    pub fn nat(hook: Hook) -> BaseChain {
        let p = match hook {
            Hook::Postrouting | Hook::Input => priority::SRCNAT,
            _ => priority::DSTNAT,
        };
        BaseChain::new(ChainType::Nat, hook, p)
    }

    /// A filter chain at priority filter.
    pub fn filter(hook: Hook) -> BaseChain {
        BaseChain::new(ChainType::Filter, hook, priority::FILTER)
    }

    /// The same chain with another policy.
    pub fn policy(mut self, p: Policy) -> BaseChain {
        self.policy = p;
        self
    }
}

/// A chain: base (hooked) or regular (reached by jump/goto), and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

impl Chain {
    /// A regular chain.
    pub fn regular(rules: Vec<Rule>) -> Chain {
        Chain { base: None, rules }
    }

    /// A base chain.
    pub fn base(base: BaseChain, rules: Vec<Rule>) -> Chain {
        Chain {
            base: Some(base),
            rules,
        }
    }
}

/// The type of one part of a set's key or a map's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    Ipv4Addr,
    Ipv6Addr,
    InetProto,
    InetService,
    IfName,
    Mark,
    /// A plain 32-bit integer (`integer` keys, e.g. numgen results).
    Integer,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ipv4Addr => "ipv4_addr",
            KeyType::Ipv6Addr => "ipv6_addr",
            KeyType::InetProto => "inet_proto",
            KeyType::InetService => "inet_service",
            KeyType::IfName => "ifname",
            KeyType::Mark => "mark",
            KeyType::Integer => "integer",
        }
    }

    pub fn parse(s: &str) -> Option<KeyType> {
        Some(match s {
            "ipv4_addr" => KeyType::Ipv4Addr,
            "ipv6_addr" => KeyType::Ipv6Addr,
            "inet_proto" => KeyType::InetProto,
            "inet_service" => KeyType::InetService,
            "ifname" => KeyType::IfName,
            "mark" => KeyType::Mark,
            "integer" => KeyType::Integer,
            _ => return None,
        })
    }

    /// Is `v` (one part of a key) of this type?
    pub fn admits(self, v: &Value) -> bool {
        match (self, v) {
            (KeyType::Ipv4Addr, Value::Addr(a)) => a.is_ipv4(),
            (KeyType::Ipv4Addr, Value::Net(n)) => n.addr().is_ipv4(),
            (KeyType::Ipv4Addr, Value::AddrRange(a, b)) => a.is_ipv4() && b.is_ipv4(),
            (KeyType::Ipv6Addr, Value::Addr(a)) => a.is_ipv6(),
            (KeyType::Ipv6Addr, Value::Net(n)) => n.addr().is_ipv6(),
            (KeyType::Ipv6Addr, Value::AddrRange(a, b)) => a.is_ipv6() && b.is_ipv6(),
            (KeyType::InetProto, Value::Proto(_)) => true,
            (KeyType::InetService, Value::Port(_) | Value::PortRange(..)) => true,
            (KeyType::IfName, Value::IfName(_)) => true,
            (KeyType::Mark, Value::Mark(_)) => true,
            (KeyType::Integer, Value::Int(_)) => true,
            _ => false,
        }
    }
}

/// Set flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SetFlags {
    /// Elements may be prefixes and ranges.
    pub interval: bool,
    /// Elements may expire.
    pub timeout: bool,
    /// Elements may not change after creation.
    pub constant: bool,
}

/// What a map maps to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapData {
    /// A verdict map.
    Verdict,
    /// Values of these (concatenated) types.
    Values(Vec<KeyType>),
}

/// The data of one map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElemData {
    Verdict(Verdict),
    Value(Value),
}

impl fmt::Display for ElemData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemData::Verdict(v) => write!(f, "{v}"),
            ElemData::Value(v) => write!(f, "{v}"),
        }
    }
}

/// One element's attributes besides its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Element {
    /// A map element's data (`None` in a set).
    pub data: Option<ElemData>,
    /// Seconds to live, in a timeout set (the set's default when `None`).
    pub timeout: Option<u32>,
    pub comment: Option<String>,
}

/// A named set, or a map when `data` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Set {
    /// The key's types; more than one is a concatenation.
    pub key: Vec<KeyType>,
    pub data: Option<MapData>,
    pub flags: SetFlags,
    /// The default timeout of a timeout set, in seconds.
    pub timeout: Option<u32>,
    pub elements: BTreeMap<Value, Element>,
}

impl Set {
    /// A set of `key` without flags.
    pub fn new(key: Vec<KeyType>) -> Set {
        Set {
            key,
            ..Set::default()
        }
    }

    /// A verdict map keyed by `key`.
    pub fn vmap(key: Vec<KeyType>) -> Set {
        Set {
            key,
            data: Some(MapData::Verdict),
            ..Set::default()
        }
    }

    /// The same set with the interval flag.
    pub fn interval(mut self) -> Set {
        self.flags.interval = true;
        self
    }

    /// A timeout set the owner declares empty: its elements are added from
    /// the packet path (`update @set { … }`, e.g. session affinity), so a
    /// listing's elements are the kernel's own and are never compared,
    /// flushed or removed.
    pub fn filled_by_packets(&self) -> bool {
        self.flags.timeout && self.elements.is_empty() && self.data.is_none()
    }

    /// The same set with the timeout flag and a default timeout.
    pub fn with_timeout(mut self, secs: u32) -> Set {
        self.flags.timeout = true;
        self.timeout = Some(secs);
        self
    }

    /// The same set with an element added.
    pub fn elem(mut self, key: impl Into<Value>) -> Set {
        self.elements.insert(key.into(), Element::default());
        self
    }

    /// Adds an element (a map element when `data` is given).
    pub fn insert(&mut self, key: Value, e: Element) {
        self.elements.insert(key, e);
    }

    /// The declaration alone (no elements): what `add set` carries.
    pub fn declaration(&self) -> Set {
        Set {
            elements: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// Is this a map (or a verdict map)?
    pub fn is_map(&self) -> bool {
        self.data.is_some()
    }
}

/// A table: what one owner owns, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, Set>,
}

impl Table {
    pub fn new(family: Family, name: &str) -> Table {
        Table {
            family,
            name: name.to_string(),
            chains: BTreeMap::new(),
            sets: BTreeMap::new(),
        }
    }

    pub fn id(&self) -> TableId {
        TableId::new(self.family, &self.name)
    }

    /// Adds (or replaces) a chain.
    pub fn chain(&mut self, name: &str, c: Chain) -> &mut Table {
        self.chains.insert(name.to_string(), c);
        self
    }

    /// Adds (or replaces) a set or map.
    pub fn set(&mut self, name: &str, s: Set) -> &mut Table {
        self.sets.insert(name.to_string(), s);
        self
    }

    /// Number of rules and set/map elements: the objects an owner programs.
    pub fn objects(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum::<usize>()
            + self.sets.values().map(|s| s.elements.len()).sum::<usize>()
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, name: &str, s: &Set) -> fmt::Result {
    let types = |t: &[KeyType]| t.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" . ");
    let kw = if s.is_map() { "map" } else { "set" };
    writeln!(f, "\t{kw} {name} {{")?;
    match &s.data {
        None => writeln!(f, "\t\ttype {}", types(&s.key))?,
        Some(MapData::Verdict) => writeln!(f, "\t\ttype {} : verdict", types(&s.key))?,
        Some(MapData::Values(d)) => writeln!(f, "\t\ttype {} : {}", types(&s.key), types(d))?,
    }
    let mut flags = Vec::new();
    if s.flags.constant {
        flags.push("constant");
    }
    if s.flags.interval {
        flags.push("interval");
    }
    if s.flags.timeout {
        flags.push("timeout");
    }
    if !flags.is_empty() {
        writeln!(f, "\t\tflags {}", flags.join(","))?;
    }
    if let Some(t) = s.timeout {
        writeln!(f, "\t\ttimeout {t}s")?;
    }
    if !s.elements.is_empty() {
        let items: Vec<String> = s
            .elements
            .iter()
            .map(|(k, e)| {
                let mut x = k.to_string();
                if let Some(t) = e.timeout {
                    x.push_str(&format!(" timeout {t}s"));
                }
                if let Some(c) = &e.comment {
                    x.push_str(&format!(" comment \"{c}\""));
                }
                if let Some(d) = &e.data {
                    x.push_str(&format!(" : {d}"));
                }
                x
            })
            .collect();
        writeln!(f, "\t\telements = {{ {} }}", items.join(",\n\t\t\t     "))?;
    }
    writeln!(f, "\t}}")
}

/// nft's name for a standard priority, as `nft list` prints it.
fn priority_name(p: i32) -> String {
    let named = [
        (crate::priority::RAW, "raw"),
        (crate::priority::MANGLE, "mangle"),
        (crate::priority::DSTNAT, "dstnat"),
        (crate::priority::FILTER, "filter"),
        (crate::priority::SECURITY, "security"),
        (crate::priority::SRCNAT, "srcnat"),
    ];
    named
        .iter()
        .find(|(v, _)| *v == p)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| p.to_string())
}

/// `nft list table` text: sets, then chains, each in name order.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table {} {} {{", self.family, self.name)?;
        for (name, s) in &self.sets {
            write_set(f, name, s)?;
        }
        for (name, c) in &self.chains {
            writeln!(f, "\tchain {name} {{")?;
            if let Some(b) = &c.base {
                let dev = b
                    .device
                    .as_ref()
                    .map(|d| format!(" device \"{d}\""))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "\t\ttype {} hook {}{dev} priority {}; policy {};",
                    b.kind.as_str(),
                    b.hook.as_str(),
                    priority_name(b.priority),
                    b.policy.as_str()
                )?;
            }
            for r in &c.rules {
                writeln!(f, "\t\t{r}")?;
            }
            writeln!(f, "\t}}")?;
        }
        writeln!(f, "}}")
    }
}
