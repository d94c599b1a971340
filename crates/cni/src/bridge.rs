//! `mode: bridge` (kubenet): a Linux bridge (default `cbr0`) that holds the
//! range's gateway address when `isGateway` is set, and one veth per pod
//! enslaved to it. The pod gets the IPAM addresses with their subnet route
//! and a default route via the gateway.

use aksnet_core::cni::{CniError, CniResult, IpConfig, Route};
use aksnet_linux::addr::AddrOptions;
use aksnet_linux::link::{Link, LinkChange};
use aksnet_linux::route::Route as KRoute;
use aksnet_linux::{MacAddr, Socket};
use ipnet::IpNet;

use crate::common::{self, kerr};
use crate::netconf::MainConf;
use crate::skel::Request;

/// Find or create the bridge, up, with the wanted promiscuity and the
/// gateway addresses of `ipam` when `isGateway` is set. Concurrent ADDs may
/// race to create it: `EEXIST` means another one won.
fn ensure_bridge(host: &mut Socket, conf: &MainConf, ipam: &CniResult) -> Result<Link, CniError> {
    let name = conf.bridge.as_str();
    let get = |host: &mut Socket| {
        host.link_by_name(name)
            .map_err(|e| kerr(format!("cannot read bridge {name}"), e))
    };
    let br = match get(host)? {
        Some(l) => l,
        None => {
            // A fixed MAC keeps the bridge's address stable as ports come
            // and go (a bridge without one takes its lowest port's).
            let mac = MacAddr::random_local()
                .map_err(|e| kerr(format!("cannot make a MAC for bridge {name}"), e))?;
            match host.create_bridge(name, conf.mtu, Some(mac), true) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(kerr(format!("cannot create bridge {name}"), e)),
            }
            get(host)?.ok_or_else(|| {
                CniError::internal(format!("bridge {name} vanished right after its creation"))
            })?
        }
    };
    if br.kind.as_deref() != Some("bridge") {
        return Err(CniError::config(format!(
            "{name} exists and is not a bridge (kind {}); choose another \"bridge\" name",
            br.kind.as_deref().unwrap_or("unknown")
        )));
    }
    let change = LinkChange {
        up: (!br.up).then_some(true),
        promisc: (conf.promisc_mode && !br.promisc).then_some(true),
        ..LinkChange::default()
    };
    if change.up.is_some() || change.promisc.is_some() {
        host.set_link(br.index, &change)
            .map_err(|e| kerr(format!("cannot set up bridge {name}"), e))?;
    }
    if conf.is_gateway {
        // Reading is lock-free in the kernel; adding takes the RTNL lock,
        // which every netlink writer on the machine contends for: add only
        // what is missing.
        let have = host
            .addresses(Some(br.index))
            .map_err(|e| kerr(format!("cannot list addresses of bridge {name}"), e))?;
        for ip in &ipam.ips {
            let Some(gw) = ip.gateway else { continue };
            let Ok(net) = IpNet::new(gw, ip.address.prefix_len()) else {
                continue;
            };
            if have.iter().any(|a| a.addr == net) {
                continue;
            }
            // Replace: a concurrent ADD may have added it meanwhile.
            host.add_address(
                br.index,
                net,
                AddrOptions {
                    nodad: true,
                    noprefixroute: false,
                    replace: true,
                },
            )
            .map_err(|e| kerr(format!("cannot put gateway {net} on bridge {name}"), e))?;
        }
    }
    Ok(br)
}

/// ADD: the kernel part, given the IPAM result.
pub fn add(req: &Request, conf: &MainConf, ipam: &CniResult) -> Result<CniResult, CniError> {
    let mut host = common::host_socket()?;
    let br = ensure_bridge(&mut host, conf, ipam)?;
    let addrs: Vec<_> = ipam.ips.iter().map(|i| i.address.addr()).collect();
    common::ensure_forwarding(&addrs)?;
    let pod_ns = common::open_pod_netns(req)?;
    let mut pod = common::pod_socket(&pod_ns)?;
    let veth = common::create_veth(&mut host, &mut pod, &pod_ns, req, conf.mtu, Some(br.index))?;
    if conf.hairpin_mode {
        host.set_bridge_port_hairpin(veth.host.index, true)
            .map_err(|e| kerr(format!("cannot set hairpin mode on {}", veth.host.name), e))?;
    }
    let idx = veth.pod.index;
    common::add_pod_addresses(&mut pod, idx, ipam, false)?;
    let mut routes = ipam.routes.clone();
    for ip in &conf.ips_to_route_via_host {
        routes.push(Route::new(IpNet::from(*ip), None));
    }
    for r in &routes {
        let gw = common::gateway_for(ipam, r.dst.addr().is_ipv4(), r.gw);
        let mut k = KRoute::new(r.dst).dev(idx);
        if let Some(gw) = gw {
            k = k.via(gw);
        }
        k.mtu = r.mtu;
        k.advmss = r.advmss;
        k.metric = r.priority;
        common::add_pod_route(&mut pod, &k)?;
    }
    Ok(CniResult {
        interfaces: vec![
            common::iface(&br, None),
            common::iface(&veth.host, None),
            common::iface(&veth.pod, Some(&req.env.netns)),
        ],
        ips: ipam
            .ips
            .iter()
            .map(|i| IpConfig {
                interface: Some(2),
                ..i.clone()
            })
            .collect(),
        routes,
        dns: ipam.dns.clone(),
    })
}

/// CHECK: the bridge, the host end enslaved to it, and the common pod-side
/// checks.
pub fn check(req: &Request, conf: &MainConf, prev: &CniResult) -> Result<(), CniError> {
    let mut host = common::host_socket()?;
    let br = host
        .link_by_name(&conf.bridge)
        .map_err(|e| kerr(format!("cannot read bridge {}", conf.bridge), e))?
        .ok_or_else(|| common::check_failed(format!("bridge {} does not exist", conf.bridge)))?;
    let hv = crate::check::host_veth(&mut host, req)?;
    if hv.master != Some(br.index) {
        return Err(common::check_failed(format!(
            "{} is not a port of bridge {}",
            hv.name, conf.bridge
        )));
    }
    if conf.is_gateway {
        let (_, our_ips) = crate::check::ours(req, prev)?;
        let have = host
            .addresses(Some(br.index))
            .map_err(|e| kerr(format!("cannot list addresses of {}", conf.bridge), e))?;
        for ip in our_ips {
            if let Some(gw) = ip.gateway {
                if !have.iter().any(|a| a.addr.addr() == gw) {
                    return Err(common::check_failed(format!(
                        "gateway {gw} is not on bridge {}",
                        conf.bridge
                    )));
                }
            }
        }
    }
    crate::check::pod_side(req, prev, None)
}
