//! `ipMasq: true`: one masquerade rule per pod address in nftables tables
//! owned by this plugin (`ip aksnet-cni`, `ip6 aksnet-cni`, chain
//! `postrouting`). Each rule's comment is the attachment's tag
//! ([`crate::tag::attachment_tag`]), which is how DEL and GC find it.
//! Node-level SNAT is the agent's (`ip aksnet-agent`); nothing here touches
//! it.

use std::collections::HashSet;

use aksnet_core::cni::{Attachment, CniError, CniResult};
use aksnet_linux::nft::{self, expr, BaseChain, Batch, Family};
use ipnet::IpNet;

use crate::common::kerr;
use crate::tag;

/// The table name (in both families).
pub const TABLE: &str = "aksnet-cni";
/// The chain name.
pub const CHAIN: &str = "postrouting";

fn family(v4: bool) -> Family {
    if v4 {
        Family::Ip
    } else {
        Family::Ip6
    }
}

/// Add a rule per address of `r`: traffic from the pod leaving its subnet
/// (multicast excepted) is masqueraded.
pub fn add(tag: &str, r: &CniResult) -> Result<(), CniError> {
    let mut b = Batch::new();
    let mut tables = HashSet::new();
    for ip in &r.ips {
        let v4 = ip.address.addr().is_ipv4();
        let f = family(v4);
        if tables.insert(v4) {
            b.add_table(f, TABLE)
                .add_chain(f, TABLE, CHAIN, Some(&BaseChain::nat("postrouting")));
        }
        let pod = IpNet::from(ip.address.addr());
        let mcast: IpNet = if v4 { "224.0.0.0/4" } else { "ff00::/8" }
            .parse()
            .map_err(|_| CniError::internal("bad multicast prefix"))?;
        b.add_rule(
            f,
            TABLE,
            CHAIN,
            vec![
                expr::saddr("==", &pod),
                expr::daddr("!=", &ip.address.trunc()),
                expr::daddr("!=", &mcast),
                expr::masquerade(),
            ],
            Some(tag),
        );
    }
    nft::apply(&b).map_err(|e| kerr("cannot add the masquerade rule", e))
}

/// Delete the rules whose comment satisfies `stale`, in both tables.
fn delete_where(stale: &dyn Fn(&str) -> bool) -> Result<usize, CniError> {
    let mut b = Batch::new();
    for f in [Family::Ip, Family::Ip6] {
        let Some(t) =
            nft::list_table(f, TABLE).map_err(|e| kerr("cannot list the masquerade rules", e))?
        else {
            continue;
        };
        for r in &t.rules {
            if r.chain == CHAIN && r.comment.as_deref().is_some_and(stale) {
                b.delete_rule(f, TABLE, CHAIN, r.handle);
            }
        }
    }
    let n = b.len();
    match nft::apply(&b) {
        Ok(()) => Ok(n),
        // A concurrent DEL/GC removed a rule between listing and deletion:
        // list again next time; what is gone is gone.
        Err(e) if e.to_string().contains("No such file or directory") => Ok(n),
        Err(e) => Err(kerr("cannot delete masquerade rules", e)),
    }
}

/// DEL: remove the attachment's rules (none is fine).
pub fn del(tag: &str) -> Result<(), CniError> {
    delete_where(&|c| c == tag).map(|_| ())
}

/// GC: remove the rules of network `net` that belong to no valid
/// attachment.
pub fn gc(net: &str, valid: &[Attachment]) -> Result<usize, CniError> {
    let prefix = tag::net_prefix(net);
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| tag::attachment_tag(net, &a.container_id, &a.ifname))
        .collect();
    delete_where(&|c| c.starts_with(&prefix) && !keep.contains(c))
}
