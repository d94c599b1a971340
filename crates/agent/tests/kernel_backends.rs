//! The kernel backend (rtnetlink and nftables on aksnet-linux) against real
//! namespaces the test creates, read back with iproute2 and nft.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use aksnet_agent::kernel::netlink::NetlinkKernel;
use aksnet_agent::kernel::Kernel;
use aksnet_agent::routes::vxlan::{self, Fdb, Neigh};
use aksnet_agent::routes::{self, Route};
use aksnet_agent::snat;
use common::*;

#[test]
fn netlink_backend() {
    if !can_run("kernel backend test", &["ip", "bridge", "nft", "sysctl"]) {
        return;
    }
    let l2 = L2::new("knl", 2);
    let mut k = NetlinkKernel::new(Some(&l2.nodes[0].path())).unwrap();
    exercise(&mut k, &l2);
}

fn exercise(k: &mut dyn Kernel, l2: &L2) {
    let n0 = &l2.nodes[0];

    // The node link is found by its address.
    let link = k
        .link_with_address("10.224.0.4".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(link.name, "eth0");

    // host-gw routes: added, read back equal, replaced, removed.
    let r1 = Route {
        dst: "10.244.1.0/24".parse().unwrap(),
        via: "10.224.0.5".parse().unwrap(),
        dev: None,
        onlink: false,
    };
    assert!(k.routes().unwrap().is_empty());
    k.program_routes(std::slice::from_ref(&r1), &[]).unwrap();
    let cur = k.routes().unwrap();
    assert!(
        routes::diff(&cur, std::slice::from_ref(&r1)).is_empty(),
        "{cur:?}"
    );
    assert!(n0
        .exec("ip route show proto 77")
        .contains("10.244.1.0/24 via 10.224.0.5"));
    // A route that is not ours is never listed nor touched.
    n0.exec("ip route add 10.99.0.0/24 via 10.224.0.5");
    assert_eq!(k.routes().unwrap().len(), 1);

    // VXLAN device, idempotent.
    let dev = vxlan::device(
        "n0",
        "10.224.0.4".parse().unwrap(),
        &"10.244.0.0/24".parse().unwrap(),
        1500,
    );
    assert!(k.ensure_vxlan(&dev).unwrap());
    assert!(
        !k.ensure_vxlan(&dev).unwrap(),
        "second ensure changes nothing"
    );
    let shown = n0.exec("ip -d link show dev aksnet.1");
    assert!(
        shown.contains("vxlan id 1") && shown.contains("nolearning"),
        "{shown}"
    );
    assert!(n0
        .exec("ip addr show dev aksnet.1")
        .contains("10.244.0.0/32"));

    let n = Neigh {
        ip: "10.244.1.0".parse().unwrap(),
        mac: "0a:00:00:00:00:0b".into(),
    };
    let f = Fdb {
        mac: "0a:00:00:00:00:0b".into(),
        dst: "10.224.0.5".parse().unwrap(),
    };
    k.program_l2(
        vxlan::DEVICE,
        std::slice::from_ref(&n),
        &[],
        std::slice::from_ref(&f),
        &[],
    )
    .unwrap();
    let (ns, fs) = k.l2_entries(vxlan::DEVICE).unwrap();
    assert_eq!(ns, vec![n.clone()]);
    assert_eq!(fs, vec![f.clone()]);
    let onlink = Route {
        dst: "10.244.1.0/24".parse().unwrap(),
        via: "10.244.1.0".parse().unwrap(),
        dev: Some(vxlan::DEVICE.into()),
        onlink: true,
    };
    k.program_routes(std::slice::from_ref(&onlink), &[])
        .unwrap();
    let cur = k.routes().unwrap();
    assert!(
        routes::diff(&cur, std::slice::from_ref(&onlink)).is_empty(),
        "{cur:?}"
    );
    k.program_l2(vxlan::DEVICE, &[], &[n], &[], &[f]).unwrap();
    assert_eq!(k.l2_entries(vxlan::DEVICE).unwrap(), (vec![], vec![]));
    k.program_routes(&[], &cur).unwrap();
    assert!(k.routes().unwrap().is_empty());
    k.remove_link(vxlan::DEVICE).unwrap();
    k.remove_link(vxlan::DEVICE).unwrap();

    // SNAT table: applied, digest read back, replaced atomically.
    assert!(k
        .nft_list_table(snat::FAMILY, snat::TABLE)
        .unwrap()
        .is_none());
    let mut p = snat::MasqPolicy {
        pod_sources: vec!["10.244.0.0/24".parse().unwrap()],
        non_masquerade: vec!["10.244.0.0/16".parse().unwrap()],
        node_ip: "10.224.0.4".parse().unwrap(),
    };
    k.nft_apply(&snat::batch(&p)).unwrap();
    let l = k
        .nft_list_table(snat::FAMILY, snat::TABLE)
        .unwrap()
        .unwrap();
    assert_eq!(snat::digest_in_listing(&l), Some(snat::digest(&p)));
    p.node_ip = "10.224.0.40".parse().unwrap();
    k.nft_apply(&snat::batch(&p)).unwrap();
    let text = n0.exec("nft list table ip aksnet-agent");
    assert!(
        text.contains("snat to 10.224.0.40") && !text.contains("10.224.0.4 "),
        "{text}"
    );
    assert_eq!(text.matches("snat to").count(), 1, "{text}");

    // sysctl inside the namespace only.
    k.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(k.sysctl("net.ipv4.ip_forward").unwrap(), "1");
    let other = NetlinkKernel::new(Some(&l2.nodes[1].path()))
        .map(|mut k| k.sysctl("net.ipv4.ip_forward").unwrap())
        .unwrap();
    assert_eq!(other, "0");
}

#[test]
fn one_unreachable_peer_does_not_keep_the_others_out() {
    if !can_run("kernel backend test", &["ip"]) {
        return;
    }
    let l2 = L2::new("kbad", 1);
    let mut k = NetlinkKernel::new(Some(&l2.nodes[0].path())).unwrap();
    let r = |dst: &str, via: &str| Route {
        dst: dst.parse().unwrap(),
        via: via.parse().unwrap(),
        dev: None,
        onlink: false,
    };
    // 192.0.2.1 is on no connected network of the node: the kernel refuses it.
    let err = k
        .program_routes(
            &[
                r("10.244.1.0/24", "192.0.2.1"),
                r("10.244.2.0/24", "10.224.0.6"),
            ],
            &[],
        )
        .unwrap_err();
    assert!(err.to_string().contains("10.244.1.0/24"), "{err}");
    let got = k.routes().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].dst.to_string(), "10.244.2.0/24");
}
