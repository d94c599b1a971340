//! An in-memory [`Kernel`] that records every change, for tests of the
//! reconcile logic (convergence, no-op restarts) without root.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use aksnet_nft::{Batch, Driver, DriverError, Fake, Listing, TableId};

use super::{AddressedLink, Kernel, KernelError};
use crate::routes::vxlan::{Fdb, Neigh, VxlanDevice};
use crate::routes::Route;

#[derive(Debug, Default, Clone)]
pub struct FakeState {
    pub routes: BTreeMap<ipnet::Ipv4Net, Route>,
    pub vxlan: Option<VxlanDevice>,
    pub neighs: BTreeSet<Neigh>,
    pub fdb: BTreeSet<Fdb>,
    /// nftables: every table, applied batch by batch, atomically.
    pub nft: Fake,
    pub sysctls: BTreeMap<String, String>,
    pub links: Vec<AddressedLink>,
    /// Every change made, in order (for "changed nothing" assertions).
    pub writes: Vec<String>,
    /// When set, `program_routes` fails with this message (error paths).
    pub fail_routes: Option<String>,
    /// The conntrack table.
    pub conntrack: aksnet_linux::conntrack::FakeConntrack,
    /// When set, an nft batch whose text contains this fails (the kernel
    /// refusing one object of a ruleset).
    pub fail_nft_containing: Option<String>,
}

/// Cloneable handle: the test keeps one, the agent owns another.
#[derive(Debug, Default, Clone)]
pub struct FakeKernel(pub Arc<Mutex<FakeState>>);

impl FakeKernel {
    pub fn with_link(name: &str, address: Ipv4Addr, mtu: u32) -> Self {
        let k = Self::default();
        k.state().links.push(AddressedLink {
            name: name.into(),
            mtu,
            address,
        });
        k
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Driver for FakeKernel {
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError> {
        let mut s = self.state();
        if let Some(bad) = &s.fail_nft_containing {
            if batch.to_string().contains(bad.as_str()) {
                return Err(DriverError {
                    kind: aksnet_nft::ErrorKind::Invalid,
                    message: format!("{bad}: Cannot allocate memory"),
                });
            }
        }
        s.nft.apply(batch)?;
        if !batch.is_empty() {
            s.writes.push(format!("nft {} commands", batch.len()));
        }
        Ok(())
    }

    fn list(&mut self, table: &TableId) -> Result<Option<Listing>, DriverError> {
        self.state().nft.list(table)
    }
}

impl Kernel for FakeKernel {
    fn routes(&mut self) -> Result<Vec<Route>, KernelError> {
        Ok(self.state().routes.values().cloned().collect())
    }

    fn program_routes(&mut self, replace: &[Route], delete: &[Route]) -> Result<(), KernelError> {
        let mut s = self.state();
        if let Some(m) = &s.fail_routes {
            return Err(KernelError::Command {
                command: "program routes".into(),
                message: m.clone(),
            });
        }
        for r in delete {
            s.routes.remove(&r.dst);
            s.writes.push(format!("route del {}", r.dst));
        }
        for r in replace {
            let mut r = r.clone();
            if r.dev.is_none() {
                r.dev = Some("eth0".into());
            }
            s.writes.push(format!("route replace {}", r.dst));
            s.routes.insert(r.dst, r);
        }
        Ok(())
    }

    fn ensure_vxlan(&mut self, dev: &VxlanDevice) -> Result<bool, KernelError> {
        let mut s = self.state();
        if s.vxlan.as_ref() == Some(dev) {
            return Ok(false);
        }
        s.vxlan = Some(dev.clone());
        s.writes.push(format!("vxlan {}", dev.name));
        Ok(true)
    }

    fn remove_link(&mut self, name: &str) -> Result<(), KernelError> {
        let mut s = self.state();
        if s.vxlan.as_ref().is_some_and(|v| v.name == name) {
            s.vxlan = None;
            s.neighs.clear();
            s.fdb.clear();
            s.writes.push(format!("link del {name}"));
        }
        Ok(())
    }

    fn l2_entries(&mut self, _dev: &str) -> Result<(Vec<Neigh>, Vec<Fdb>), KernelError> {
        let s = self.state();
        Ok((
            s.neighs.iter().cloned().collect(),
            s.fdb.iter().cloned().collect(),
        ))
    }

    fn program_l2(
        &mut self,
        _dev: &str,
        add_neighs: &[Neigh],
        del_neighs: &[Neigh],
        add_fdb: &[Fdb],
        del_fdb: &[Fdb],
    ) -> Result<(), KernelError> {
        let mut s = self.state();
        for n in del_neighs {
            s.neighs.remove(n);
            s.writes.push(format!("neigh del {}", n.ip));
        }
        for f in del_fdb {
            s.fdb.remove(f);
            s.writes.push(format!("fdb del {}", f.mac));
        }
        for f in add_fdb {
            s.fdb.insert(f.clone());
            s.writes.push(format!("fdb add {}", f.mac));
        }
        for n in add_neighs {
            s.neighs.insert(n.clone());
            s.writes.push(format!("neigh add {}", n.ip));
        }
        Ok(())
    }

    fn sysctl(&mut self, name: &str) -> Result<String, KernelError> {
        Ok(self
            .state()
            .sysctls
            .get(name)
            .cloned()
            .unwrap_or_else(|| "0".into()))
    }

    fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), KernelError> {
        let mut s = self.state();
        s.writes.push(format!("sysctl {name}={value}"));
        s.sysctls.insert(name.into(), value.into());
        Ok(())
    }

    fn link_with_address(&mut self, ip: Ipv4Addr) -> Result<Option<AddressedLink>, KernelError> {
        Ok(self.state().links.iter().find(|l| l.address == ip).cloned())
    }

    fn flush_conntrack(
        &mut self,
        stale: &dyn Fn(&aksnet_linux::conntrack::Flow) -> bool,
    ) -> Result<usize, KernelError> {
        let mut s = self.state();
        let n = aksnet_linux::conntrack::delete_where(&mut s.conntrack, stale)
            .map_err(KernelError::Linux)?;
        if n > 0 {
            s.writes.push(format!("conntrack {n} deleted"));
        }
        Ok(n)
    }
}
