//! `aksnet-portmap`: host ports for containers (the `portMappings`
//! capability) in nftables, as a chained plugin.
//!
//! * [`config`]: `snat` and `runtimeConfig.portMappings`; the container's
//!   addresses from `prevResult`.
//! * [`rules`]: the tables, chains and per-attachment rules as data, and
//!   the CHECK comparison with a listing.
//! * [`kernel`]: applying them in the host namespace.
//!
//! The plugin runs in the host's network namespace (as runtimes run every
//! plugin); it never enters the container's.

pub mod config;
pub mod kernel;
pub mod rules;

use std::collections::HashSet;
use std::net::IpAddr;

use aksnet_core::cni::{code, CniError, CniResult};
use aksnet_nft::Family;

use crate::skel::{Plugin, Request};
use crate::tag;
use config::{container_ips, PortmapConf};
use rules::Rule;

/// The `aksnet-portmap` plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortmapPlugin;

fn prev_result(req: &Request) -> Result<CniResult, CniError> {
    req.conf.prev()?.ok_or_else(|| {
        CniError::config(
            "aksnet-portmap must be called as a chained plugin: the configuration has no prevResult",
        )
    })
}

/// What one attachment maps: the container's addresses and the rules.
struct Plan {
    ips: Vec<IpAddr>,
    rules: Vec<Rule>,
}

/// The attachment's rules; `Ok(None)` when there is nothing to map.
fn planned(req: &Request, prev: &CniResult) -> Result<Option<Plan>, CniError> {
    let conf = PortmapConf::parse(&req.raw)?;
    if conf.mappings.is_empty() {
        return Ok(None);
    }
    let ips = container_ips(prev, &req.env.ifname);
    if ips.is_empty() {
        return Err(CniError::config(format!(
            "prevResult has no IP address on the container interface {:?}: nothing to map host ports to",
            req.env.ifname
        )));
    }
    let rules = rules::attachment_rules(&conf, &ips);
    Ok(Some(Plan { ips, rules }))
}

fn attachment_tag(req: &Request) -> String {
    tag::attachment_tag(&req.conf.name, &req.env.container_id, &req.env.ifname)
}

const FAMILIES: [Family; 2] = [Family::Ip, Family::Ip6];

impl Plugin for PortmapPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let prev = prev_result(req)?;
        let Some(Plan { ips, rules }) = planned(req, &prev)? else {
            return Ok(prev);
        };
        let tag = attachment_tag(req);
        for family in rules::families(&rules) {
            kernel::list_and_apply(family, "add port mappings", |table| {
                rules::add_batch(family, table, &tag, &rules)
            })?;
        }
        if rules::needs_route_localnet(&rules) {
            let devs = kernel::enable_route_localnet(&ips)?;
            tracing::debug!(?devs, "route_localnet enabled");
        }
        tracing::info!(%tag, rules = rules.len(), "port mappings added");
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        // By tag, whatever the configuration says now: the mappings given
        // at ADD may not be repeated at DEL.
        let tag = attachment_tag(req);
        for family in FAMILIES {
            kernel::list_and_apply(family, "delete port mappings", |table| {
                rules::delete_batch(
                    family,
                    table.into_iter().flat_map(|t| t.rules_with_comment(&tag)),
                )
            })?;
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let prev = prev_result(req)?;
        let Some(Plan { rules, .. }) = planned(req, &prev)? else {
            return Ok(());
        };
        let tag = attachment_tag(req);
        for family in rules::families(&rules) {
            let table = kernel::list(family)?.ok_or_else(|| {
                CniError::internal(format!("table {family} {} does not exist", rules::TABLE))
            })?;
            rules::verify(&table, family, &tag, &rules).map_err(CniError::internal)?;
        }
        Ok(())
    }

    fn status(&self, _req: &Request) -> Result<(), CniError> {
        // Available when nft runs and may read the table.
        kernel::list(Family::Ip).map(|_| ()).map_err(|e| {
            CniError::new(
                code::NOT_AVAILABLE,
                "aksnet-portmap cannot use nftables",
                e.msg,
            )
        })
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let Some(valid) = req.conf.gc_attachments() else {
            // Without the list every attachment would look stale.
            tracing::warn!("GC without cni.dev/valid-attachments: nothing removed");
            return Ok(());
        };
        let valid: HashSet<String> = valid
            .iter()
            .map(|a| tag::attachment_tag(&req.conf.name, &a.container_id, &a.ifname))
            .collect();
        let prefix = tag::net_prefix(&req.conf.name);
        for family in FAMILIES {
            kernel::list_and_apply(family, "garbage-collect port mappings", |table| {
                rules::delete_batch(
                    family,
                    table
                        .into_iter()
                        .flat_map(|t| rules::gc_victims(t, &prefix, &valid)),
                )
            })?;
        }
        Ok(())
    }
}
