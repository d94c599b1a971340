//! The policy table in a real kernel, on a node namespace laid out as
//! kubenet lays one out: two pods on a bridge (`cbr0`; same-node traffic is
//! bridged, and `br_netfilter` must hand it to the `forward` hook), a pod
//! of another node behind a routed link, and the Services table in front
//! (policy judges a ClusterIP's backend, post-DNAT). Checks what passes and
//! what not with real connections, that the listing reads back equal to
//! the rendering (a restarted agent adopts it), and that an update is
//! enforced at once.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use aksnet_agent::policy::{desired, NamedPort, PodInfo, PolicyInput};
use aksnet_agent::services::{self, PortInput, ServicesInput};
use aksnet_core::k8s::endpoints::Backend;
use aksnet_core::k8s::netpol::NetworkPolicy;
use aksnet_core::k8s::service::Service;
use aksnet_nft::{Driver, L4Proto, Owner, Synced};
use common::Netns;

const A: &str = "10.244.0.10";
const B: &str = "10.244.0.11";
const R: &str = "10.244.1.5";
const CLUSTER_IP: &str = "10.0.0.20";

fn pod(ns: &str, name: &str, ip: &str, node: &str) -> PodInfo {
    PodInfo {
        namespace: ns.into(),
        name: name.into(),
        labels: [("pod".to_string(), name.to_string())].into(),
        ip: ip.parse().unwrap(),
        node: Some(node.into()),
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: L4Proto::Tcp,
            port: 8080,
        }],
    }
}

fn np(v: serde_json::Value) -> NetworkPolicy {
    let mut p: NetworkPolicy = serde_json::from_value(v).unwrap();
    p.set_defaults();
    p
}

fn policy_input(from: serde_json::Value) -> PolicyInput {
    PolicyInput {
        node: "node-1".into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        pods: vec![
            pod("x", "a", A, "node-1"),
            pod("x", "b", B, "node-1"),
            pod("y", "r", R, "node-2"),
        ],
        namespaces: Default::default(),
        policies: vec![
            np(serde_json::json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "a", "namespace": "x"},
                "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.5/32"]}},
                                               {"ipBlock": {"cidr": "10.244.0.11/32"}}],
                                      "ports": [{"port": 9000, "endPort": 9100}, {"protocol": "UDP"}]}]}
            })),
            np(serde_json::json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "b", "namespace": "x"},
                "spec": {"podSelector": {"matchLabels": {"pod": "b"}},
                         "ingress": [{"from": from, "ports": [{"port": "http"}]}]}
            })),
        ],
    }
}

fn services_input() -> ServicesInput {
    let mut s: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "b", "namespace": "x"},
        "spec": {"clusterIP": CLUSTER_IP, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    s.set_defaults();
    let port = s.spec.ports[0].clone();
    ServicesInput {
        node: "node-1".into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        services: vec![(
            s,
            vec![PortInput {
                namespace: "x".into(),
                name: "b".into(),
                port,
                backends: vec![Backend {
                    ip: B.parse().unwrap(),
                    port: 8080,
                    node: Some("node-1".into()),
                    ready: true,
                    serving: true,
                    terminating: false,
                }],
            }],
        )],
    }
}

/// TCP servers on `ports` inside `ns`, answering until the test ends.
fn serve(ns: &Netns, ip: &str, ports: &[u16]) {
    let path: PathBuf = ns.path();
    for &port in ports {
        let path = path.clone();
        let addr = SocketAddrV4::new(ip.parse().unwrap(), port);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let target = aksnet_linux::netns::Netns::open(&path).unwrap();
            let _in = target.enter().unwrap();
            let l = TcpListener::bind(addr).unwrap();
            tx.send(()).unwrap();
            for s in l.incoming().flatten() {
                drop(s);
            }
        });
        rx.recv().unwrap();
    }
}

/// Whether a TCP connection from `ns` to `to:port` is established.
fn connects(ns: &Netns, to: &str, port: u16) -> bool {
    let path = ns.path();
    let addr = SocketAddrV4::new(to.parse::<Ipv4Addr>().unwrap(), port);
    std::thread::spawn(move || {
        let target = aksnet_linux::netns::Netns::open(&path).unwrap();
        let _in = target.enter().unwrap();
        TcpStream::connect_timeout(&addr.into(), Duration::from_millis(400)).is_ok()
    })
    .join()
    .unwrap()
}

#[test]
fn bridged_routed_and_service_traffic_is_judged_by_policy() {
    if !aksnet_linux::testing::can_run("the policy kernel test", &["ip", "nft"]) {
        return;
    }
    let node = Netns::new("pk-node");
    let a = Netns::new("pk-a");
    let b = Netns::new("pk-b");
    let r = Netns::new("pk-r");
    node.exec("sysctl -qw net.ipv4.ip_forward=1");
    node.exec("ip link add cbr0 type bridge");
    node.exec("ip addr add 10.244.0.1/24 dev cbr0");
    node.exec("ip link set cbr0 up");
    for (p, ip, veth) in [(&a, A, "va"), (&b, B, "vb")] {
        node.exec(&format!(
            "ip link add {veth} type veth peer name eth0 netns {}",
            p.name
        ));
        node.exec(&format!("ip link set {veth} master cbr0 up"));
        p.exec(&format!("ip addr add {ip}/24 dev eth0"));
        p.exec("ip link set eth0 up");
        p.exec("ip route add default via 10.244.0.1");
    }
    node.exec(&format!(
        "ip link add vr type veth peer name eth0 netns {}",
        r.name
    ));
    node.exec("ip addr add 10.244.1.1/24 dev vr");
    node.exec("ip link set vr up");
    r.exec(&format!("ip addr add {R}/24 dev eth0"));
    r.exec("ip link set eth0 up");
    r.exec("ip route add default via 10.244.1.1");
    // Bridged IPv4 goes through the IPv4 hooks (the lab's nodes have it on).
    let brnf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    let have_brnf = node.exec_ok(&format!("test -e {brnf}"));
    if have_brnf {
        node.exec("sysctl -qw net.bridge.bridge-nf-call-iptables=1");
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "br_netfilter is not loaded: modprobe br_netfilter"
        );
        eprintln!("br_netfilter is not loaded: the bridged checks are skipped");
    }
    serve(&b, B, &[8080, 8081]);
    // Open before any table: everything connects.
    assert!(connects(&a, B, 8081) && connects(&r, B, 8080));

    let mut d = aksnet_linux::nft::Nft::at(node.path()).unwrap();
    let svc = services::desired(&services_input());
    Owner::new(svc.id()).sync(&mut d, &svc).unwrap();
    // x/b admits x/a on its named port only; y/r is not in x.
    let from_a = serde_json::json!([{"podSelector": {"matchLabels": {"pod": "a"}}}]);
    let want = desired(&policy_input(from_a)).table;
    let mut owner = Owner::new(want.id());
    assert!(matches!(
        owner.sync(&mut d, &want).unwrap(),
        Synced::Applied(_)
    ));
    let listing = d.list(&want.id()).unwrap().unwrap();
    assert!(
        listing.matches(&want),
        "the listing differs from the rendering:\n{listing:?}\n{want}"
    );
    assert_eq!(
        Owner::new(want.id()).sync(&mut d, &want).unwrap(),
        Synced::Adopted,
        "a restarted agent adopts the table"
    );

    assert!(
        connects(&a, CLUSTER_IP, 80),
        "a → ClusterIP → b:8080 (post-DNAT)"
    );
    assert!(
        !connects(&r, B, 8080),
        "y/r is not selected by a podSelector of x"
    );
    assert!(!connects(&r, CLUSTER_IP, 80), "nor through the Service");
    if have_brnf {
        assert!(connects(&a, B, 8080), "bridged, allowed");
        assert!(
            !connects(&a, B, 8081),
            "bridged, not the named port: dropped"
        );
    }
    // From the node itself: always allowed.
    assert!(connects(&node, B, 8081), "the node reaches every port");

    // An update (any pod of any namespace) is enforced by the next sync.
    let anywhere = serde_json::json!([{"namespaceSelector": {}}]);
    let next = desired(&policy_input(anywhere)).table;
    owner.sync(&mut d, &next).unwrap();
    assert!(connects(&r, B, 8080) && connects(&r, CLUSTER_IP, 80));
    assert!(!connects(&r, B, 8081));
    // The kernel's table rewritten from its listing (what a recheck that
    // finds it changed does): accepted, whatever chains go away.
    owner.forget();
    let b = aksnet_nft::replace(&next, d.list(&next.id()).unwrap().as_ref());
    d.apply(&b).unwrap();
    // The policies deleted, through a rewrite from the listing (chains a
    // verdict map names go away): the pods are open again.
    let mut none = policy_input(serde_json::json!([]));
    none.policies.clear();
    let empty = desired(&none).table;
    let b = aksnet_nft::replace(&empty, d.list(&empty.id()).unwrap().as_ref());
    d.apply(&b).unwrap();
    assert!(connects(&r, B, 8081) && connects(&a, B, 8081));
}
