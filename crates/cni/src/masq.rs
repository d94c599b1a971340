//! `ipMasq: true`: masquerade for pod addresses, in nftables tables owned by
//! this plugin (`ip aksnet-cni`, `ip6 aksnet-cni`):
//!
//! ```text
//! table ip aksnet-cni {
//!     set pods     { type ipv4_addr; }                          # POD           comment TAG
//!     set pod_nets { type ipv4_addr . ipv4_addr; flags interval; } # POD . SUBNET  comment TAG
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr 224.0.0.0/4 return
//!         ip saddr . ip daddr @pod_nets return
//!         ip saddr @pods masquerade
//!     }
//! }
//! ```
//!
//! The chain is the same for every pod; an attachment owns two elements,
//! commented with its tag ([`crate::tag::attachment_tag`]). ADD rewrites the
//! chain (flush and add, in its transaction, so concurrent ADDs never leave
//! a rule twice) and adds its elements: a repeated ADD adds identical
//! elements, which the kernel accepts as they are. DEL and GC list the sets
//! and delete the elements whose tag is stale; when there are none — the
//! table never existed, or another DEL removed them — there is nothing to
//! do, and that is the success. Node-level SNAT is the agent's
//! (`ip aksnet-agent`); nothing here touches it.

use std::collections::HashSet;

use aksnet_core::cni::{Attachment, CniError, CniResult};
use aksnet_nft::build::{daddr, in_set, ret};
use aksnet_nft::{
    list_and_apply, BaseChain, Batch, Chain, Command, Driver, DriverError, Element, Expr, Family,
    Hook, KeyType, Listing, Payload, Rule, Set, Stmt, Table, TableId, Value,
};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::tag;

/// The table name (in both families).
pub const TABLE: &str = "aksnet-cni";
/// The chain name.
pub const CHAIN: &str = "postrouting";
/// Pod addresses to masquerade.
pub const PODS: &str = "pods";
/// (pod address, its subnet): destinations that keep the pod's source.
pub const POD_NETS: &str = "pod_nets";
/// Listing, building and applying again when another call changed the
/// table meanwhile.
const ATTEMPTS: u32 = 5;
const FAMILIES: [Family; 2] = [Family::Ip, Family::Ip6];

fn nerr(what: &str, e: DriverError) -> CniError {
    CniError::internal(format!("{what}: {e}"))
}

/// The fixed part of `family`'s table: the chain and the two (empty) sets.
pub fn skeleton(family: Family) -> Table {
    let v4 = family == Family::Ip;
    let (addr, mcast, sa, da) = if v4 {
        (
            KeyType::Ipv4Addr,
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4)),
            Payload::IpSaddr,
            Payload::IpDaddr,
        )
    } else {
        (
            KeyType::Ipv6Addr,
            IpNet::V6(Ipv6Net::new_assert(
                Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
                8,
            )),
            Payload::Ip6Saddr,
            Payload::Ip6Daddr,
        )
    };
    let mut t = Table::new(family, TABLE);
    t.set(PODS, Set::new(vec![addr]));
    t.set(POD_NETS, Set::new(vec![addr, addr]).interval());
    t.chain(
        CHAIN,
        Chain::base(
            BaseChain::nat(Hook::Postrouting),
            vec![
                Rule::new([daddr(mcast), ret()]),
                Rule::new([
                    in_set(
                        Expr::Concat(vec![Expr::Payload(sa), Expr::Payload(da)]),
                        POD_NETS,
                    ),
                    ret(),
                ]),
                Rule::new([in_set(Expr::Payload(sa), PODS), Stmt::Masquerade]),
            ],
        ),
    );
    t
}

fn tagged(tag: &str) -> Element {
    Element {
        comment: Some(tag.to_string()),
        ..Element::default()
    }
}

/// The two elements of one pod address: `(pods key, pod_nets key)`.
fn keys(ip: &ipnet::IpNet) -> (Value, Value) {
    let pod = Value::Addr(ip.addr());
    (
        pod.clone(),
        Value::Concat(vec![pod, Value::net(ip.trunc())]),
    )
}

/// Elements of `set` in the listing whose comment satisfies `stale`, or
/// (for `also`) whose pod address is one being added again.
fn victims(
    l: Option<&Listing>,
    set: &str,
    stale: &dyn Fn(&str) -> bool,
    also: &[Value],
) -> Vec<Value> {
    let Some(s) = l.and_then(|l| l.set(set)) else {
        return vec![];
    };
    s.elements
        .iter()
        .filter(|(k, e)| {
            let pod = match k {
                Value::Concat(v) => v.first(),
                v => Some(*v),
            };
            e.comment.as_deref().is_some_and(stale) || pod.is_some_and(|p| also.contains(p))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn delete(b: &mut Batch, id: &TableId, set: &str, keys: Vec<Value>) {
    if !keys.is_empty() {
        b.push(Command::DeleteElements {
            table: id.clone(),
            set: set.to_string(),
            keys,
        });
    }
}

/// ADD: the skeleton, and the attachment's elements for every address of
/// `r`. Elements a previous ADD of the attachment left, or that another
/// attachment left for an address handed out again, are replaced.
pub fn add(d: &mut dyn Driver, tag: &str, r: &CniResult) -> Result<(), CniError> {
    for family in FAMILIES {
        let ips: Vec<IpNet> = r
            .ips
            .iter()
            .map(|i| i.address)
            .filter(|a| Family::of(&a.addr()) == family)
            .collect();
        if ips.is_empty() {
            continue;
        }
        let skel = skeleton(family);
        let id = skel.id();
        let pods: Vec<Value> = ips.iter().map(|i| keys(i).0).collect();
        let build = |l: Option<&Listing>| {
            let mut b = aksnet_nft::ensure(&skel, &[]);
            let same = |c: &str| c == tag;
            let (a, n): (Vec<_>, Vec<_>) = ips.iter().map(keys).unzip();
            // What is there already, tagged as this ADD would tag it, stays
            // (a repeated ADD deletes nothing and adds identical elements).
            let mine = |set: &str, wanted: &[Value]| {
                let keep = |k: &Value| {
                    wanted.contains(k)
                        && l.and_then(|l| l.set(set))
                            .and_then(|s| s.elements.get(k))
                            .is_some_and(|e| e.comment.as_deref() == Some(tag))
                };
                victims(l, set, &same, &pods)
                    .into_iter()
                    .filter(|k| !keep(k))
                    .collect::<Vec<_>>()
            };
            delete(&mut b, &id, PODS, mine(PODS, &a));
            delete(&mut b, &id, POD_NETS, mine(POD_NETS, &n));
            b.push(Command::AddElements {
                table: id.clone(),
                set: PODS.into(),
                elements: a.into_iter().map(|k| (k, tagged(tag))).collect(),
            });
            b.push(Command::AddElements {
                table: id.clone(),
                set: POD_NETS.into(),
                elements: n.into_iter().map(|k| (k, tagged(tag))).collect(),
            });
            b
        };
        list_and_apply(d, &id, ATTEMPTS, &build)
            .map_err(|e| nerr("cannot add the masquerade elements", e))?;
    }
    Ok(())
}

/// Deletes the elements whose tag satisfies `stale`, in both tables.
/// Returns how many were deleted; none is success.
fn delete_where(d: &mut dyn Driver, stale: &dyn Fn(&str) -> bool) -> Result<usize, CniError> {
    let mut n = 0;
    for family in FAMILIES {
        let id = TableId::new(family, TABLE);
        // What the batch that was applied deleted (the last one built).
        let deleted = std::cell::Cell::new(0);
        let build = |l: Option<&Listing>| {
            let mut b = Batch::new();
            let pods = victims(l, PODS, stale, &[]);
            let nets = victims(l, POD_NETS, stale, &[]);
            deleted.set(pods.len() + nets.len());
            delete(&mut b, &id, PODS, pods);
            delete(&mut b, &id, POD_NETS, nets);
            b
        };
        list_and_apply(d, &id, ATTEMPTS, &build)
            .map_err(|e| nerr("cannot delete masquerade elements", e))?;
        n += deleted.get();
    }
    Ok(n)
}

/// DEL: remove the attachment's elements (none is fine: nothing of it is
/// left to remove).
pub fn del(d: &mut dyn Driver, tag: &str) -> Result<(), CniError> {
    delete_where(d, &|c| c == tag).map(|_| ())
}

/// GC: remove the elements of network `net` that belong to no valid
/// attachment.
pub fn gc(d: &mut dyn Driver, net: &str, valid: &[Attachment]) -> Result<usize, CniError> {
    let prefix = tag::net_prefix(net);
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| tag::attachment_tag(net, &a.container_id, &a.ifname))
        .collect();
    delete_where(d, &|c| c.starts_with(&prefix) && !keep.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::cni::IpConfig;
    use aksnet_nft::{trace, Fake, Final, Host, Packet};

    fn result(addrs: &[&str]) -> CniResult {
        let mut r = CniResult::default();
        for a in addrs {
            r.ips.push(IpConfig {
                address: a.parse().unwrap(),
                gateway: None,
                interface: None,
            });
        }
        r
    }

    fn post(f: &Fake, p: &Packet) -> aksnet_nft::Trace {
        let host = Host {
            masquerade_to: Some("10.224.0.4".parse().unwrap()),
            ..Host::default()
        };
        trace(&f.ruleset(), &host, p, &[Hook::Postrouting])
    }

    #[test]
    fn repeated_add_is_idempotent_and_traces_masquerade() {
        let mut f = Fake::new();
        let r = result(&["10.244.0.5/24", "fd00::5/64"]);
        add(&mut f, "aksnet n c1 eth0", &r).unwrap();
        let once = f.dump();
        add(&mut f, "aksnet n c1 eth0", &r).unwrap();
        assert_eq!(f.dump(), once, "a repeated ADD changes nothing");
        assert!(
            once.contains("elements = { 10.244.0.5 . 10.244.0.0/24 comment \"aksnet n c1 eth0\" }"),
            "{once}"
        );
        let out = post(&f, &Packet::tcp("10.244.0.5", 40000, "203.0.113.7", 443));
        assert_eq!(out.verdict, Final::Accept);
        assert_eq!(out.nat, vec!["masquerade"]);
        assert_eq!(
            out.after.saddr,
            "10.224.0.4".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(
            out.rules(),
            vec!["ip aksnet-cni postrouting: ip saddr @pods masquerade"]
        );
        let local = post(&f, &Packet::tcp("10.244.0.5", 40000, "10.244.0.9", 80));
        assert!(local.nat.is_empty(), "inside the pod's subnet");
        let mcast = post(&f, &Packet::udp("10.244.0.5", 5353, "224.0.0.251", 5353));
        assert!(mcast.nat.is_empty());
        let v6 = post(&f, &Packet::tcp("fd00::5", 1, "2001:db8::1", 443));
        assert_eq!(v6.nat, vec!["masquerade"]);
        let other = post(&f, &Packet::tcp("10.244.0.6", 1, "203.0.113.7", 443));
        assert!(other.nat.is_empty(), "not an attached pod");
    }

    #[test]
    fn del_removes_only_its_elements_and_absent_state_is_success() {
        let mut f = Fake::new();
        // Nothing exists: DEL succeeds without writing anything.
        del(&mut f, "aksnet n c1 eth0").unwrap();
        assert!(f.applied.is_empty() && f.dump().is_empty());
        add(&mut f, "aksnet n c1 eth0", &result(&["10.244.0.5/24"])).unwrap();
        add(&mut f, "aksnet n c2 eth0", &result(&["10.244.0.6/24"])).unwrap();
        del(&mut f, "aksnet n c1 eth0").unwrap();
        let dump = f.dump();
        assert!(
            !dump.contains("10.244.0.5") && dump.contains("10.244.0.6"),
            "{dump}"
        );
        let writes = f.applied.len();
        del(&mut f, "aksnet n c1 eth0").unwrap();
        assert_eq!(f.applied.len(), writes, "a second DEL finds nothing to do");
        assert!(post(&f, &Packet::tcp("10.244.0.5", 1, "203.0.113.7", 443))
            .nat
            .is_empty());
    }

    #[test]
    fn an_address_handed_out_again_replaces_the_stale_elements() {
        let mut f = Fake::new();
        add(&mut f, "aksnet n old eth0", &result(&["10.244.0.5/24"])).unwrap();
        // The same address in another subnet would overlap in pod_nets.
        add(&mut f, "aksnet n new eth0", &result(&["10.244.0.5/16"])).unwrap();
        let dump = f.dump();
        assert!(
            !dump.contains("old eth0") && dump.contains("10.244.0.5 . 10.244.0.0/16"),
            "{dump}"
        );
    }

    #[test]
    fn gc_keeps_valid_and_foreign_networks() {
        let mut f = Fake::new();
        add(
            &mut f,
            &tag::attachment_tag("n", "a", "eth0"),
            &result(&["10.244.0.5/24"]),
        )
        .unwrap();
        add(
            &mut f,
            &tag::attachment_tag("n", "b", "eth0"),
            &result(&["10.244.0.6/24"]),
        )
        .unwrap();
        add(
            &mut f,
            &tag::attachment_tag("m", "c", "eth0"),
            &result(&["10.244.0.7/24"]),
        )
        .unwrap();
        let valid = vec![Attachment {
            container_id: "a".into(),
            ifname: "eth0".into(),
        }];
        assert_eq!(gc(&mut f, "n", &valid).unwrap(), 2);
        let dump = f.dump();
        assert!(
            dump.contains("10.244.0.5 ")
                && !dump.contains("10.244.0.6")
                && dump.contains("10.244.0.7"),
            "{dump}"
        );
    }
}
