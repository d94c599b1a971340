//! `aksnet-cni`: IPAM (in-process or delegated), then the mode's kernel
//! work, then the optional masquerade rule; undoing what it did when a
//! later step fails.

use std::collections::HashSet;

use aksnet_core::cni::{CniError, CniResult};

use aksnet_linux::nft::Nft;

use crate::common::{self, kerr};
use crate::netconf::{MainConf, Mode};
use crate::skel::{Plugin, Request};
use crate::{bridge, delegate, masq, tag, transparent};

/// The `aksnet-cni` plugin.
#[derive(Debug, Default)]
pub struct MainPlugin;

fn conf(req: &Request) -> Result<MainConf, CniError> {
    MainConf::parse(&req.raw)
}

fn attachment_tag(req: &Request) -> String {
    tag::attachment_tag(&req.conf.name, &req.env.container_id, &req.env.ifname)
}

/// Merge a `prevResult` from an earlier plugin of the chain: its
/// interfaces, IPs (re-indexed), routes and DNS come first.
fn merge_prev(prev: Option<CniResult>, mut ours: CniResult) -> CniResult {
    let Some(mut p) = prev else { return ours };
    let off = p.interfaces.len();
    for ip in &mut ours.ips {
        ip.interface = ip.interface.map(|i| i + off);
    }
    p.interfaces.append(&mut ours.interfaces);
    p.ips.append(&mut ours.ips);
    p.routes.append(&mut ours.routes);
    if p.dns.is_empty() {
        p.dns = ours.dns;
    }
    p
}

impl MainPlugin {
    fn setup(&self, req: &Request, c: &MainConf, ipam: &CniResult) -> Result<CniResult, CniError> {
        let r = match c.mode {
            Mode::Bridge => bridge::add(req, c, ipam)?,
            Mode::Transparent => transparent::add(req, c, ipam)?,
        };
        if c.ip_masq {
            masq::add(&mut Nft::current(), &attachment_tag(req), &r)?;
        }
        Ok(r)
    }
}

impl Plugin for MainPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let c = conf(req)?;
        let prev = req.conf.prev()?;
        let (ipam, undo) = delegate::add(req, &c.ipam_type)?;
        match self.setup(req, &c, &ipam) {
            Ok(r) => Ok(merge_prev(prev, r)),
            Err(e) => {
                // Leave nothing behind: the runtime will DEL or retry.
                if let Ok(mut host) = common::host_socket() {
                    let _ = common::delete_veth(&mut host, req);
                }
                if c.ip_masq {
                    let _ = masq::del(&mut Nft::current(), &attachment_tag(req));
                }
                delegate::undo(req, &c.ipam_type, &undo);
                Err(e)
            }
        }
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let c = conf(req)?;
        // The host end is named from (container ID, ifname): no need to
        // enter the pod's namespace, which may be gone already.
        let mut host = common::host_socket()?;
        common::delete_veth(&mut host, req)?;
        if c.ip_masq {
            masq::del(&mut Nft::current(), &attachment_tag(req))?;
        }
        delegate::del(req, &c.ipam_type)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let c = conf(req)?;
        let prev = common::prev_for_check(req)?;
        delegate::check(req, &c.ipam_type)?;
        match c.mode {
            Mode::Bridge => bridge::check(req, &c, &prev),
            Mode::Transparent => transparent::check(req, &prev),
        }
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let c = conf(req)?;
        delegate::status(req, &c.ipam_type)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let c = conf(req)?;
        delegate::gc(req, &c.ipam_type)?;
        let Some(valid) = req.conf.gc_attachments() else {
            return Ok(());
        };
        // Host veths carry their attachment's tag as alias.
        let prefix = tag::net_prefix(&req.conf.name);
        let keep: HashSet<String> = valid
            .iter()
            .map(|a| tag::attachment_tag(&req.conf.name, &a.container_id, &a.ifname))
            .collect();
        let mut host = common::host_socket()?;
        let links = host.links().map_err(|e| kerr("cannot list links", e))?;
        for l in links {
            let Some(alias) = l.alias.as_deref() else {
                continue;
            };
            if alias.starts_with(&prefix) && !keep.contains(alias) {
                tracing::info!(link = %l.name, "GC deletes stale veth");
                host.delete_link(l.index)
                    .map_err(|e| kerr(format!("cannot delete {}", l.name), e))?;
            }
        }
        if c.ip_masq {
            masq::gc(&mut Nft::current(), &req.conf.name, valid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::cni::{Interface, IpConfig};

    #[test]
    fn prev_result_is_kept_and_reindexed() {
        let prev = CniResult {
            interfaces: vec![Interface {
                name: "x".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let ours = CniResult {
            interfaces: vec![
                Interface {
                    name: "veth".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    ..Default::default()
                },
            ],
            ips: vec![IpConfig {
                address: "10.0.0.2/24".parse().unwrap(),
                gateway: None,
                interface: Some(1),
            }],
            ..Default::default()
        };
        let m = merge_prev(Some(prev), ours.clone());
        assert_eq!(m.interfaces.len(), 3);
        assert_eq!(m.ips[0].interface, Some(2));
        assert_eq!(merge_prev(None, ours.clone()), ours);
    }
}
