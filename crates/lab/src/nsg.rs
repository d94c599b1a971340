//! Network security group rules on the node subnet, as Azure evaluates them:
//! per direction, lowest priority number first, first match wins, stateful
//! (replies of an allowed flow pass), then the default rules
//! (AllowVnetInBound / DenyAllInBound, AllowVnetOutBound /
//! AllowInternetOutBound). Rendered as nftables chains of the fabric. Pure.

use std::fmt::Write as _;
use std::str::FromStr;

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

    fn nft_match(&self) -> String {
        let mut m = String::new();
        if let Some(s) = self.source {
            let _ = write!(m, "ip saddr {} ", s.trunc());
        }
        if let Some(d) = self.destination {
            let _ = write!(m, "ip daddr {} ", d.trunc());
        }
        match (self.protocol, self.port) {
            (Some(p), Some(port)) => {
                let _ = write!(m, "{} dport {port} ", p.as_str());
            }
            (Some(p), None) => {
                let _ = write!(m, "meta l4proto {} ", p.as_str());
            }
            (None, Some(port)) => {
                let _ = write!(m, "meta l4proto {{ tcp, udp }} th dport {port} ");
            }
            (None, None) => {}
        }
        m
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

/// The two nftables chains (`nsg_in`, `nsg_out`) the fabric's forward chain
/// jumps to. An allow rule returns (the packet goes on, to the other
/// direction's rules and then to its NIC); a deny rule drops.
pub fn render_chains(rules: &[NsgRule], vnet: &[Ipv4Net]) -> String {
    let set = vnet
        .iter()
        .map(|n| n.trunc().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = String::new();
    for (dir, chain) in [
        (Direction::Inbound, "nsg_in"),
        (Direction::Outbound, "nsg_out"),
    ] {
        let _ = writeln!(s, "  chain {chain} {{");
        let mut user: Vec<&NsgRule> = rules.iter().filter(|r| r.direction == dir).collect();
        user.sort_by_key(|r| r.priority);
        for r in user {
            let verdict = match r.access {
                Access::Allow => "return",
                Access::Deny => "drop",
            };
            let _ = writeln!(s, "    {}{verdict} comment \"{}\"", r.nft_match(), r.name());
        }
        match dir {
            Direction::Inbound => {
                let _ = writeln!(
                    s,
                    "    ip saddr {{ {set} }} return comment \"65000 AllowVnetInBound\"\n    drop comment \"65500 DenyAllInBound\""
                );
            }
            Direction::Outbound => {
                let _ = writeln!(
                    s,
                    "    ip daddr {{ {set} }} return comment \"65000 AllowVnetOutBound\"\n    return comment \"65001 AllowInternetOutBound\""
                );
            }
        }
        let _ = writeln!(s, "  }}");
    }
    s
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
        let nft = render_chains(&rules, &vnet);
        let deny_at = nft.find("deny-inbound-200").unwrap();
        let allow_at = nft.find("allow-inbound-300").unwrap();
        let default_at = nft.find("AllowVnetInBound").unwrap();
        assert!(deny_at < allow_at && allow_at < default_at, "{nft}");
        assert!(
            nft.contains("ip saddr 10.225.0.0/24 tcp dport 7777 drop comment \"deny-inbound-200\""),
            "{nft}"
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
        assert_eq!(r.nft_match(), "meta l4proto { tcp, udp } th dport 53 ");
        assert!("sideways".parse::<Direction>().is_err());
        assert_eq!("DENY".parse::<Access>().unwrap(), Access::Deny);
    }
}
