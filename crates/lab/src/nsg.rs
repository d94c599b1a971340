//! Network security group rules on the node subnet, as Azure evaluates them:
//! per direction, lowest priority number first, first match wins, stateful
//! (replies of an allowed flow pass), then the default rules
//! (AllowVnetInBound / DenyAllInBound, AllowVnetOutBound /
//! AllowInternetOutBound). Rendered as nftables chains of the fabric
//! ([`chains`], typed [`aksnet_nft`] data). Pure.

use std::str::FromStr;

use aksnet_nft::build::{any_of, daddr, drop, l4proto, ret, saddr, th_dport};
use aksnet_nft::{Chain, Expr, L4Proto, MetaKey, Rule, Stmt, Value};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

macro_rules! from_str {
    ($t:ty, $what:literal, $($s:literal => $v:expr),+) => {
        // `$what` carries its article ("a direction", "an access").
        impl FromStr for $t {
            type Err = LabError;
            fn from_str(s: &str) -> Result<Self> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($v),)+
                    _ => Err(LabError::Invalid(format!(
                        concat!("'{}' is not ", $what, "; use {}"),
                        s,
                        [$($s),+].join(" or ")
                    ))),
                }
            }
        }
    };
}
from_str!(Direction, "a direction", "inbound" => Direction::Inbound, "outbound" => Direction::Outbound);
from_str!(Access, "an access", "allow" => Access::Allow, "deny" => Access::Deny);
from_str!(Protocol, "a protocol", "tcp" => Protocol::Tcp, "udp" => Protocol::Udp);

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// A user rule. Absent fields mean "any" (Azure's `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsgRule {
    pub priority: u16,
    pub direction: Direction,
    pub access: Access,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Azure's range for user rules.
pub const MIN_PRIORITY: u16 = 100;
pub const MAX_PRIORITY: u16 = 4096;

/// A rule as `nsg list` shows it (user and default rules alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedRule {
    pub priority: u32,
    pub name: String,
    pub direction: Direction,
    pub access: Access,
    pub source: String,
    pub destination: String,
    pub port: String,
    pub protocol: String,
    pub default: bool,
}

impl NsgRule {
    pub fn validate(&self) -> Result<()> {
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&self.priority) {
            return Err(LabError::Invalid(format!(
                "--priority {} is outside Azure's range for rules, {MIN_PRIORITY} to {MAX_PRIORITY}",
                self.priority
            )));
        }
        if self.port == Some(0) {
            return Err(LabError::Invalid(
                "--port 0 is not a port; use 1 to 65535".into(),
            ));
        }
        Ok(())
    }

    pub fn name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.access.as_str(),
            self.direction.as_str(),
            self.priority
        )
    }

    /// The rule's matches.
    fn matches(&self) -> Vec<Stmt> {
        let mut m = Vec::new();
        if let Some(src) = self.source {
            m.push(saddr(src.trunc().into()));
        }
        if let Some(d) = self.destination {
            m.push(daddr(d.trunc().into()));
        }
        let l4 = |p: Protocol| match p {
            Protocol::Tcp => L4Proto::Tcp,
            Protocol::Udp => L4Proto::Udp,
        };
        match (self.protocol, self.port) {
            (Some(p), Some(port)) => m.extend([l4proto(l4(p)), th_dport(port)]),
            (Some(p), None) => m.push(l4proto(l4(p))),
            (None, Some(port)) => m.extend([
                any_of(
                    Expr::Meta(MetaKey::L4Proto),
                    [Value::Proto(L4Proto::Tcp), Value::Proto(L4Proto::Udp)],
                ),
                th_dport(port),
            ]),
            (None, None) => {}
        }
        m
    }

    /// The nftables rule: an allow returns (the packet goes on, to the
    /// other direction's rules and then to its NIC), a deny drops.
    pub fn rule(&self) -> Rule {
        let mut stmts = self.matches();
        stmts.push(match self.access {
            Access::Allow => ret(),
            Access::Deny => drop(),
        });
        Rule::new(stmts).comment(self.name())
    }

    pub fn listed(&self) -> ListedRule {
        let any = |o: Option<String>| o.unwrap_or_else(|| "*".into());
        ListedRule {
            priority: u32::from(self.priority),
            name: self.name(),
            direction: self.direction,
            access: self.access,
            source: any(self.source.map(|s| s.to_string())),
            destination: any(self.destination.map(|s| s.to_string())),
            port: any(self.port.map(|p| p.to_string())),
            protocol: any(self.protocol.map(|p| p.as_str().to_string())),
            default: false,
        }
    }
}

/// Adds a rule; Azure refuses two rules of one direction with one priority.
pub fn add(rules: &mut Vec<NsgRule>, rule: NsgRule) -> Result<()> {
    rule.validate()?;
    if rules
        .iter()
        .any(|r| r.direction == rule.direction && r.priority == rule.priority)
    {
        return Err(LabError::Invalid(format!(
            "an {} rule with priority {} already exists; remove it first or choose another priority",
            rule.direction.as_str(),
            rule.priority
        )));
    }
    rules.push(rule);
    rules.sort_by_key(|r| (r.direction, r.priority));
    Ok(())
}

/// Removes the rule of `direction` and `priority`.
pub fn remove(rules: &mut Vec<NsgRule>, direction: Direction, priority: u16) -> Result<NsgRule> {
    match rules
        .iter()
        .position(|r| r.direction == direction && r.priority == priority)
    {
        Some(i) => Ok(rules.remove(i)),
        None => Err(LabError::Invalid(format!(
            "no {} rule with priority {priority}; `aksnet lab nsg list` shows the rules",
            direction.as_str()
        ))),
    }
}

/// The user rules then Azure's defaults, in evaluation order per direction.
/// `vnet` is what the VirtualNetwork service tag covers here.
pub fn listing(rules: &[NsgRule], vnet: &[Ipv4Net]) -> Vec<ListedRule> {
    let vnet_s = vnet
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut out = vec![];
    for dir in [Direction::Inbound, Direction::Outbound] {
        let mut user: Vec<&NsgRule> = rules.iter().filter(|r| r.direction == dir).collect();
        user.sort_by_key(|r| r.priority);
        out.extend(user.into_iter().map(NsgRule::listed));
        let d = |priority, name: &str, access, source: &str, destination: &str| ListedRule {
            priority,
            name: name.to_string(),
            direction: dir,
            access,
            source: source.to_string(),
            destination: destination.to_string(),
            port: "*".into(),
            protocol: "*".into(),
            default: true,
        };
        match dir {
            Direction::Inbound => {
                out.push(d(
                    65000,
                    "AllowVnetInBound",
                    Access::Allow,
                    &vnet_s,
                    &vnet_s,
                ));
                out.push(d(65500, "DenyAllInBound", Access::Deny, "*", "*"));
            }
            Direction::Outbound => {
                out.push(d(
                    65000,
                    "AllowVnetOutBound",
                    Access::Allow,
                    &vnet_s,
                    &vnet_s,
                ));
                out.push(d(
                    65001,
                    "AllowInternetOutBound",
                    Access::Allow,
                    "*",
                    "Internet",
                ));
                out.push(d(65500, "DenyAllOutBound", Access::Deny, "*", "*"));
            }
        }
    }
    out
}

/// The chain of inbound rules.
pub const IN_CHAIN: &str = "nsg_in";
/// The chain of outbound rules.
pub const OUT_CHAIN: &str = "nsg_out";

/// The two regular chains ([`IN_CHAIN`], [`OUT_CHAIN`]) the fabric's forward
/// chain jumps to: the user rules in priority order, then Azure's defaults.
pub fn chains(rules: &[NsgRule], vnet: &[Ipv4Net]) -> (Chain, Chain) {
    let vnet_set: Vec<Value> = vnet.iter().map(|n| Value::from(n.trunc())).collect();
    let user = |dir: Direction| {
        let mut user: Vec<&NsgRule> = rules.iter().filter(|r| r.direction == dir).collect();
        user.sort_by_key(|r| r.priority);
        user.into_iter().map(NsgRule::rule).collect::<Vec<_>>()
    };
    let mut inbound = user(Direction::Inbound);
    inbound.push(
        Rule::new([
            any_of(
                Expr::Payload(aksnet_nft::Payload::IpSaddr),
                vnet_set.clone(),
            ),
            ret(),
        ])
        .comment("65000 AllowVnetInBound"),
    );
    inbound.push(Rule::new([drop()]).comment("65500 DenyAllInBound"));
    let mut outbound = user(Direction::Outbound);
    outbound.push(
        Rule::new([
            any_of(Expr::Payload(aksnet_nft::Payload::IpDaddr), vnet_set),
            ret(),
        ])
        .comment("65000 AllowVnetOutBound"),
    );
    outbound.push(Rule::new([ret()]).comment("65001 AllowInternetOutBound"));
    (Chain::regular(inbound), Chain::regular(outbound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: u16, dir: Direction, access: Access) -> NsgRule {
        NsgRule {
            priority: p,
            direction: dir,
            access,
            source: None,
            destination: None,
            port: None,
            protocol: None,
        }
    }

    #[test]
    fn priority_order_and_uniqueness() {
        let mut rules = vec![];
        add(&mut rules, rule(300, Direction::Inbound, Access::Allow)).unwrap();
        let mut deny = rule(200, Direction::Inbound, Access::Deny);
        deny.source = Some("10.225.0.0/24".parse().unwrap());
        deny.port = Some(7777);
        deny.protocol = Some(Protocol::Tcp);
        add(&mut rules, deny).unwrap();
        add(&mut rules, rule(200, Direction::Outbound, Access::Deny)).unwrap();
        assert!(
            add(&mut rules, rule(200, Direction::Inbound, Access::Allow))
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        assert!(add(&mut rules, rule(99, Direction::Inbound, Access::Allow)).is_err());
        assert!(add(&mut rules, rule(4097, Direction::Inbound, Access::Allow)).is_err());
        let vnet = vec!["10.224.0.0/12".parse().unwrap()];
        let (inbound, _) = chains(&rules, &vnet);
        let text: Vec<String> = inbound.rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "ip saddr 10.225.0.0/24 meta l4proto tcp th dport 7777 drop comment \"deny-inbound-200\"",
                "return comment \"allow-inbound-300\"",
                "ip saddr { 10.224.0.0/12 } return comment \"65000 AllowVnetInBound\"",
                "drop comment \"65500 DenyAllInBound\"",
            ]
        );
        let listed = listing(&rules, &vnet);
        assert_eq!(listed.iter().filter(|r| r.default).count(), 5);
        assert_eq!(listed[0].priority, 200);
        assert_eq!(listed[0].source, "10.225.0.0/24");
        remove(&mut rules, Direction::Inbound, 200).unwrap();
        assert!(remove(&mut rules, Direction::Inbound, 200).is_err());
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn port_without_protocol_matches_tcp_and_udp() {
        let mut r = rule(100, Direction::Outbound, Access::Deny);
        r.port = Some(53);
        assert_eq!(
            r.rule().to_string(),
            "meta l4proto { tcp, udp } th dport 53 drop comment \"deny-outbound-100\""
        );
        assert!("sideways".parse::<Direction>().is_err());
        assert_eq!("DENY".parse::<Access>().unwrap(), Access::Deny);
    }
}
