//! `mode: transparent` (Azure CNI node subnet and Overlay), as Azure's
//! `transparent_endpointclient_linux.go` lays it out: a veth per pod and no
//! bridge.
//!
//! * host: `podIP/32 dev <veth>`, proxy ARP on the veth (with no proxy
//!   delay: namespaces other than the initial one have no
//!   `neigh/default`, so the per-interface value is what counts);
//! * pod: the address without its subnet route, `169.254.1.1/32 dev eth0`,
//!   a permanent neighbour entry 169.254.1.1 → host veth MAC, and every
//!   IPAM route (the default route) via 169.254.1.1, so all pod traffic goes
//!   through the host whatever the subnet. The result's gateway is
//!   169.254.1.1 whatever gateway the IPAM range names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aksnet_core::cni::{CniError, CniResult, IpConfig, Route};
use aksnet_linux::route::{Route as KRoute, Scope};
use aksnet_linux::{sysctl, MacAddr};
use ipnet::IpNet;

use crate::common::{self, kerr};
use crate::netconf::MainConf;
use crate::skel::Request;

/// The pod's virtual IPv4 gateway.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod's virtual IPv6 gateway (Azure's).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0x1234, 0x5678, 0x9abc);

/// The virtual gateway of `ip`'s family.
pub fn gateway_of(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        IpAddr::V4(GATEWAY_V4)
    } else {
        IpAddr::V6(GATEWAY_V6)
    }
}

/// ADD: the kernel part, given the IPAM result.
pub fn add(req: &Request, conf: &MainConf, ipam: &CniResult) -> Result<CniResult, CniError> {
    let mut host = common::host_socket()?;
    let addrs: Vec<IpAddr> = ipam.ips.iter().map(|i| i.address.addr()).collect();
    common::ensure_forwarding(&addrs)?;
    let pod_ns = common::open_pod_netns(req)?;
    let mut pod = common::pod_socket(&pod_ns)?;
    let veth = common::create_veth(&mut host, &mut pod, &pod_ns, req, conf.mtu, None)?;
    let hname = veth.host.name.as_str();
    let host_mac = veth
        .host
        .mac
        .ok_or_else(|| CniError::internal(format!("veth {hname} has no MAC")))?;
    // New interface: its sysctls start at the defaults, so write blind.
    for (key, val) in [
        (["net", "ipv4", "conf", hname, "proxy_arp"], "1"),
        (["net", "ipv4", "neigh", hname, "proxy_delay"], "0"),
    ] {
        sysctl::set(&key, val).map_err(|e| kerr(format!("cannot set {}", key.join(".")), e))?;
    }
    for ip in &addrs {
        let r = KRoute::new(IpNet::from(*ip)).dev(veth.host.index);
        host.replace_route(&r)
            .map_err(|e| kerr(format!("cannot add host route {ip} dev {hname}"), e))?;
    }
    let idx = veth.pod.index;
    common::add_pod_addresses(&mut pod, idx, ipam, true)?;
    let families: Vec<bool> = {
        let mut f: Vec<bool> = addrs.iter().map(IpAddr::is_ipv4).collect();
        f.sort_unstable();
        f.dedup();
        f
    };
    for v4 in families {
        let gw = gateway_of(if v4 {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        if v4 {
            // IPv6 link-local gateways need no on-link route.
            let r = KRoute::new(IpNet::from(gw)).dev(idx).scope(Scope::Link);
            common::add_pod_route(&mut pod, &r)?;
        }
        pod.set_neighbour(idx, gw, host_mac)
            .map_err(|e| kerr(format!("cannot add neighbour {gw} in the pod"), e))?;
    }
    let mut routes = ipam.routes.clone();
    for ip in &conf.ips_to_route_via_host {
        routes.push(Route::new(IpNet::from(*ip), None));
    }
    for r in &routes {
        let gw = r.gw.unwrap_or_else(|| gateway_of(r.dst.addr()));
        let mut k = KRoute::new(r.dst).dev(idx).via(gw);
        // A gateway named by the IPAM has no route in the pod (the subnet
        // route is left out): declare it on-link.
        if r.gw.is_some() {
            k = k.onlink();
        }
        k.mtu = r.mtu;
        k.advmss = r.advmss;
        k.metric = r.priority;
        common::add_pod_route(&mut pod, &k)?;
    }
    Ok(CniResult {
        interfaces: vec![
            common::iface(&veth.host, None),
            common::iface(&veth.pod, Some(&req.env.netns)),
        ],
        ips: ipam
            .ips
            .iter()
            .map(|i| IpConfig {
                address: i.address,
                gateway: Some(gateway_of(i.address.addr())),
                interface: Some(1),
            })
            .collect(),
        routes,
        dns: ipam.dns.clone(),
    })
}

/// CHECK: the host end, its host routes, and the pod side with the
/// virtual gateway's neighbour entry.
pub fn check(req: &Request, prev: &CniResult) -> Result<(), CniError> {
    let mut host = common::host_socket()?;
    let hv = crate::check::host_veth(&mut host, req)?;
    let mac: MacAddr = hv
        .mac
        .ok_or_else(|| common::check_failed(format!("{} has no MAC", hv.name)))?;
    let (_, our_ips) = crate::check::ours(req, prev)?;
    for v6 in [false, true] {
        let ips: Vec<IpAddr> = our_ips
            .iter()
            .map(|i| i.address.addr())
            .filter(|a| a.is_ipv6() == v6)
            .collect();
        if ips.is_empty() {
            continue;
        }
        let have = host
            .routes(v6, None)
            .map_err(|e| kerr("cannot list host routes", e))?;
        for ip in ips {
            if !have
                .iter()
                .any(|r| r.dst == IpNet::from(ip) && r.oif == Some(hv.index))
            {
                return Err(common::check_failed(format!(
                    "the host has no route {ip} dev {}",
                    hv.name
                )));
            }
        }
    }
    let first = our_ips.first().map(|i| i.address.addr());
    let gw = first.map(|a| (gateway_of(a), mac));
    crate::check::pod_side(req, prev, gw)
}
