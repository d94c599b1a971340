//! Routes.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{Result, Socket};

/// The main routing table.
pub const TABLE_MAIN: u32 = 254;

/// Scope of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reachable through a gateway (or anywhere).
    Universe,
    /// Directly on the link.
    Link,
    /// On this host.
    Host,
}

/// A route. Build one with [`Route::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Scope; derived from `gateway` when `None` (link without a gateway,
    /// universe with one).
    pub scope: Option<Scope>,
    /// Routing table (main if `None`).
    pub table: Option<u32>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Next hop is on the link even if no address says so.
    pub onlink: bool,
    /// Path MTU.
    pub mtu: Option<u32>,
    /// Advertised MSS.
    pub advmss: Option<u32>,
    /// Route protocol (`RTPROT_*`); `boot` (3) if `None`.
    pub protocol: Option<u8>,
}

impl Route {
    /// A route to `dst`, with nothing else set.
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst,
            gateway: None,
            oif: None,
            scope: None,
            table: None,
            metric: None,
            src: None,
            onlink: false,
            mtu: None,
            advmss: None,
            protocol: None,
        }
    }

    /// Set the next hop.
    pub fn via(mut self, gw: IpAddr) -> Route {
        self.gateway = Some(gw);
        self
    }

    /// Set the output interface.
    pub fn dev(mut self, index: u32) -> Route {
        self.oif = Some(index);
        self
    }

    /// Set the scope.
    pub fn scope(mut self, scope: Scope) -> Route {
        self.scope = Some(scope);
        self
    }

    /// Set the table.
    pub fn table(mut self, table: u32) -> Route {
        self.table = Some(table);
        self
    }

    /// Mark the next hop as on-link.
    pub fn onlink(mut self) -> Route {
        self.onlink = true;
        self
    }

    fn to_message(&self) -> RouteMessage {
        let mut m = RouteMessage::default();
        let v4 = self.dst.addr().is_ipv4();
        m.header.address_family = if v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.header.destination_prefix_length = self.dst.prefix_len();
        let table = self.table.unwrap_or(TABLE_MAIN);
        if table < 256 {
            m.header.table = table as u8;
        } else {
            m.header.table = RouteHeader::RT_TABLE_UNSPEC;
            m.attributes.push(RouteAttribute::Table(table));
        }
        m.header.protocol = RouteProtocol::from(self.protocol.unwrap_or(3));
        m.header.scope = match self.scope {
            Some(Scope::Universe) => RouteScope::Universe,
            Some(Scope::Link) => RouteScope::Link,
            Some(Scope::Host) => RouteScope::Host,
            None if self.gateway.is_none() && self.oif.is_some() => RouteScope::Link,
            None => RouteScope::Universe,
        };
        m.header.kind = RouteType::Unicast;
        if self.onlink {
            m.header.flags |= RouteFlags::Onlink;
        }
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                self.dst.network(),
            )));
        if let Some(gw) = self.gateway {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            m.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(p) = self.metric {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        if let Some(src) = self.src {
            m.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(a) = self.advmss {
            metrics.push(RouteMetric::Advmss(a));
        }
        if !metrics.is_empty() {
            m.attributes.push(RouteAttribute::Metrics(metrics));
        }
        m
    }

    fn from_message(m: &RouteMessage) -> Option<Route> {
        let v4 = m.header.address_family == AddressFamily::Inet;
        let mut dst: Option<IpAddr> = None;
        let mut r = Route::new(if v4 {
            IpNet::V4(Default::default())
        } else {
            IpNet::V6(Default::default())
        });
        let mut table = u32::from(m.header.table);
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = route_addr(d),
                RouteAttribute::Gateway(g) => r.gateway = route_addr(g),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::PrefSource(s) => r.src = route_addr(s),
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Metrics(ms) => {
                    for x in ms {
                        match x {
                            RouteMetric::Mtu(v) => r.mtu = Some(*v),
                            RouteMetric::Advmss(v) => r.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let addr = dst.unwrap_or(if v4 {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        });
        r.dst = IpNet::new(addr, m.header.destination_prefix_length).ok()?;
        r.table = Some(table);
        r.scope = Some(match m.header.scope {
            RouteScope::Link => Scope::Link,
            RouteScope::Host => Scope::Host,
            _ => Scope::Universe,
        });
        r.onlink = m.header.flags.contains(RouteFlags::Onlink);
        r.protocol = Some(u8::from(m.header.protocol));
        Some(r)
    }
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

impl Socket {
    /// Add `route`; fails with `EEXIST` if the same route exists.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let op = || format!("add route {}", route.dst);
        self.ack(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        )
    }

    /// Add `route` or replace the route to the same destination.
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        let op = || format!("replace route {}", route.dst);
        self.ack(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_REPLACE,
            &op,
        )
    }

    /// Delete `route`. Returns `false` if it did not exist.
    pub fn del_route(&mut self, route: &Route) -> Result<bool> {
        let mut m = route.to_message();
        // Match any protocol and scope, like `ip route del`.
        m.header.protocol = RouteProtocol::Unspec;
        m.header.scope = RouteScope::NoWhere;
        let op = || format!("delete route {}", route.dst);
        match self.ack(RouteNetlinkMessage::DelRoute(m), 0, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The routes of one family (`v6 = false` for IPv4) in `table` (every
    /// table if `None`).
    pub fn routes(&mut self, v6: bool, table: Option<u32>) -> Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let op = || "list routes".to_string();
        let msgs = self.dump(RouteNetlinkMessage::GetRoute(req), &op)?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Unicast => {
                    Route::from_message(r)
                }
                _ => None,
            })
            .filter(|r| table.is_none() || r.table == table)
            .collect())
    }
}
