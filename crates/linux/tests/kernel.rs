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
use aksnet_linux::nft::{self, expr, BaseChain, Batch, Family};
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

#[test]
fn nft_batch_is_atomic_and_listable() {
    if !aksnet_linux::testing::can_run("the nft test", &[&nft::nft_binary()]) {
        return;
    }
    let _host = unshare_thread();
    let pod: ipnet::IpNet = "10.97.0.2/32".parse().unwrap();
    let mut b = Batch::new();
    b.add_table(Family::Ip, "ak3t")
        .add_chain(
            Family::Ip,
            "ak3t",
            "post",
            Some(&BaseChain::nat("postrouting")),
        )
        .add_rule(
            Family::Ip,
            "ak3t",
            "post",
            vec![expr::saddr("==", &pod), expr::counter(), expr::masquerade()],
            Some("ak3 one"),
        );
    nft::check(&b).unwrap();
    nft::apply(&b).unwrap();
    let t = nft::list_table(Family::Ip, "ak3t").unwrap().unwrap();
    assert_eq!(t.rules_with_comment("ak3 one").count(), 1);
    // A failing command makes the whole batch fail, leaving no trace.
    let mut bad = Batch::new();
    bad.add_rule(
        Family::Ip,
        "ak3t",
        "post",
        vec![expr::masquerade()],
        Some("ak3 two"),
    )
    .delete_rule(Family::Ip, "ak3t", "post", 999_999);
    assert!(nft::apply(&bad).is_err());
    let t = nft::list_table(Family::Ip, "ak3t").unwrap().unwrap();
    assert_eq!(t.rules_with_comment("ak3 two").count(), 0);
    let h = t.rules_with_comment("ak3 one").next().unwrap().handle;
    let mut del = Batch::new();
    del.delete_rule(Family::Ip, "ak3t", "post", h);
    nft::apply(&del).unwrap();
    assert_eq!(
        nft::list_table(Family::Ip, "ak3t")
            .unwrap()
            .unwrap()
            .rules
            .len(),
        0
    );
    assert!(nft::list_table(Family::Ip, "ak3none").unwrap().is_none());
}
