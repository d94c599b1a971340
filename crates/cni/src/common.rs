//! Kernel steps both modes share: the pod's veth pair, its addresses and
//! routes, forwarding, and the errors of kernel operations.

use std::net::IpAddr;

use aksnet_core::cni::{code, CniError, CniResult, Interface};
use aksnet_linux::addr::AddrOptions;
use aksnet_linux::link::{Link, LinkChange, VethSpec};
use aksnet_linux::route::Route as KRoute;
use aksnet_linux::{sysctl, MacAddr, Netns, Socket};

use crate::skel::Request;
use crate::tag;

/// A kernel error as a CNI error (999, with what was being done).
pub fn kerr(what: impl Into<String>, e: aksnet_linux::Error) -> CniError {
    CniError::new(code::INTERNAL, what, e.to_string())
}

/// A netlink socket in the plugin's own namespace (the node's).
pub fn host_socket() -> Result<Socket, CniError> {
    Socket::new().map_err(|e| kerr("cannot open a netlink socket", e))
}

/// Open the pod's namespace (`CNI_NETNS`); error 4 when it is not one.
pub fn open_pod_netns(req: &Request) -> Result<Netns, CniError> {
    Netns::open(&req.env.netns).map_err(|e| {
        CniError::new(
            code::INVALID_ENV,
            format!(
                "CNI_NETNS {:?} is not an open network namespace",
                req.env.netns
            ),
            e.to_string(),
        )
    })
}

/// A netlink socket bound to the pod's namespace.
pub fn pod_socket(ns: &Netns) -> Result<Socket, CniError> {
    Socket::new_in(ns).map_err(|e| {
        kerr(
            format!("cannot open a netlink socket in {}", ns.path().display()),
            e,
        )
    })
}

/// What [`create_veth`] made.
#[derive(Debug, Clone)]
pub struct Veth {
    /// Host end.
    pub host: Link,
    /// Pod end (index in the pod's namespace).
    pub pod: Link,
}

/// Create the pod's veth pair: the host end (named from container ID and
/// ifname, optionally enslaved, then tagged with the attachment) in the
/// node's namespace and the pod end born directly in the pod's namespace,
/// then bring both up. A host end left by an earlier ADD of the
/// same attachment is replaced (see the repeated-ADD rule in docs/cni.md).
pub fn create_veth(
    host: &mut Socket,
    pod: &mut Socket,
    pod_ns: &Netns,
    req: &Request,
    mtu: Option<u32>,
    master: Option<u32>,
) -> Result<Veth, CniError> {
    let name = tag::host_veth_name(&req.env.container_id, &req.env.ifname);
    let rnd = |what: &str| {
        MacAddr::random_local().map_err(|e| kerr(format!("cannot make a MAC for {what}"), e))
    };
    let spec = VethSpec {
        name: name.clone(),
        mac: Some(rnd("the host veth")?),
        mtu,
        master,
        // Born down: a veth end created up while its peer is still down
        // leaves the peer without carrier once it comes up (seen on 6.x
        // kernels); both ends are brought up below, pod end first.
        up: false,
        peer_name: req.env.ifname.clone(),
        peer_mac: Some(rnd("the pod interface")?),
        peer_netns: Some(pod_ns.raw_fd()),
    };
    if let Err(e) = host.create_veth(&spec) {
        if !e.is_exists() {
            return Err(kerr(format!("cannot create veth {name}"), e));
        }
        // Either our host end survives from an earlier ADD of this
        // attachment (replace it: its pod end goes with it), or the pod
        // already has an interface of that name (then fail).
        let removed = host
            .delete_link_by_name(&name)
            .map_err(|e| kerr(format!("cannot remove stale veth {name}"), e))?;
        let again = host.create_veth(&spec);
        match again {
            Ok(()) => {}
            Err(e) if e.is_exists() && !removed => {
                return Err(CniError::internal(format!(
                    "interface {} already exists in the pod namespace {}",
                    req.env.ifname, req.env.netns
                )))
            }
            Err(e) => return Err(kerr(format!("cannot create veth {name}"), e)),
        }
    }
    // One GET gives the host end's index (for routes, hairpin, CHECK).
    let host_link = host
        .link_by_name(&name)
        .map_err(|e| kerr(format!("cannot read veth {name}"), e))?
        .ok_or_else(|| {
            CniError::internal(format!("veth {name} vanished right after its creation"))
        })?;
    let pod_link = pod
        .link_by_name(&req.env.ifname)
        .map_err(|e| kerr(format!("cannot read {} in the pod", req.env.ifname), e))?
        .ok_or_else(|| {
            CniError::internal(format!(
                "{} vanished from the pod namespace right after its creation",
                req.env.ifname
            ))
        })?;
    // The pod end is born down (its peer did not exist yet).
    pod.set_link(
        pod_link.index,
        &LinkChange {
            up: Some(true),
            ..LinkChange::default()
        },
    )
    .map_err(|e| kerr(format!("cannot bring {} up in the pod", req.env.ifname), e))?;
    // Up, and tagged with the attachment for GC (the kernel ignores an
    // alias given at creation).
    host.set_link(
        host_link.index,
        &LinkChange {
            up: Some(true),
            alias: Some(tag::attachment_tag(
                &req.conf.name,
                &req.env.container_id,
                &req.env.ifname,
            )),
            ..LinkChange::default()
        },
    )
    .map_err(|e| kerr(format!("cannot bring {name} up"), e))?;
    Ok(Veth {
        host: Link {
            up: true,
            ..host_link
        },
        pod: Link {
            up: true,
            ..pod_link
        },
    })
}

/// Delete the host end of the attachment's veth (the pod end goes with
/// it). Nothing to delete is success.
pub fn delete_veth(host: &mut Socket, req: &Request) -> Result<(), CniError> {
    let name = tag::host_veth_name(&req.env.container_id, &req.env.ifname);
    host.delete_link_by_name(&name)
        .map(|_| ())
        .map_err(|e| kerr(format!("cannot delete veth {name}"), e))
}

/// Turn on forwarding for the families of `ips` (a read, and a write only
/// when it is off).
pub fn ensure_forwarding(ips: &[IpAddr]) -> Result<(), CniError> {
    if ips.iter().any(IpAddr::is_ipv4) {
        sysctl::ensure(&["net", "ipv4", "ip_forward"], "1")
            .map_err(|e| kerr("cannot enable IPv4 forwarding", e))?;
    }
    if ips.iter().any(IpAddr::is_ipv6) {
        sysctl::ensure(&["net", "ipv6", "conf", "all", "forwarding"], "1")
            .map_err(|e| kerr("cannot enable IPv6 forwarding", e))?;
    }
    Ok(())
}

/// Add the IPAM addresses to the pod interface. IPv6 skips DAD (nothing
/// waits for it); `noprefixroute` leaves the subnet route out (transparent
/// mode routes everything through the host).
pub fn add_pod_addresses(
    pod: &mut Socket,
    index: u32,
    r: &CniResult,
    noprefixroute: bool,
) -> Result<(), CniError> {
    for ip in &r.ips {
        pod.add_address(
            index,
            ip.address,
            AddrOptions {
                nodad: true,
                noprefixroute,
                replace: true,
            },
        )
        .map_err(|e| kerr(format!("cannot add {} in the pod", ip.address), e))?;
    }
    Ok(())
}

/// Add a route in the pod, replacing one to the same destination.
pub fn add_pod_route(pod: &mut Socket, route: &KRoute) -> Result<(), CniError> {
    pod.replace_route(route)
        .map_err(|e| kerr(format!("cannot add route to {} in the pod", route.dst), e))
}

/// A result interface entry for a link.
pub fn iface(link: &Link, sandbox: Option<&str>) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.map(|m| m.to_string()),
        sandbox: sandbox.map(str::to_string),
        ..Interface::default()
    }
}

/// The gateway the pod uses for `dst`: the route's own, else the gateway of
/// the first IP of the same family.
pub fn gateway_for(r: &CniResult, dst_v4: bool, own: Option<IpAddr>) -> Option<IpAddr> {
    own.or_else(|| {
        r.ips
            .iter()
            .find(|i| i.address.addr().is_ipv4() == dst_v4)
            .and_then(|i| i.gateway)
    })
}

/// The attachment's entry in `prevResult` (CHECK): the interface named
/// `ifname` in the pod's sandbox and the addresses bound to it.
pub fn prev_for_check(req: &Request) -> Result<CniResult, CniError> {
    req.conf.prev()?.ok_or_else(|| {
        CniError::config("CHECK needs prevResult (the result of the ADD being checked)")
    })
}

/// CHECK error (999) with a message.
pub fn check_failed(msg: impl Into<String>) -> CniError {
    CniError::internal(msg)
}
