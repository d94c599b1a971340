//! [`Kernel`] over `aksnet-linux`'s blocking rtnetlink socket. The socket is
//! created inside the managed namespace (the creating thread enters it
//! under a guard and comes straight back), so every later request reaches
//! that namespace while the agent itself, and its store connection, stay in
//! their own. Sysctls are reached from a short-lived thread that enters the namespace;
//! `nft` ([`aksnet_linux::nft::Nft`]) is started inside it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use aksnet_linux::conntrack::{Conntrack, Flow};
use aksnet_linux::link::{LinkChange, VxlanSpec};
use aksnet_linux::nft::Nft;
use aksnet_linux::route::{self as lroute, TABLE_MAIN};
use aksnet_linux::{sysctl, MacAddr, Netns, Socket};
use aksnet_nft::{Batch, Driver, DriverError, Listing, TableId};
use ipnet::{IpNet, Ipv4Net};

use super::{AddressedLink, Kernel, KernelError};
use crate::routes::vxlan::{Fdb, Neigh, VxlanDevice};
use crate::routes::{Route, RTPROT_AKSNET};

pub struct NetlinkKernel {
    sock: Socket,
    /// The managed namespace (`None`: the agent's own).
    netns: Option<Arc<Netns>>,
    /// `nft`, started inside the managed namespace.
    nft: Nft,
    /// ctnetlink, opened in the managed namespace on first use.
    conntrack: Option<Conntrack>,
}

fn kerr(e: aksnet_linux::Error) -> KernelError {
    KernelError::Linux(e)
}

fn mac(s: &str) -> Result<MacAddr, KernelError> {
    s.parse().map_err(KernelError::Linux)
}

impl NetlinkKernel {
    pub fn new(netns: Option<&Path>) -> Result<Self, KernelError> {
        let ns = netns
            .map(|p| Netns::open(p).map(Arc::new))
            .transpose()
            .map_err(kerr)?;
        let sock = match &ns {
            Some(ns) => Socket::new_in(ns).map_err(kerr)?,
            None => Socket::new().map_err(kerr)?,
        };
        let nft = match &ns {
            Some(ns) => Nft::in_netns(ns.clone()),
            None => Nft::current(),
        };
        Ok(Self {
            sock,
            netns: ns,
            nft,
            conntrack: None,
        })
    }

    /// Runs `f` in the managed namespace: on a short-lived thread that
    /// enters it under a guard (`net.*` sysctls follow the opening thread's
    /// namespace, and `nft` children inherit it), so the agent's own
    /// threads never move.
    fn in_netns<T: Send>(
        &self,
        f: impl FnOnce() -> aksnet_linux::Result<T> + Send,
    ) -> Result<T, KernelError> {
        match &self.netns {
            None => f().map_err(kerr),
            Some(ns) => std::thread::scope(|s| {
                s.spawn(|| ns.run(f))
                    .join()
                    .map_err(|_| KernelError::Parse("namespace thread panicked".into()))?
                    .map_err(kerr)
            }),
        }
    }

    fn index_of(&mut self, name: &str) -> Result<Option<u32>, KernelError> {
        Ok(self.sock.link_by_name(name).map_err(kerr)?.map(|l| l.index))
    }

    fn link_names(&mut self) -> Result<BTreeMap<u32, String>, KernelError> {
        Ok(self
            .sock
            .links()
            .map_err(kerr)?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect())
    }
}

impl Driver for NetlinkKernel {
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError> {
        self.nft.apply(batch)
    }

    fn list(&mut self, table: &TableId) -> Result<Option<Listing>, DriverError> {
        self.nft.list(table)
    }
}

impl Kernel for NetlinkKernel {
    fn routes(&mut self) -> Result<Vec<Route>, KernelError> {
        let names = self.link_names()?;
        Ok(self
            .sock
            .routes(false, Some(TABLE_MAIN))
            .map_err(kerr)?
            .into_iter()
            .filter(|r| r.protocol == Some(RTPROT_AKSNET))
            .filter_map(|r| {
                let IpNet::V4(dst) = r.dst else { return None };
                let Some(IpAddr::V4(via)) = r.gateway else {
                    return None;
                };
                Some(Route {
                    dst,
                    via,
                    dev: r.oif.and_then(|i| names.get(&i).cloned()),
                    onlink: r.onlink,
                })
            })
            .collect())
    }

    /// Every route is tried: one peer whose next hop the kernel refuses
    /// (not on a connected network, say) does not keep the others out. The
    /// failures are reported together.
    fn program_routes(&mut self, replace: &[Route], delete: &[Route]) -> Result<(), KernelError> {
        let mut failed = Vec::new();
        for r in delete {
            let mut lr = lroute::Route::new(IpNet::V4(r.dst)).table(TABLE_MAIN);
            lr.protocol = Some(RTPROT_AKSNET);
            if let Err(e) = self.sock.del_route(&lr) {
                failed.push(format!("delete {}: {e}", r.dst));
            }
        }
        for r in replace {
            let mut lr = lroute::Route::new(IpNet::V4(r.dst)).via(IpAddr::V4(r.via));
            if let Some(d) = &r.dev {
                match self.index_of(d)? {
                    Some(idx) => lr = lr.dev(idx),
                    None => {
                        failed.push(format!("{} dev {d}: no such link", r.dst));
                        continue;
                    }
                }
            }
            if r.onlink {
                lr = lr.onlink();
            }
            lr.protocol = Some(RTPROT_AKSNET);
            if let Err(e) = self.sock.replace_route(&lr) {
                failed.push(format!("{} via {}: {e}", r.dst, r.via));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(KernelError::Command {
                command: format!("program {} route(s)", replace.len() + delete.len()),
                message: failed.join("; "),
            })
        }
    }

    fn ensure_vxlan(&mut self, d: &VxlanDevice) -> Result<bool, KernelError> {
        let want_mac = mac(&d.mac)?;
        let cur = self.sock.vxlan_info(&d.name).map_err(kerr)?;
        let mut changed = false;
        let same = cur.as_ref().is_some_and(|c| {
            c.vni == Some(d.vni)
                && c.local == Some(IpAddr::V4(d.local))
                && c.port == Some(d.port)
                && c.learning == Some(false)
                && c.mac == Some(want_mac)
        });
        if !same {
            if cur.is_some() || self.index_of(&d.name)?.is_some() {
                self.sock.delete_link_by_name(&d.name).map_err(kerr)?;
            }
            self.sock
                .create_vxlan(&VxlanSpec {
                    name: d.name.clone(),
                    vni: d.vni,
                    local: Some(IpAddr::V4(d.local)),
                    underlay: None,
                    port: Some(d.port),
                    learning: false,
                    mtu: Some(d.mtu),
                    mac: Some(want_mac),
                    up: false,
                })
                .map_err(kerr)?;
            changed = true;
        }
        let info = self
            .sock
            .vxlan_info(&d.name)
            .map_err(kerr)?
            .ok_or_else(|| KernelError::Parse(format!("{} vanished after creation", d.name)))?;
        let want = IpNet::V4(Ipv4Net::new(d.address, 32).map_err(KernelError::Prefix)?);
        let addrs = self.sock.addresses(Some(info.index)).map_err(kerr)?;
        if !addrs.iter().any(|a| a.addr == want) {
            for a in addrs.iter().filter(|a| a.addr.addr().is_ipv4()) {
                self.sock.del_address(info.index, a.addr).map_err(kerr)?;
            }
            self.sock
                .add_address(info.index, want, Default::default())
                .map_err(kerr)?;
            changed = true;
        }
        let change = LinkChange {
            up: (!info.up).then_some(true),
            mtu: (info.mtu != Some(d.mtu)).then_some(d.mtu),
            ..LinkChange::default()
        };
        if change.up.is_some() || change.mtu.is_some() {
            self.sock.set_link(info.index, &change).map_err(kerr)?;
            changed = true;
        }
        Ok(changed)
    }

    fn remove_link(&mut self, name: &str) -> Result<(), KernelError> {
        self.sock.delete_link_by_name(name).map_err(kerr)?;
        Ok(())
    }

    fn l2_entries(&mut self, dev: &str) -> Result<(Vec<Neigh>, Vec<Fdb>), KernelError> {
        let Some(idx) = self.index_of(dev)? else {
            return Ok((vec![], vec![]));
        };
        let neighs = self
            .sock
            .neighbours(idx)
            .map_err(kerr)?
            .into_iter()
            .filter(|n| n.permanent)
            .filter_map(|n| match (n.ip, n.mac) {
                (IpAddr::V4(ip), Some(m)) => Some(Neigh {
                    ip,
                    mac: m.to_string(),
                }),
                _ => None,
            })
            .collect();
        let fdb = self
            .sock
            .fdb_entries(idx)
            .map_err(kerr)?
            .into_iter()
            .filter_map(|f| match f.dst {
                Some(IpAddr::V4(dst)) => Some(Fdb {
                    mac: f.mac.to_string(),
                    dst,
                }),
                _ => None,
            })
            .collect();
        Ok((neighs, fdb))
    }

    fn program_l2(
        &mut self,
        dev: &str,
        add_neighs: &[Neigh],
        del_neighs: &[Neigh],
        add_fdb: &[Fdb],
        del_fdb: &[Fdb],
    ) -> Result<(), KernelError> {
        let idx = self.index_of(dev)?.ok_or_else(|| KernelError::Command {
            command: format!("program {dev}"),
            message: format!("no link {dev}"),
        })?;
        for n in del_neighs {
            self.sock
                .del_neighbour(idx, IpAddr::V4(n.ip))
                .map_err(kerr)?;
        }
        for f in del_fdb {
            self.sock
                .fdb_del(idx, mac(&f.mac)?, IpAddr::V4(f.dst))
                .map_err(kerr)?;
        }
        for f in add_fdb {
            match self.sock.fdb_append(idx, mac(&f.mac)?, IpAddr::V4(f.dst)) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(kerr(e)),
            }
        }
        for n in add_neighs {
            self.sock
                .set_neighbour(idx, IpAddr::V4(n.ip), mac(&n.mac)?)
                .map_err(kerr)?;
        }
        Ok(())
    }

    fn sysctl(&mut self, name: &str) -> Result<String, KernelError> {
        let parts: Vec<&str> = name.split('.').collect();
        self.in_netns(|| sysctl::get(&parts))
    }

    fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), KernelError> {
        let parts: Vec<&str> = name.split('.').collect();
        self.in_netns(|| sysctl::set(&parts, value))
    }

    fn link_with_address(&mut self, ip: Ipv4Addr) -> Result<Option<AddressedLink>, KernelError> {
        let addrs = self.sock.addresses(None).map_err(kerr)?;
        let Some(a) = addrs.iter().find(|a| a.addr.addr() == IpAddr::V4(ip)) else {
            return Ok(None);
        };
        let link = self.sock.link_by_index(a.index).map_err(kerr)?;
        Ok(link.map(|l| AddressedLink {
            name: l.name,
            mtu: l.mtu.unwrap_or(1500),
            address: ip,
        }))
    }

    fn flush_conntrack(&mut self, stale: &dyn Fn(&Flow) -> bool) -> Result<usize, KernelError> {
        if self.conntrack.is_none() {
            let ct = match &self.netns {
                Some(ns) => Conntrack::new_in(ns),
                None => Conntrack::new(),
            }
            .map_err(kerr)?;
            self.conntrack = Some(ct);
        }
        let Some(ct) = self.conntrack.as_mut() else {
            return Ok(0);
        };
        aksnet_linux::conntrack::delete_where(ct, stale).map_err(kerr)
    }
}
