//! The nftables rules of aksnet-portmap, as data ([`aksnet_nft`]).
//!
//! One table per family, `ip aksnet-portmap` and `ip6 aksnet-portmap`:
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump hostports }
//! chain output      { type nat hook output priority dstnat;     fib daddr type local jump hostports }
//! chain postrouting { type nat hook postrouting priority srcnat; ct status dnat jump masquerading }
//! chain hostports    { [ip daddr HOSTIP] meta l4proto tcp th dport HOSTPORT counter dnat to C:PORT  comment TAG ... }
//! chain masquerading { ip saddr C ip daddr C meta l4proto tcp th dport PORT masquerade               comment TAG
//!                      ip saddr 127.0.0.0/8 ip daddr C meta l4proto tcp th dport PORT masquerade     comment TAG ... }
//! ```
//!
//! The three base chains hold only their jump, which every ADD writes again
//! after flushing them in the same transaction ([`aksnet_nft::ensure`]):
//! concurrent ADDs can never leave two jumps behind. Per-attachment rules
//! carry the attachment's tag (network, container ID, ifname) as comment,
//! so that DEL and GC delete exactly them by handle, and the table is never
//! deleted (another attachment's ADD may be committing into it). A batch
//! built from a listing that another call changed meanwhile is refused
//! whole and built again ([`aksnet_nft::list_and_apply`]).
//!
//! Masquerading (`snat`, as in the reference plugin): a container that
//! reaches itself through a host port (hairpin) would otherwise get a
//! packet from its own address and answer it locally, and a connection to
//! 127.0.0.1:HOSTPORT has a source that cannot leave the host.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use aksnet_nft::build::{ct_status, daddr, dnat, fib_daddr_local, jump, proto_dport, saddr};
use aksnet_nft::{
    listing, BaseChain, Batch, Chain, Command, CtStatus, Family, Hook, L4Proto, ListedRule,
    Listing, Stmt, Table, TableId,
};
use ipnet::{IpNet, Ipv4Net};

use super::config::{PortmapConf, Proto};

/// The table name (in the `ip` and `ip6` families).
pub const TABLE: &str = "aksnet-portmap";
/// Base chain at prerouting (traffic from other hosts and from pods).
pub const PREROUTING: &str = "prerouting";
/// Base chain at output (node-local access).
pub const OUTPUT: &str = "output";
/// Base chain at postrouting.
pub const POSTROUTING: &str = "postrouting";
/// The DNAT rules.
pub const HOSTPORTS: &str = "hostports";
/// The masquerade rules.
pub const MASQUERADING: &str = "masquerading";

/// A rule of one attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `ip` or `ip6`.
    pub family: Family,
    /// [`HOSTPORTS`] or [`MASQUERADING`].
    pub chain: &'static str,
    /// The rule (without the tag; [`add_batch`] adds it).
    pub rule: aksnet_nft::Rule,
}

fn family_of(ip: &IpAddr) -> Family {
    Family::of(ip)
}

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn loopback() -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8))
}

fn l4(p: Proto) -> L4Proto {
    match p {
        Proto::Tcp => L4Proto::Tcp,
        Proto::Udp => L4Proto::Udp,
        Proto::Sctp => L4Proto::Sctp,
    }
}

/// The table's identity in `family`.
pub fn table_id(family: Family) -> TableId {
    TableId::new(family, TABLE)
}

/// The rules of one attachment with container addresses `ips`. Mappings
/// whose `hostIP` is of the other family than a container address are
/// skipped for that address.
pub fn attachment_rules(conf: &PortmapConf, ips: &[IpAddr]) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut push = |r: Rule| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    for ip in ips {
        let family = family_of(ip);
        let c = host(*ip);
        for m in &conf.mappings {
            if m.host_ip.is_some_and(|h| family_of(&h) != family) {
                continue;
            }
            let proto = l4(m.proto);
            let mut dn = Vec::new();
            if let Some(h) = m.host_ip {
                dn.push(daddr(host(h)));
            }
            dn.extend(proto_dport(proto, m.host_port));
            dn.push(Stmt::Counter);
            dn.push(dnat(*ip, Some(m.container_port)));
            push(Rule {
                family,
                chain: HOSTPORTS,
                rule: aksnet_nft::Rule::new(dn),
            });
            if !conf.snat {
                continue;
            }
            let masq = |src: IpNet| {
                let mut v = vec![saddr(src), daddr(c)];
                v.extend(proto_dport(proto, m.container_port));
                v.push(Stmt::Masquerade);
                aksnet_nft::Rule::new(v)
            };
            push(Rule {
                family,
                chain: MASQUERADING,
                rule: masq(c),
            });
            // IPv6 has no route_localnet: ::1 never leaves the host.
            let local_ok = m.host_ip.is_none_or(|h| h.is_loopback());
            if family == Family::Ip && local_ok {
                push(Rule {
                    family,
                    chain: MASQUERADING,
                    rule: masq(loopback()),
                });
            }
        }
    }
    out
}

/// The families `rules` use.
pub fn families(rules: &[Rule]) -> Vec<Family> {
    [Family::Ip, Family::Ip6]
        .into_iter()
        .filter(|f| rules.iter().any(|r| r.family == *f))
        .collect()
}

/// True when some rule masquerades 127.0.0.0/8 (which needs
/// `route_localnet` on the interface towards the container).
pub fn needs_route_localnet(rules: &[Rule]) -> bool {
    rules
        .iter()
        .any(|r| r.chain == MASQUERADING && r.rule.stmts.first() == Some(&saddr(loopback())))
}

/// The fixed part of `family`'s table: the base chains with their jumps,
/// and the two chains the attachments' rules live in.
pub fn skeleton(family: Family) -> Table {
    let mut t = Table::new(family, TABLE);
    let to_hostports = || vec![aksnet_nft::Rule::new([fib_daddr_local(), jump(HOSTPORTS)])];
    t.chain(
        PREROUTING,
        Chain::base(BaseChain::nat(Hook::Prerouting), to_hostports()),
    );
    t.chain(
        OUTPUT,
        Chain::base(BaseChain::nat(Hook::Output), to_hostports()),
    );
    t.chain(
        POSTROUTING,
        Chain::base(
            BaseChain::nat(Hook::Postrouting),
            vec![aksnet_nft::Rule::new([
                ct_status(CtStatus::Dnat),
                jump(MASQUERADING),
            ])],
        ),
    );
    t.chain(HOSTPORTS, Chain::regular(vec![]));
    t.chain(MASQUERADING, Chain::regular(vec![]));
    t
}

fn delete_rules<'a>(
    b: &mut Batch,
    family: Family,
    rules: impl IntoIterator<Item = &'a ListedRule>,
) {
    for r in rules {
        b.push(Command::DeleteRule {
            table: table_id(family),
            chain: r.chain.clone(),
            handle: r.handle,
        });
    }
}

/// The ADD transaction for `family`: skeleton, deletion of the rules a
/// previous ADD of the same attachment left (`table` is the current
/// listing, if the table exists), and the new rules tagged `tag`.
pub fn add_batch(family: Family, table: Option<&Listing>, tag: &str, rules: &[Rule]) -> Batch {
    let mut b = aksnet_nft::ensure(&skeleton(family), &[HOSTPORTS, MASQUERADING]);
    if let Some(t) = table {
        delete_rules(&mut b, family, t.rules_with_comment(tag));
    }
    for r in rules.iter().filter(|r| r.family == family) {
        b.push(Command::AddRule {
            table: table_id(family),
            chain: r.chain.to_string(),
            rule: r.rule.clone().comment(tag),
        });
    }
    b
}

/// A batch deleting `rules` (from a listing of `family`'s table).
pub fn delete_batch<'a>(family: Family, rules: impl IntoIterator<Item = &'a ListedRule>) -> Batch {
    let mut b = Batch::new();
    delete_rules(&mut b, family, rules);
    b
}

/// Rules GC removes: tagged for network prefix `prefix` with a tag not in
/// `valid`. Rules without a comment (the base chains' jumps) or of other
/// networks are kept.
pub fn gc_victims<'a>(
    table: &'a Listing,
    prefix: &'a str,
    valid: &'a HashSet<String>,
) -> impl Iterator<Item = &'a ListedRule> + 'a {
    table.rules.iter().filter(move |r| {
        r.comment
            .as_deref()
            .is_some_and(|c| c.starts_with(prefix) && !valid.contains(c))
    })
}

/// CHECK: the base chains jump where they should, and `family`'s rules of
/// the attachment tagged `tag` are exactly `rules`. The error names what
/// is missing or unexpected.
pub fn verify(table: &Listing, family: Family, tag: &str, rules: &[Rule]) -> Result<(), String> {
    let skel = skeleton(family);
    for (name, c) in skel.chains.iter().filter(|(_, c)| c.base.is_some()) {
        for j in &c.rules {
            let found = table
                .rules
                .iter()
                .any(|l| &l.chain == name && listing::same_rule(family, l, j));
            if !found {
                return Err(format!(
                    "table {family} {TABLE}: chain {name} has no jump rule `{j}`"
                ));
            }
        }
    }
    let mine: Vec<&ListedRule> = table.rules_with_comment(tag).collect();
    let expected: Vec<&Rule> = rules.iter().filter(|r| r.family == family).collect();
    for e in &expected {
        let want = e.rule.clone().comment(tag);
        if !mine
            .iter()
            .any(|l| l.chain == e.chain && listing::same_rule(family, l, &want))
        {
            return Err(format!(
                "table {family} {TABLE}: chain {} lacks the rule `{}` of {tag:?}",
                e.chain, e.rule
            ));
        }
    }
    if mine.len() != expected.len() {
        return Err(format!(
            "table {family} {TABLE} holds {} rules of {tag:?}, expected {}",
            mine.len(),
            expected.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::config::PortMapping;
    use super::*;
    use aksnet_nft::{trace, Driver, Fake, Final, Host, Packet};

    fn conf(snat: bool, mappings: Vec<PortMapping>) -> PortmapConf {
        PortmapConf { snat, mappings }
    }

    fn m(h: u16, c: u16, proto: Proto, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: h,
            container_port: c,
            proto,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    fn add(f: &mut Fake, tag: &str, rules: &[Rule]) {
        for fam in families(rules) {
            let l = f.list(&table_id(fam)).unwrap();
            f.apply(&add_batch(fam, l.as_ref(), tag, rules)).unwrap();
        }
    }

    fn host_ctx() -> Host {
        Host {
            local: vec!["10.224.0.4".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            masquerade_to: Some("10.244.0.1".parse().unwrap()),
        }
    }

    #[test]
    fn rules_per_family_with_snat() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let c = conf(
            true,
            vec![
                m(8080, 80, Proto::Tcp, None),
                m(5353, 53, Proto::Udp, Some("192.0.2.1")),
            ],
        );
        let rules = attachment_rules(&c, &ips);
        let v4: Vec<_> = rules.iter().filter(|r| r.family == Family::Ip).collect();
        let v6: Vec<_> = rules.iter().filter(|r| r.family == Family::Ip6).collect();
        // v4: 2 DNAT, 2 hairpin, 1 localhost (the hostIP one is not loopback).
        assert_eq!(v4.len(), 5);
        // v6: only the any-address mapping: DNAT + hairpin.
        assert_eq!(v6.len(), 2);
        assert_eq!(
            v4[0].rule.to_string(),
            "meta l4proto tcp th dport 8080 counter dnat to 10.244.0.5:80"
        );
        assert!(needs_route_localnet(&rules));
        assert_eq!(families(&rules), vec![Family::Ip, Family::Ip6]);
        let no_snat = attachment_rules(&conf(false, c.mappings.clone()), &ips);
        assert!(no_snat.iter().all(|r| r.chain == HOSTPORTS));
        assert!(!needs_route_localnet(&no_snat));
    }

    #[test]
    fn trace_host_port_dnat_hairpin_and_localhost() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap()];
        let rules = attachment_rules(&conf(true, vec![m(8080, 80, Proto::Tcp, None)]), &ips);
        let mut f = Fake::new();
        add(&mut f, "aksnet n c1 eth0", &rules);
        // From another host to the node's port: DNAT, no masquerade.
        let p = Packet::tcp("10.224.0.9", 40000, "10.224.0.4", 8080).iif("eth0");
        let t = trace(
            &f.ruleset(),
            &host_ctx(),
            &p,
            &[Hook::Prerouting, Hook::Postrouting],
        );
        assert_eq!(t.verdict, Final::Accept);
        assert_eq!(t.nat, vec!["dnat to 10.244.0.5:80"]);
        assert_eq!(
            t.rules(),
            vec![
                "ip aksnet-portmap prerouting: fib daddr type local jump hostports",
                "ip aksnet-portmap hostports: meta l4proto tcp th dport 8080 counter dnat to 10.244.0.5:80 comment \"aksnet n c1 eth0\"",
                "ip aksnet-portmap postrouting: ct status dnat jump masquerading",
            ]
        );
        // The container to itself through the host port: DNAT and hairpin masquerade.
        let hp = Packet::tcp("10.244.0.5", 40000, "10.224.0.4", 8080);
        let t = trace(
            &f.ruleset(),
            &host_ctx(),
            &hp,
            &[Hook::Prerouting, Hook::Postrouting],
        );
        assert_eq!(t.nat, vec!["dnat to 10.244.0.5:80", "masquerade"]);
        // 127.0.0.1:8080 from the node: output DNAT, localhost masquerade.
        let lo = Packet::tcp("127.0.0.1", 40000, "127.0.0.1", 8080);
        let t = trace(
            &f.ruleset(),
            &host_ctx(),
            &lo,
            &[Hook::Output, Hook::Postrouting],
        );
        assert_eq!(t.nat, vec!["dnat to 10.244.0.5:80", "masquerade"]);
        // Another port is left alone.
        let other = Packet::tcp("10.224.0.9", 40000, "10.224.0.4", 8081);
        let t = trace(
            &f.ruleset(),
            &host_ctx(),
            &other,
            &[Hook::Prerouting, Hook::Postrouting],
        );
        assert!(t.nat.is_empty());
    }

    #[test]
    fn add_replaces_the_attachments_old_rules_and_keeps_others() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap()];
        let rules = attachment_rules(&conf(true, vec![m(1, 2, Proto::Tcp, None)]), &ips);
        let other = attachment_rules(
            &conf(false, vec![m(3, 4, Proto::Udp, None)]),
            &["10.244.0.6".parse().unwrap()],
        );
        let mut f = Fake::new();
        add(&mut f, "t2", &other);
        add(&mut f, "t1", &rules);
        add(&mut f, "t1", &rules);
        let l = f.list(&table_id(Family::Ip)).unwrap().unwrap();
        assert_eq!(
            l.rules_with_comment("t1").count(),
            rules.len(),
            "a repeated ADD replaces"
        );
        assert_eq!(l.rules_with_comment("t2").count(), 1);
        assert_eq!(
            l.rules.iter().filter(|r| r.comment.is_none()).count(),
            3,
            "one jump per base chain"
        );
        verify(&l, Family::Ip, "t1", &rules).unwrap();
        // A stale listing (the handles gone) is refused whole: nothing changes.
        let before = f.dump();
        f.apply(&delete_batch(Family::Ip, l.rules_with_comment("t1")))
            .unwrap();
        assert!(f
            .apply(&delete_batch(Family::Ip, l.rules_with_comment("t1")))
            .is_err());
        assert_ne!(f.dump(), before);
    }

    #[test]
    fn verify_detects_missing_and_extra_rules() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap()];
        let rules = attachment_rules(&conf(true, vec![m(8080, 80, Proto::Tcp, None)]), &ips);
        let mut f = Fake::new();
        add(&mut f, "tag", &rules);
        let full = f.list(&table_id(Family::Ip)).unwrap().unwrap();
        verify(&full, Family::Ip, "tag", &rules).unwrap();
        assert!(verify(&full, Family::Ip, "other", &rules).is_err());
        let mut fewer = full.clone();
        let i = fewer
            .rules
            .iter()
            .position(|r| r.comment.is_some())
            .unwrap();
        fewer.rules.remove(i);
        assert!(verify(&fewer, Family::Ip, "tag", &rules).is_err());
        let mut nojump = full.clone();
        nojump.rules.retain(|r| r.chain != OUTPUT);
        let e = verify(&nojump, Family::Ip, "tag", &rules).unwrap_err();
        assert!(e.contains(OUTPUT), "{e}");
        let mut extra = full.clone();
        let mut dup = extra.rules_with_comment("tag").next().unwrap().clone();
        dup.handle = 99;
        extra.rules.push(dup);
        assert!(verify(&extra, Family::Ip, "tag", &rules).is_err());
        assert!(verify(&Listing::default(), Family::Ip, "tag", &rules).is_err());
    }

    #[test]
    fn gc_keeps_valid_and_foreign_rules() {
        let r = |p| {
            attachment_rules(
                &conf(false, vec![m(p, 80, Proto::Tcp, None)]),
                &["10.244.0.5".parse().unwrap()],
            )
        };
        let mut f = Fake::new();
        add(&mut f, "aksnet n1 a eth0", &r(1));
        add(&mut f, "aksnet n1 b eth0", &r(2));
        add(&mut f, "aksnet n2 b eth0", &r(3));
        let l = f.list(&table_id(Family::Ip)).unwrap().unwrap();
        let valid: HashSet<String> = ["aksnet n1 a eth0".to_string()].into();
        let v: Vec<&str> = gc_victims(&l, "aksnet n1 ", &valid)
            .filter_map(|r| r.comment.as_deref())
            .collect();
        assert_eq!(v, vec!["aksnet n1 b eth0"]);
        f.apply(&delete_batch(
            Family::Ip,
            gc_victims(&l, "aksnet n1 ", &valid),
        ))
        .unwrap();
        let l = f.list(&table_id(Family::Ip)).unwrap().unwrap();
        assert_eq!(l.rules.iter().filter(|r| r.comment.is_some()).count(), 2);
    }
}
