//! CHECK steps both modes share: the host end of the veth, and inside the
//! pod the interface, its addresses, its routes and (transparent mode) the
//! permanent neighbour entry of the virtual gateway.

use std::net::IpAddr;

use aksnet_core::cni::{CniError, CniResult, IpConfig};
use aksnet_linux::link::Link;
use aksnet_linux::{MacAddr, Socket};

use crate::common::{self, check_failed, kerr};
use crate::skel::Request;
use crate::tag;

/// The attachment's own entries of `prevResult` (which may also hold
/// earlier plugins' interfaces): the index of the interface named
/// `CNI_IFNAME` in a sandbox, and the IPs bound to it.
pub fn ours<'a>(
    req: &Request,
    prev: &'a CniResult,
) -> Result<(usize, Vec<&'a IpConfig>), CniError> {
    let ifname = req.env.ifname.as_str();
    let idx = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.is_some())
        .ok_or_else(|| {
            check_failed(format!(
                "prevResult lists no interface {ifname} in a sandbox"
            ))
        })?;
    let ips = prev
        .ips
        .iter()
        .filter(|i| i.interface == Some(idx))
        .collect();
    Ok((idx, ips))
}

/// The host end of the attachment's veth: it must exist and be up.
pub fn host_veth(host: &mut Socket, req: &Request) -> Result<Link, CniError> {
    let name = tag::host_veth_name(&req.env.container_id, &req.env.ifname);
    let l = host
        .link_by_name(&name)
        .map_err(|e| kerr(format!("cannot read {name}"), e))?
        .ok_or_else(|| check_failed(format!("host veth {name} does not exist")))?;
    if !l.up {
        return Err(check_failed(format!("host veth {name} is down")));
    }
    Ok(l)
}

/// The pod side: `ifname` exists and is up in `CNI_NETNS`, carries every
/// address `prevResult` gives it, and has a route for every route of
/// `prevResult`; `gateway` is a virtual gateway that must have a permanent
/// neighbour entry with the host end's MAC.
pub fn pod_side(
    req: &Request,
    prev: &CniResult,
    gateway: Option<(IpAddr, MacAddr)>,
) -> Result<(), CniError> {
    let ifname = req.env.ifname.as_str();
    let (pod_iface, our_ips) = ours(req, prev)?;
    let ns = common::open_pod_netns(req)?;
    let mut pod = common::pod_socket(&ns)?;
    let l = pod
        .link_by_name(ifname)
        .map_err(|e| kerr(format!("cannot read {ifname} in the pod"), e))?
        .ok_or_else(|| check_failed(format!("{ifname} does not exist in {}", req.env.netns)))?;
    if !l.up {
        return Err(check_failed(format!("{ifname} is down in the pod")));
    }
    if let Some(want) = prev.interfaces[pod_iface].mac.as_deref() {
        let have = l.mac.map(|m| m.to_string()).unwrap_or_default();
        if !have.eq_ignore_ascii_case(want) {
            return Err(check_failed(format!(
                "{ifname} has MAC {have}, prevResult says {want}"
            )));
        }
    }
    let addrs = pod
        .addresses(Some(l.index))
        .map_err(|e| kerr(format!("cannot list addresses of {ifname}"), e))?;
    for ip in our_ips {
        if !addrs.iter().any(|a| a.addr == ip.address) {
            return Err(check_failed(format!(
                "{ifname} in the pod does not have address {}",
                ip.address
            )));
        }
    }
    for v6 in [false, true] {
        let wanted: Vec<_> = prev
            .routes
            .iter()
            .filter(|r| r.dst.addr().is_ipv6() == v6)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let have = pod
            .routes(v6, None)
            .map_err(|e| kerr("cannot list routes in the pod", e))?;
        for r in wanted {
            if !have
                .iter()
                .any(|h| h.dst == r.dst && h.oif == Some(l.index))
            {
                return Err(check_failed(format!(
                    "the pod has no route to {} on {ifname}",
                    r.dst
                )));
            }
        }
    }
    if let Some((gw, mac)) = gateway {
        let n = pod
            .neighbours(l.index)
            .map_err(|e| kerr(format!("cannot list neighbours of {ifname}"), e))?;
        if !n
            .iter()
            .any(|x| x.ip == gw && x.permanent && x.mac == Some(mac))
        {
            return Err(check_failed(format!(
                "the pod has no permanent neighbour entry {gw} lladdr {mac} on {ifname}"
            )));
        }
    }
    Ok(())
}
