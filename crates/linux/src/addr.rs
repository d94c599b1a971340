//! Interface addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{Result, Socket};

/// How to add an address.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrOptions {
    /// Skip IPv6 duplicate address detection (the address is usable at once).
    pub nodad: bool,
    /// Do not create the prefix route for the address's subnet.
    pub noprefixroute: bool,
    /// Replace an existing identical address instead of failing with EEXIST.
    pub replace: bool,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// Address with its prefix length.
    pub addr: IpNet,
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn addr_msg(index: u32, net: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(&net.addr());
    m.header.prefix_len = net.prefix_len();
    m.header.index = index;
    m.header.scope = AddressScope::Universe;
    m.attributes.push(AddressAttribute::Address(net.addr()));
    if net.addr().is_ipv4() {
        m.attributes.push(AddressAttribute::Local(net.addr()));
    }
    m
}

impl Socket {
    /// Add `net` (address and prefix length) to link `index`.
    pub fn add_address(&mut self, index: u32, net: IpNet, opts: AddrOptions) -> Result<()> {
        let mut m = addr_msg(index, &net);
        let mut f = AddressFlags::empty();
        if opts.nodad {
            f |= AddressFlags::Nodad;
        }
        if opts.noprefixroute {
            f |= AddressFlags::Noprefixroute;
        }
        if !f.is_empty() {
            m.attributes.push(AddressAttribute::Flags(f));
        }
        let flags = if opts.replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        let op = || format!("add address {net} to link #{index}");
        self.ack(RouteNetlinkMessage::NewAddress(m), flags, &op)
    }

    /// Remove `net` from link `index`. Returns `false` if it was not there.
    pub fn del_address(&mut self, index: u32, net: IpNet) -> Result<bool> {
        let m = addr_msg(index, &net);
        let op = || format!("delete address {net} from link #{index}");
        match self.ack(RouteNetlinkMessage::DelAddress(m), 0, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses of link `index` (of every link if `None`).
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut req = AddressMessage::default();
        if let Some(i) = index {
            req.header.index = i;
        }
        let op = || "list addresses".to_string();
        let msgs = self.dump(RouteNetlinkMessage::GetAddress(req), &op)?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if index.is_some_and(|i| i != a.header.index) {
                continue;
            }
            // IFA_LOCAL is the interface's own address on point-to-point
            // links; IFA_ADDRESS otherwise.
            let mut ip = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Local(l) => ip = Some(*l),
                    AddressAttribute::Address(x) if ip.is_none() => ip = Some(*x),
                    _ => {}
                }
            }
            if let Some(ip) = ip {
                if let Ok(net) = IpNet::new(ip, a.header.prefix_len) {
                    out.push(Address {
                        index: a.header.index,
                        addr: net,
                    });
                }
            }
        }
        Ok(out)
    }
}
