//! Removing what aksnet programmed into a node, for `aksnet uninstall
//! --purge`: the nftables tables aksnet owns, the routes of the agent's
//! route protocol, the agent's VXLAN device, and the node's conflist and
//! IPAM allocations.
//!
//! Everything is found by the owners' own names (table-name constants,
//! [`RTPROT_AKSNET`], [`vxlan::DEVICE`], [`conflist::FILE_NAME`],
//! [`NETWORK_NAME`]), so nothing another program made is touched. The
//! kernel part runs against the namespace given (`None`: the caller's):
//! tests point it at a namespace they created. Stop the agent first, or it
//! programs everything again on its next reconcile.

use std::path::{Path, PathBuf};

use aksnet_linux::nft_driver::Nft;
use aksnet_linux::route::TABLE_MAIN;
use aksnet_linux::{Netns, Socket};
use aksnet_nft::{Driver, TableId};
use ipnet::IpNet;

use crate::conflist::{self, NETWORK_NAME};
use crate::error::AgentError;
use crate::kernel::KernelError;
use crate::routes::{vxlan, RTPROT_AKSNET};
use crate::{services, snat};

/// The agent's own nftables tables. A new controller that owns a table adds
/// it here, so `--purge` keeps removing everything the agent made.
pub fn agent_tables() -> Vec<TableId> {
    vec![snat::table_id(), services::table_id()]
}

/// What a purge removed from the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgedKernel {
    /// `FAMILY NAME` of each table deleted.
    pub tables: Vec<String>,
    /// Destinations of the routes deleted.
    pub routes: Vec<IpNet>,
    /// Links deleted.
    pub links: Vec<String>,
}

fn kernel_err(what: &str, e: aksnet_linux::Error) -> AgentError {
    AgentError::Kernel(KernelError::Command {
        command: format!("purge: {what}"),
        message: e.to_string(),
    })
}

/// Deletes `tables` (those that exist), every IPv4 and IPv6 route of
/// protocol [`RTPROT_AKSNET`] in the main table, and the VXLAN device, in
/// the namespace at `netns` (the caller's own when `None`).
pub fn kernel(netns: Option<&Path>, tables: &[TableId]) -> Result<PurgedKernel, AgentError> {
    let ns = netns
        .map(Netns::open)
        .transpose()
        .map_err(|e| kernel_err("open the namespace", e))?;
    let mut out = PurgedKernel::default();
    // The one nftables driver, in the namespace (nft runs there).
    let mut nft = match &ns {
        Some(ns) => Nft::in_netns(std::sync::Arc::new(
            ns.try_clone()
                .map_err(|e| kernel_err("open the namespace", e))?,
        )),
        None => Nft::current(),
    };
    for id in tables {
        let nft_err = |e: aksnet_nft::DriverError| {
            AgentError::Kernel(KernelError::Command {
                command: format!("purge: nftables table {id}"),
                message: e.to_string(),
            })
        };
        if nft.list(id).map_err(nft_err)?.is_some() {
            nft.apply(&aksnet_nft::diff::delete(id)).map_err(nft_err)?;
            out.tables.push(id.to_string());
        }
    }

    let mut sock = match &ns {
        Some(ns) => Socket::new_in(ns),
        None => Socket::new(),
    }
    .map_err(|e| kernel_err("netlink socket", e))?;
    for v6 in [false, true] {
        let routes = sock
            .routes(v6, Some(TABLE_MAIN))
            .map_err(|e| kernel_err("list routes", e))?;
        for r in routes
            .into_iter()
            .filter(|r| r.protocol == Some(RTPROT_AKSNET))
        {
            if sock
                .del_route(&r)
                .map_err(|e| kernel_err("delete route", e))?
            {
                out.routes.push(r.dst);
            }
        }
    }
    if sock
        .delete_link_by_name(vxlan::DEVICE)
        .map_err(|e| kernel_err("delete link", e))?
    {
        out.links.push(vxlan::DEVICE.to_string());
    }
    Ok(out)
}

/// Deletes the agent's conflist in `cni_conf_dir` and aksnet-ipam's
/// allocations (`<ipam_data_dir>/aksnet/`), returning what existed.
pub fn files(cni_conf_dir: &Path, ipam_data_dir: &Path) -> Result<Vec<PathBuf>, AgentError> {
    let mut removed = Vec::new();
    let conf = cni_conf_dir.join(conflist::FILE_NAME);
    match std::fs::remove_file(&conf) {
        Ok(()) => removed.push(conf),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(AgentError::Io { path: conf, source }),
    }
    let ipam = ipam_data_dir.join(NETWORK_NAME);
    match std::fs::remove_dir_all(&ipam) {
        Ok(()) => removed.push(ipam),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(AgentError::Io { path: ipam, source }),
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_removes_the_conflist_and_the_network_dir_only() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let data = dir.path().join("networks");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(data.join(NETWORK_NAME)).unwrap();
        std::fs::create_dir_all(data.join("other")).unwrap();
        std::fs::write(conf.join(conflist::FILE_NAME), "{}").unwrap();
        std::fs::write(conf.join("99-other.conflist"), "{}").unwrap();
        std::fs::write(data.join(NETWORK_NAME).join("10.244.0.2"), "c1").unwrap();
        std::fs::write(data.join("other").join("10.0.0.2"), "c2").unwrap();

        let removed = files(&conf, &data).unwrap();
        assert_eq!(
            removed,
            vec![conf.join(conflist::FILE_NAME), data.join(NETWORK_NAME)]
        );
        assert!(conf.join("99-other.conflist").exists());
        assert!(data.join("other").join("10.0.0.2").exists());
        // A second purge finds nothing and is not an error.
        assert!(files(&conf, &data).unwrap().is_empty());
    }
}
