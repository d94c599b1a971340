//! The Services table in a real kernel: nft accepts the whole rule set, and
//! its listing reads back equal to the rendering, so a restarted agent
//! adopts the table instead of rewriting it.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use aksnet_agent::services::{desired, PortInput, ServicesInput};
use aksnet_core::k8s::endpoints::Backend;
use aksnet_core::k8s::service::Service;
use aksnet_nft::{Driver, Family, Owner, Synced};

fn svc(name: &str, spec: serde_json::Value, ingress: &[&str]) -> Service {
    let mut s: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": ingress.iter().map(|i| serde_json::json!({"ip": i})).collect::<Vec<_>>()}},
    }))
    .unwrap();
    s.set_defaults();
    s
}

fn be(ip: &str, node: &str) -> Backend {
    Backend {
        ip: ip.parse().unwrap(),
        port: 8080,
        node: Some(node.into()),
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn input() -> ServicesInput {
    let services = vec![
        (
            svc(
                "web",
                serde_json::json!({"clusterIP": "10.0.0.20", "ports": [{"port": 80, "targetPort": 8080}]}),
                &[],
            ),
            vec![be("10.244.1.5", "node-2"), be("10.244.0.7", "node-1")],
        ),
        (
            svc(
                "sticky",
                serde_json::json!({"clusterIP": "10.0.0.21", "sessionAffinity": "ClientIP",
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "UDP"}]}),
                &[],
            ),
            vec![be("10.244.1.5", "node-2")],
        ),
        (
            svc(
                "lb",
                serde_json::json!({"type": "LoadBalancer", "clusterIP": "10.0.0.22",
                "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
                &["20.1.2.3"],
            ),
            vec![be("10.244.0.7", "node-1")],
        ),
        (
            svc(
                "empty",
                serde_json::json!({"type": "NodePort", "clusterIP": "10.0.0.23",
                "ports": [{"port": 80, "nodePort": 30081}]}),
                &[],
            ),
            vec![],
        ),
    ];
    ServicesInput {
        node: "node-1".into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        services: services
            .into_iter()
            .map(|(s, b)| {
                let ports = s
                    .spec
                    .ports
                    .iter()
                    .map(|p| PortInput {
                        namespace: "default".into(),
                        name: s.metadata.name.clone(),
                        port: p.clone(),
                        backends: b.clone(),
                    })
                    .collect();
                (s, ports)
            })
            .collect(),
    }
}

#[test]
fn the_services_table_is_accepted_and_adopted_after_a_restart() {
    if !aksnet_linux::testing::can_run("the Services kernel test", &["ip", "nft"]) {
        return;
    }
    let ns = common::Netns::new("svck");
    let mut d = aksnet_linux::nft::Nft::at(ns.path()).unwrap();
    let want = desired(&input());
    let mut owner = Owner::new(want.id());
    assert!(matches!(
        owner.sync(&mut d, &want).unwrap(),
        Synced::Applied(_)
    ));
    let listing = d.list(&want.id()).unwrap().unwrap();
    if !listing.matches(&want) {
        for r in &listing.rules {
            let rules = &want.chains[&r.chain].rules;
            if !rules
                .iter()
                .any(|w| aksnet_nft::listing::same_rule(Family::Ip, r, w))
            {
                eprintln!(
                    "LISTED {} {}",
                    r.chain,
                    serde_json::Value::Array(aksnet_nft::listing::normalize_stmts(
                        Family::Ip,
                        &r.expr
                    ))
                );
                for w in rules {
                    eprintln!(
                        "  WANT {}",
                        serde_json::Value::Array(aksnet_nft::listing::normalize_stmts(
                            Family::Ip,
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
            let same = s.set.as_ref().map(|x| x == &want.sets[&s.name]);
            if same != Some(true) {
                eprintln!(
                    "SET {} {:?}\n  LISTED {:?}\n  WANT {:?}",
                    s.name,
                    same,
                    s.set,
                    want.sets.get(&s.name)
                );
            }
        }
        panic!("the listing of the Services table differs from its rendering");
    }
    // A restarted agent adopts it, writing nothing.
    assert_eq!(
        Owner::new(want.id()).sync(&mut d, &want).unwrap(),
        Synced::Adopted
    );
    // A Service deleted: its map elements go before its chains (the kernel
    // refuses to delete a chain a verdict map still jumps to), in a diff
    // the kernel takes as it is (no fall back to a replace).
    let mut less = input();
    less.services.retain(|(s, _)| s.metadata.name != "web");
    let smaller = desired(&less);
    let batch = owner.plan(&smaller).unwrap();
    d.apply(&batch)
        .unwrap_or_else(|e| panic!("deleting a Service: {e}\n{batch}"));
    assert!(d.list(&want.id()).unwrap().unwrap().matches(&smaller));
}

/// A UDP socket bound inside `ns` (a short-lived thread enters it; the
/// socket stays in that namespace for its life).
fn udp_in(ns: &common::Netns, addr: &str) -> std::net::UdpSocket {
    let path = ns.path();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    std::thread::spawn(move || {
        let netns = aksnet_linux::Netns::open(&path).unwrap();
        netns
            .run(|| {
                std::net::UdpSocket::bind(addr).map_err(|e| aksnet_linux::Error::Invalid {
                    what: "udp bind".into(),
                    msg: e.to_string(),
                })
            })
            .unwrap()
    })
    .join()
    .unwrap()
}

/// A UDP server answering every datagram with its own address.
fn udp_server(sock: std::net::UdpSocket) -> std::thread::JoinHandle<()> {
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let me = sock.local_addr().unwrap().ip().to_string();
        let mut buf = [0u8; 64];
        // Stops when told to ("stop" from itself) or after 30 s.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < until {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if &buf[..n] == b"stop" {
                    return;
                }
                let _ = sock.send_to(me.as_bytes(), from);
            }
        }
    })
}

/// Sends one datagram to the Service; the endpoint that answered, if any.
fn ask(client: &std::net::UdpSocket) -> Option<String> {
    client.send_to(b"who", "10.0.0.30:53").unwrap();
    let mut buf = [0u8; 64];
    client
        .recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn udp_input(endpoint: &str) -> ServicesInput {
    let dns = svc(
        "dns",
        serde_json::json!({"clusterIP": "10.0.0.30",
            "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
        &[],
    );
    let mut b = be(endpoint, "node-1");
    b.port = 5353;
    let ports = dns
        .spec
        .ports
        .iter()
        .map(|p| PortInput {
            namespace: "default".into(),
            name: "dns".into(),
            port: p.clone(),
            backends: vec![b.clone()],
        })
        .collect();
    ServicesInput {
        node: "node-1".into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        services: vec![(dns, ports)],
    }
}

#[test]
fn a_udp_client_reaches_the_new_endpoint_once_the_stale_entry_is_flushed() {
    use aksnet_agent::kernel::netlink::NetlinkKernel;
    use aksnet_agent::kernel::Kernel;
    use aksnet_agent::stale_udp::UdpFrontends;

    if !aksnet_linux::testing::can_run("the stale UDP conntrack test", &["ip", "nft"]) {
        return;
    }
    let ns = common::Netns::new("svcudp");
    // Every address on lo (these kernels have no dummy links).
    for a in [
        "10.224.0.4/24",
        "10.244.0.2/32",
        "10.244.1.5/32",
        "10.244.1.6/32",
    ] {
        ns.exec(&format!("ip addr add {a} dev lo"));
    }
    // The service range routed somewhere, as a node's default route does.
    ns.exec("ip route add 10.0.0.0/24 dev lo");
    let mut k = NetlinkKernel::new(Some(&ns.path())).unwrap();
    let old = udp_input("10.244.1.5");
    let new = udp_input("10.244.1.6");
    let mut owner = Owner::new(desired(&old).id());
    owner.sync(&mut k, &desired(&old)).unwrap();

    let dead = udp_in(&ns, "10.244.1.5:5353");
    let dead_addr = dead.local_addr().unwrap();
    let dead_server = udp_server(dead.try_clone().unwrap());
    let _live = udp_server(udp_in(&ns, "10.244.1.6:5353"));
    // One client socket, one source port: one conntrack entry, as a
    // long-lived UDP client (a DNS resolver, a game, a metrics agent) has.
    let client = udp_in(&ns, "10.244.0.2:40000");
    client
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    assert_eq!(ask(&client).as_deref(), Some("10.244.1.5"));

    // The endpoint goes: its server stops and the table moves to the new one.
    dead.send_to(b"stop", dead_addr).unwrap();
    dead_server.join().unwrap();
    drop(dead);
    owner.sync(&mut k, &desired(&new)).unwrap();
    // Without the flush the entry keeps the old translation: the client
    // still goes to the dead endpoint and nobody answers.
    assert_eq!(ask(&client), None, "the stale entry still sends to .5");
    assert_eq!(ask(&client), None);

    let select = UdpFrontends::of(&new).with_gone(&UdpFrontends::of(&old));
    let n = k.flush_conntrack(&|f| select.is_stale(f)).unwrap();
    assert_eq!(n, 1, "the one stale entry is deleted");
    assert_eq!(ask(&client).as_deref(), Some("10.244.1.6"));
    // The new entry is not stale: a second sweep deletes nothing.
    assert_eq!(k.flush_conntrack(&|f| select.is_stale(f)).unwrap(), 0);
    assert_eq!(ask(&client).as_deref(), Some("10.244.1.6"));
}
