//! Kernel tests: each runs in network namespaces of its own (the test thread
//! unshares one to play the host; peers get namespaces from helper threads),
//! so nothing touches the machine's own network.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::net::IpAddr;
use std::os::fd::AsFd;

use aksnet_linux::addr::AddrOptions;
use aksnet_linux::link::{LinkChange, VethSpec, VxlanSpec};
use aksnet_linux::nft;
use aksnet_linux::route::{Route, Scope};
use aksnet_linux::{sysctl, MacAddr, Netns, Socket};

/// Root is needed; without it the test is skipped, unless CI=true.
fn need_root() -> bool {
    aksnet_linux::testing::can_run("kernel tests", &[])
}

/// Move the calling test thread into a fresh network namespace.
fn unshare_thread() -> Netns {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
    Netns::current().unwrap()
}

/// A fresh namespace, kept alive by a parked thread that lives in it until
/// the holder is dropped (an open fd alone does not keep a namespace usable
/// on recent kernels).
struct Held {
    ns: Netns,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for Held {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_netns() -> Held {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        tx.send(Netns::current().unwrap()).unwrap();
        let _ = stop_rx.recv();
    });
    let ns = rx.recv().unwrap();
    Held {
        ns,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

#[test]
fn veth_peer_born_in_other_namespace_with_bridge_addr_route_neigh() {
    if !need_root() {
        return;
    }
    let host = unshare_thread();
    let pod = new_netns();
    let mut hs = Socket::new().unwrap();
    hs.create_bridge("ak3br0", Some(1400), None, true).unwrap();
    assert!(hs
        .create_bridge("ak3br0", None, None, true)
        .unwrap_err()
        .is_exists());
    let br = hs.link_by_name("ak3br0").unwrap().unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(br.up);
    assert_eq!(br.mtu, Some(1400));

    let hmac = MacAddr::random_local().unwrap();
    let pmac = MacAddr::random_local().unwrap();
    hs.create_veth(&VethSpec {
        name: "ak3veth0".into(),
        mac: Some(hmac),
        mtu: Some(1400),
        master: Some(br.index),
        up: true,
        peer_name: "eth0".into(),
        peer_mac: Some(pmac),
        peer_netns: Some(pod.raw_fd()),
    })
    .unwrap();
    let hv = hs.link_by_name("ak3veth0").unwrap().unwrap();
    assert_eq!(hv.master, Some(br.index));
    assert_eq!(hv.alias, None);
    hs.set_link(
        hv.index,
        &LinkChange {
            alias: Some("aksnet test".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let hv = hs.link_by_name("ak3veth0").unwrap().unwrap();
    assert_eq!(hv.alias.as_deref(), Some("aksnet test"));
    assert_eq!(hv.mac, Some(hmac));
    assert!(hv.up);
    assert!(
        hs.link_by_name("eth0").unwrap().is_none(),
        "peer must not be in the host"
    );
    hs.set_bridge_port_hairpin(hv.index, true).unwrap();
    hs.set_link(
        br.index,
        &LinkChange {
            promisc: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(hs.link_by_index(br.index).unwrap().unwrap().promisc);

    hs.add_address(
        br.index,
        "10.99.0.1/24".parse().unwrap(),
        AddrOptions::default(),
    )
    .unwrap();
    assert!(hs
        .add_address(
            br.index,
            "10.99.0.1/24".parse().unwrap(),
            AddrOptions::default()
        )
        .unwrap_err()
        .is_exists());
    let addrs = hs.addresses(Some(br.index)).unwrap();
    assert!(addrs.iter().any(|a| a.addr.to_string() == "10.99.0.1/24"));

    // The pod side, through a socket bound to the pod namespace.
    let mut ps = Socket::new_in(&pod).unwrap();
    assert!(
        host.is_current().unwrap(),
        "thread must be back in the host"
    );
    let eth0 = ps.link_by_name("eth0").unwrap().unwrap();
    assert_eq!(eth0.mac, Some(pmac));
    assert_eq!(eth0.mtu, Some(1400));
    assert!(!eth0.up);
    ps.set_link(
        eth0.index,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    ps.add_address(
        eth0.index,
        "10.99.0.2/24".parse().unwrap(),
        AddrOptions {
            nodad: true,
            ..Default::default()
        },
    )
    .unwrap();
    let gw: IpAddr = "10.99.0.1".parse().unwrap();
    ps.add_route(
        &Route::new("0.0.0.0/0".parse().unwrap())
            .via(gw)
            .dev(eth0.index),
    )
    .unwrap();
    let routes = ps.routes(false, Some(254)).unwrap();
    assert!(routes
        .iter()
        .any(|r| r.dst.prefix_len() == 0 && r.gateway == Some(gw)));
    ps.set_neighbour(eth0.index, gw, hmac).unwrap();
    let n = ps.neighbours(eth0.index).unwrap();
    assert!(n
        .iter()
        .any(|n| n.ip == gw && n.mac == Some(hmac) && n.permanent));
    assert!(ps.del_neighbour(eth0.index, gw).unwrap());
    assert!(!ps.del_neighbour(eth0.index, gw).unwrap());

    // Traffic: the host pings the pod over the bridge.
    let out = std::process::Command::new("ping")
        .args(["-c1", "-W2", "10.99.0.2"])
        .output();
    if let Ok(out) = out {
        assert!(
            out.status.success(),
            "ping: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    assert!(ps
        .del_route(&Route::new("0.0.0.0/0".parse().unwrap()).via(gw))
        .unwrap());
    assert!(!ps
        .del_route(&Route::new("0.0.0.0/0".parse().unwrap()).via(gw))
        .unwrap());
    assert!(ps
        .del_address(eth0.index, "10.99.0.2/24".parse().unwrap())
        .unwrap());
    assert!(!ps
        .del_address(eth0.index, "10.99.0.2/24".parse().unwrap())
        .unwrap());

    // Deleting the host end removes both ends.
    assert!(hs.delete_link_by_name("ak3veth0").unwrap());
    assert!(!hs.delete_link_by_name("ak3veth0").unwrap());
    assert!(ps.link_by_name("eth0").unwrap().is_none());
    assert!(hs.delete_link(br.index).unwrap());
}

#[test]
fn guard_switches_back_on_error() {
    if !need_root() {
        return;
    }
    let host = unshare_thread();
    let other = new_netns();
    let r: aksnet_linux::Result<()> = other.run(|| {
        assert!(!host.is_current()?);
        Err(aksnet_linux::Error::Invalid {
            what: "x".into(),
            msg: "y".into(),
        })
    });
    assert!(r.is_err());
    assert!(host.is_current().unwrap());
    assert!(Netns::open("/proc/self/status").is_err());
    assert!(Netns::open("/nonexistent/ak3").is_err());
    let _ = other.fd().as_fd();
}

#[test]
fn routes_scope_link_and_sysctl_in_namespace() {
    if !need_root() {
        return;
    }
    let _host = unshare_thread();
    let pod = new_netns();
    let mut hs = Socket::new().unwrap();
    hs.create_veth(&VethSpec {
        name: "ak3v1".into(),
        up: true,
        peer_name: "eth0".into(),
        peer_netns: Some(pod.raw_fd()),
        ..Default::default()
    })
    .unwrap();
    let v = hs.link_by_name("ak3v1").unwrap().unwrap();
    let r = Route::new("10.98.0.7/32".parse().unwrap()).dev(v.index);
    hs.add_route(&r).unwrap();
    hs.replace_route(&r).unwrap();
    let got = hs.routes(false, None).unwrap();
    assert!(got
        .iter()
        .any(|x| x.dst == r.dst && x.oif == Some(v.index) && x.scope == Some(Scope::Link)));
    sysctl::set(&["net", "ipv4", "conf", "ak3v1", "proxy_arp"], "1").unwrap();
    assert_eq!(
        sysctl::get(&["net", "ipv4", "conf", "ak3v1", "proxy_arp"]).unwrap(),
        "1"
    );
    assert!(!sysctl::ensure(&["net", "ipv4", "conf", "ak3v1", "proxy_arp"], "1").unwrap());
    // The pod namespace has its own ip_forward.
    pod.run(|| {
        assert!(sysctl::get(&["net", "ipv4", "conf", "ak3v1", "proxy_arp"]).is_err());
        Ok(())
    })
    .unwrap();
}

#[test]
fn vxlan_and_fdb() {
    if !need_root() {
        return;
    }
    let _host = unshare_thread();
    let mut s = Socket::new().unwrap();
    s.create_vxlan(&VxlanSpec {
        name: "ak3vx".into(),
        vni: 42,
        local: Some("192.0.2.1".parse().unwrap()),
        port: Some(8472),
        up: false,
        ..Default::default()
    })
    .unwrap();
    let vx = s.link_by_name("ak3vx").unwrap().unwrap();
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));
    let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    s.fdb_append(vx.index, mac, "192.0.2.2".parse().unwrap())
        .unwrap();
    assert!(s
        .fdb_del(vx.index, mac, "192.0.2.2".parse().unwrap())
        .unwrap());
    assert!(!s
        .fdb_del(vx.index, mac, "192.0.2.2".parse().unwrap())
        .unwrap());
}

/// A table using every part of the model, for the driver test.
fn model_table(extra_net: Option<&str>) -> aksnet_nft::Table {
    use aksnet_nft::build::*;
    use aksnet_nft::*;
    let mut t = Table::new(Family::Inet, "ak3m");
    let mut nets = Set::new(vec![KeyType::Ipv4Addr]).interval();
    for n in ["10.0.0.0/8", "192.168.0.0/16"]
        .into_iter()
        .chain(extra_net)
    {
        nets = nets.elem(Value::net(n.parse().unwrap()));
    }
    t.set("nets", nets);
    let mut pods = Set::new(vec![KeyType::Ipv4Addr, KeyType::Ipv4Addr]).interval();
    pods.insert(
        Value::Concat(vec![
            Value::Addr("10.244.0.5".parse().unwrap()),
            Value::net("10.244.0.0/24".parse().unwrap()),
        ]),
        Element {
            comment: Some("pod a".into()),
            ..Element::default()
        },
    );
    t.set("pods", pods);
    t.set(
        "seen",
        Set::new(vec![KeyType::Ipv4Addr, KeyType::InetService]).with_timeout(3600),
    );
    let mut svc = Set::vmap(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ]);
    svc.insert(
        Value::Concat(vec![
            Value::Addr("10.0.0.10".parse().unwrap()),
            Value::Proto(L4Proto::Udp),
            Value::Port(53),
        ]),
        Element {
            data: Some(ElemData::Verdict(Verdict::Goto("svc-dns".into()))),
            ..Element::default()
        },
    );
    t.set("services", svc);
    let concat = |es: Vec<Expr>| Expr::Concat(es);
    t.chain(
        "pre",
        Chain::base(
            BaseChain::nat(Hook::Prerouting),
            vec![
                Rule::new([Stmt::Vmap {
                    key: concat(vec![
                        Expr::Payload(Payload::IpDaddr),
                        Expr::Meta(MetaKey::L4Proto),
                        Expr::Payload(Payload::ThDport),
                    ]),
                    map: VmapRef::Named("services".into()),
                }]),
                Rule::new([
                    fib_daddr_local(),
                    l4proto(L4Proto::Tcp),
                    th_dport(8080),
                    dnat("10.244.0.5".parse().unwrap(), Some(80)),
                ])
                .comment("host port"),
            ],
        ),
    );
    t.chain(
        "svc-dns",
        Chain::regular(vec![Rule::new([Stmt::Vmap {
            key: Expr::NumgenRandom {
                modulus: 2,
                offset: 0,
            },
            map: VmapRef::Anon(vec![
                (Value::Int(0), Verdict::Goto("ep-a".into())),
                (Value::Int(1), Verdict::Goto("ep-b".into())),
            ]),
        }])]),
    );
    t.chain(
        "ep-a",
        Chain::regular(vec![Rule::new([
            l4proto(L4Proto::Udp),
            Stmt::Counter,
            dnat("10.244.0.5".parse().unwrap(), Some(53)),
        ])]),
    );
    t.chain(
        "ep-b",
        Chain::regular(vec![Rule::new([
            l4proto(L4Proto::Udp),
            dnat("10.244.1.7".parse().unwrap(), Some(53)),
        ])]),
    );
    t.chain(
        "fwd",
        Chain::base(
            BaseChain::filter(Hook::Forward).policy(Policy::Drop),
            vec![
                Rule::new([
                    ct_state(&[CtState::Established, CtState::Related]),
                    accept(),
                ]),
                Rule::new([ct_status(CtStatus::Dnat), accept()]),
                Rule::new([iifname("ak3*"), Stmt::SetMark(0x1), jump("check")]).comment("mark"),
                Rule::new([
                    mark(0x1),
                    any_of(
                        Expr::Meta(MetaKey::L4Proto),
                        [Value::Proto(L4Proto::Tcp), Value::Proto(L4Proto::Udp)],
                    ),
                    th_dport(53),
                    accept(),
                ]),
                Rule::new([oifname("eth0"), Stmt::Reject(Reject::TcpReset)]),
                Rule::new([l4proto(L4Proto::Udp), Stmt::Reject(Reject::AdminProhibited)]),
            ],
        ),
    );
    t.chain(
        "check",
        Chain::regular(vec![
            Rule::new([in_set(Expr::Payload(Payload::IpSaddr), "nets"), ret()]),
            Rule::new([
                in_set(
                    concat(vec![
                        Expr::Payload(Payload::IpSaddr),
                        Expr::Payload(Payload::IpDaddr),
                    ]),
                    "pods",
                ),
                ret(),
            ]),
            Rule::new([drop()]),
        ]),
    );
    t.chain(
        "post",
        Chain::base(
            BaseChain::nat(Hook::Postrouting),
            vec![
                Rule::new([
                    daddr_ne("10.244.0.0/16".parse().unwrap()),
                    saddr("10.244.0.0/24".parse().unwrap()),
                    snat("10.224.0.4".parse().unwrap()),
                ]),
                Rule::new([ct_status(CtStatus::Dnat), Stmt::Masquerade]),
            ],
        ),
    );
    t
}

#[test]
fn nft_driver_applies_diffs_and_reads_back_every_model_part() {
    use aksnet_linux::nft::Nft;
    use aksnet_nft::{diff, Driver, Family as F, Owner, Synced, Table, TableId};
    if !aksnet_linux::testing::can_run("the nft driver test", &[&nft::nft_binary()]) {
        return;
    }
    let ns = new_netns();
    let mut d = Nft::in_netns(std::sync::Arc::new(ns.try_clone().unwrap()));
    let a = model_table(None);
    d.check(&diff::create(&a)).unwrap();
    let mut owner = Owner::new(a.id());
    assert!(matches!(
        owner.sync(&mut d, &a).unwrap(),
        Synced::Applied(_)
    ));
    // A restarted owner finds exactly what it wants: nft's listing of every
    // statement compares equal to the model's rendering.
    let listing = d.list(&a.id()).unwrap().unwrap();
    if !listing.matches(&a) {
        for r in &listing.rules {
            let want = &a.chains[&r.chain].rules;
            let ok = want
                .iter()
                .any(|w| aksnet_nft::listing::same_rule(F::Inet, r, w));
            if !ok {
                eprintln!(
                    "LISTED {} {}",
                    r.chain,
                    serde_json::Value::Array(aksnet_nft::listing::normalize_stmts(
                        F::Inet,
                        &r.expr
                    ))
                );
                for w in want {
                    eprintln!(
                        "  WANT {}",
                        serde_json::Value::Array(aksnet_nft::listing::normalize_stmts(
                            F::Inet,
                            &w.stmts
                                .iter()
                                .map(aksnet_nft::json::stmt)
                                .collect::<Vec<_>>()
                        ))
                    );
                }
            }
        }
        for s in &listing.sets {
            eprintln!(
                "SET {} {:?}",
                s.name,
                s.set.as_ref().map(|x| x == &a.sets[&s.name])
            );
        }
        panic!("listing differs");
    }
    assert_eq!(
        Owner::new(a.id()).sync(&mut d, &a).unwrap(),
        Synced::Adopted
    );
    // One element more and one rule changed: applied as a diff, read back equal.
    let mut b = model_table(Some("172.16.0.0/12"));
    b.chains.get_mut("ep-b").unwrap().rules[0] = aksnet_nft::Rule::new([
        aksnet_nft::build::l4proto(aksnet_nft::L4Proto::Udp),
        aksnet_nft::build::dnat("10.244.1.8".parse().unwrap(), Some(53)),
    ]);
    let plan = owner.plan(&b).unwrap();
    assert_eq!(plan.len(), 3, "{plan}");
    assert_eq!(owner.sync(&mut d, &b).unwrap(), Synced::Applied(3));
    assert!(d.list(&b.id()).unwrap().unwrap().matches(&b));
    // A refused batch changes nothing.
    let mut bad = diff::diff(&b, &a);
    bad.push(aksnet_nft::Command::DeleteChain {
        table: a.id(),
        chain: "nope".into(),
    });
    let e = d.apply(&bad).unwrap_err();
    assert_eq!(e.kind, aksnet_nft::ErrorKind::NotFound, "{e}");
    assert!(d.list(&b.id()).unwrap().unwrap().matches(&b));
    // Every family takes a table; bridge and netdev chains too.
    for (fam, base) in [
        (
            F::Ip,
            aksnet_nft::BaseChain::filter(aksnet_nft::Hook::Input),
        ),
        (
            F::Ip6,
            aksnet_nft::BaseChain::filter(aksnet_nft::Hook::Output),
        ),
        (
            F::Bridge,
            aksnet_nft::BaseChain::filter(aksnet_nft::Hook::Forward),
        ),
        (
            F::Netdev,
            aksnet_nft::BaseChain {
                device: Some("lo".into()),
                ..aksnet_nft::BaseChain::filter(aksnet_nft::Hook::Ingress)
            },
        ),
    ] {
        let mut t = Table::new(fam, "ak3f");
        t.chain(
            "c",
            aksnet_nft::Chain::base(
                base,
                vec![aksnet_nft::Rule::new([aksnet_nft::Stmt::Counter])],
            ),
        );
        d.apply(&diff::create(&t)).unwrap();
        assert!(d.list(&t.id()).unwrap().unwrap().matches(&t), "{fam}");
    }
    assert!(d.list(&TableId::new(F::Ip, "ak3none")).unwrap().is_none());
}
