//! The fabric on its own, in real namespaces (root): node NICs, the VM, the
//! internet host, outbound SNAT, the kubenet route table applied only to
//! the node subnet and capped at its limit, Azure CNI secondary IPs, and
//! NSG rules. No agent or plugin is involved: "pods" here are addresses on
//! a node's loopback, which is all the fabric can see of them anyway.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::net::Ipv4Addr;
use std::time::Duration;

use aksnet_core::cluster::{Claim, ClaimKind, RouteEntry};
use aksnet_core::planner;
use aksnet_core::spec::{Sourced, SpecInput};
use aksnet_lab::nsg::{self, Access, Direction, NsgRule};
use aksnet_lab::snapshot::Snapshot;
use aksnet_lab::state::{LabDir, LabState, NodeState};
use aksnet_lab::topology::{netns_path, Addressing, PROBE_PORT};
use aksnet_lab::{fabric, ip, netns, probe, teardown};

fn root_or_skip() -> bool {
    aksnet_linux::testing::can_run("the fabric test", &["ip", "nft"])
}

fn serve_in(ns: &str, label: &'static str) {
    let path = netns_path(ns);
    std::thread::spawn(move || {
        if let Ok(_guard) = netns::enter(&path) {
            let _ = probe::serve(Ipv4Addr::UNSPECIFIED, PROBE_PORT, label);
        }
    });
}

fn probe_from(ns: &str, to: &str) -> probe::Outcome {
    let to: Ipv4Addr = to.parse().unwrap();
    let path = netns_path(ns);
    // The server may still be starting: a few tries.
    let mut last = None;
    for _ in 0..20 {
        let o = netns::run_in(&path, || {
            probe::connect(to, PROBE_PORT, Duration::from_millis(800))
        })
        .unwrap();
        let refused = o.error.as_deref().is_some_and(|e| e.contains("refused"));
        if o.reachable || !refused {
            return o;
        }
        last = Some(o);
        std::thread::sleep(Duration::from_millis(50));
    }
    last.unwrap()
}

fn seen(o: &probe::Outcome) -> Option<String> {
    o.source.map(|s| s.to_string())
}

struct Down(LabDir);
impl Drop for Down {
    fn drop(&mut self) {
        let r = teardown::down(&self.0).unwrap();
        assert!(r.left.is_empty(), "left behind: {:?}", r.left);
    }
}

#[test]
fn fabric_routes_snat_nsg() {
    if !root_or_skip() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("ak5-fabric-{}", std::process::id()));
    std::env::set_var("AKSNET_LAB_ROOT", &tmp);
    let name = format!("ak5-fab-{}", std::process::id() % 100000);
    let dir = LabDir::new(&name).unwrap();
    dir.create().unwrap();
    let _down = Down(dir.clone());
    let input = SpecInput {
        network_plugin: Some(Sourced::new("kubenet".into(), "t")),
        route_table_limit: Some(Sourced::new(1, "t")),
        node_count: Some(Sourced::new(1, "t")),
        max_surge: Some(Sourced::new("0".into(), "t")),
        ..Default::default()
    };
    let plan = planner::plan_input(&input).unwrap();
    assert!(plan.valid, "{:?}", plan.errors);
    let mut st = LabState::new(
        &name,
        plan.network,
        Addressing::plan(&planner::plan_input(&input).unwrap().network, None).unwrap(),
        "/bin/false".into(),
        "/nonexistent".into(),
    );
    let names = st.names();
    ip::netns_batch(&[
        format!("netns add {}", names.fabric()),
        format!("netns add {}", names.vm()),
        format!("netns add {}", names.internet()),
        format!("netns add {}", names.apiserver()),
        format!("netns add {}", names.node(1)),
        format!("netns add {}", names.node(2)),
    ])
    .unwrap();
    fabric::build(&st).unwrap();
    for (i, ipaddr) in [(1u32, "10.224.0.4"), (2, "10.224.0.5")] {
        let ipaddr: Ipv4Addr = ipaddr.parse().unwrap();
        st.nodes.push(NodeState {
            name: format!("node-{i}"),
            index: i,
            ip: ipaddr,
            agent_pid: None,
            probe_pid: None,
        });
        let (f, n) = fabric::plug_node_lines(&st, i, ipaddr);
        ip::batch(&names.fabric(), &f).unwrap();
        fabric::port_sysctls(&st, &[format!("n{i}")]).unwrap();
        ip::batch(&names.node(i), &n).unwrap();
    }
    st.next_node = 3;
    dir.save(&st).unwrap();
    // "Pods": node-1 holds 10.244.0.2 (its /24), node-2 10.244.1.2.
    ip::batch(&names.node(1), &["addr add 10.244.0.2/32 dev lo".into()]).unwrap();
    ip::batch(&names.node(2), &["addr add 10.244.1.2/32 dev lo".into()]).unwrap();
    serve_in(&names.node(1), "node-1");
    serve_in(&names.node(2), "node-2");
    serve_in(&names.vm(), "vm");
    serve_in(&names.internet(), "internet");

    // Node ↔ node, node ↔ VM: VNet traffic, no NAT.
    assert_eq!(
        seen(&probe_from(&names.node(1), "10.224.0.5")).as_deref(),
        Some("10.224.0.4")
    );
    assert_eq!(
        seen(&probe_from(&names.node(1), "10.225.0.4")).as_deref(),
        Some("10.224.0.4")
    );
    assert_eq!(
        seen(&probe_from(&names.vm(), "10.224.0.5")).as_deref(),
        Some("10.225.0.4")
    );
    // Internet: outbound SNAT to the public IP.
    let o = probe_from(&names.node(2), "203.0.113.10");
    assert_eq!(
        (seen(&o).as_deref(), o.label.as_deref()),
        (Some("203.0.113.100"), Some("internet"))
    );
    // The internet cannot reach into the VNet.
    assert!(!probe_from(&names.internet(), "10.224.0.4").reachable);

    // The route table: two routes offered, a limit of one.
    let route = |node: &str, dst: &str, hop: &str| RouteEntry {
        node: node.into(),
        destination: dst.parse().unwrap(),
        next_hop: hop.parse().unwrap(),
    };
    let snap = Snapshot {
        revision: 1,
        ..Default::default()
    }
    .with_route(0, route("node-2", "10.244.1.0/24", "10.224.0.5"))
    .with_route(1, route("node-1", "10.244.0.0/24", "10.224.0.4"));
    let d = fabric::sync_routes(&dir, &st, &snap).unwrap();
    assert_eq!((d.udr_entries, d.skipped.len()), (1, 1));
    assert_eq!(fabric::udr_entries(&st), 1);
    // node-1 → node-2's pod range: routed by the table.
    let o = probe_from(&names.node(1), "10.244.1.2");
    assert_eq!(
        (o.reachable, o.label.as_deref()),
        (true, Some("node-2")),
        "{o:?}"
    );
    // node-2 → node-1's pod range: over the limit, no route.
    assert!(!probe_from(&names.node(2), "10.244.0.2").reachable);
    // The VM subnet has no route table: no pod range is routable from it.
    let o = probe_from(&names.vm(), "10.244.1.2");
    assert!(!o.reachable, "{o:?}");
    // A slot freed: the other route fits, and the fabric follows the store.
    let snap = Snapshot {
        revision: 2,
        ..Default::default()
    }
    .with_route(1, route("node-1", "10.244.0.0/24", "10.224.0.4"));
    fabric::sync_routes(&dir, &st, &snap).unwrap();
    assert!(probe_from(&names.node(2), "10.244.0.2").reachable);
    assert!(!probe_from(&names.node(1), "10.244.1.2").reachable);

    // Azure CNI: a pod address as a NIC secondary IP is reachable from the VM.
    st.network.network_plugin = aksnet_core::spec::NetworkPlugin::Azure;
    ip::batch(&names.node(2), &["addr add 10.224.0.50/32 dev lo".into()]).unwrap();
    let snap = Snapshot {
        revision: 3,
        ..Default::default()
    }
    .with_ip(
        "10.224.0.50".parse().unwrap(),
        Claim {
            node: "node-2".into(),
            kind: ClaimKind::PodIp,
        },
    );
    fabric::sync_routes(&dir, &st, &snap).unwrap();
    assert_eq!(fabric::udr_entries(&st), 0);
    let o = probe_from(&names.vm(), "10.224.0.50");
    assert_eq!(
        (seen(&o).as_deref(), o.label.as_deref()),
        (Some("10.225.0.4"), Some("node-2"))
    );

    // NSG: deny inbound from the VM subnet to port 7777, then remove it.
    nsg::add(
        &mut st.nsg,
        NsgRule {
            priority: 200,
            direction: Direction::Inbound,
            access: Access::Deny,
            source: Some("10.225.0.0/24".parse().unwrap()),
            destination: None,
            port: Some(PROBE_PORT),
            protocol: Some(nsg::Protocol::Tcp),
        },
    )
    .unwrap();
    fabric::apply_nft(&st).unwrap();
    let o = probe_from(&names.vm(), "10.224.0.5");
    assert!(!o.reachable, "the NSG should drop it: {o:?}");
    // Node-to-node is still allowed (AllowVnetInBound), and a higher-priority allow wins.
    assert!(probe_from(&names.node(1), "10.224.0.5").reachable);
    nsg::add(
        &mut st.nsg,
        NsgRule {
            priority: 100,
            direction: Direction::Inbound,
            access: Access::Allow,
            source: Some("10.225.0.4/32".parse().unwrap()),
            destination: None,
            port: None,
            protocol: None,
        },
    )
    .unwrap();
    fabric::apply_nft(&st).unwrap();
    assert!(probe_from(&names.vm(), "10.224.0.5").reachable);
    nsg::remove(&mut st.nsg, Direction::Inbound, 100).unwrap();
    nsg::remove(&mut st.nsg, Direction::Inbound, 200).unwrap();
    fabric::apply_nft(&st).unwrap();
    assert!(probe_from(&names.vm(), "10.224.0.5").reachable);
    // What the kernel holds is the desired table, read back through the driver.
    {
        use aksnet_nft::Driver;
        let mut d = aksnet_linux::nft::Nft::at(format!("/run/netns/{}", names.fabric())).unwrap();
        let want = fabric::desired_nft(&st);
        let l = d.list(&want.id()).unwrap().unwrap();
        for r in &l.rules {
            let ok = want.chains[&r.chain]
                .rules
                .iter()
                .any(|w| aksnet_nft::listing::same_rule(aksnet_nft::Family::Ip, r, w));
            assert!(
                ok,
                "listed in {}: {:?} {}",
                r.chain,
                r.comment,
                serde_json::Value::Array(r.expr.clone())
            );
        }
        assert!(l.matches(&want), "{l:#?}");
    }

    drop(_down);
    for ns in ip::netns_list() {
        assert!(!ns.starts_with(&names.prefix()), "{ns} left behind");
    }
    assert!(!dir.path.exists());
    let _ = std::fs::remove_dir_all(&tmp);
}
