//! The agent end to end on a SQLite store in a temporary directory and the
//! fake kernel: no root.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use aksnet_agent::kernel::fake::FakeKernel;
use aksnet_agent::{Agent, AgentConfig, AgentError};
use aksnet_cluster::claims;
use aksnet_core::cluster::{self, RouteMode};
use aksnet_store::testing::TempSqlite;
use common::{init, init_with};

struct Node {
    agent: Agent,
    kernel: FakeKernel,
    dir: tempfile::TempDir,
}

fn node(kv: &TempSqlite, name: &str, ip: &str, routes: RouteMode) -> Node {
    let dir = tempfile::tempdir().unwrap();
    node_in(
        kv,
        name,
        ip,
        routes,
        dir,
        FakeKernel::with_link("eth0", ip.parse().unwrap(), 1500),
    )
}

fn node_in(
    kv: &TempSqlite,
    name: &str,
    ip: &str,
    routes: RouteMode,
    dir: tempfile::TempDir,
    kernel: FakeKernel,
) -> Node {
    let mut cfg = AgentConfig::new(name, ip.parse().unwrap());
    cfg.cni_conf_dir = dir.path().join("net.d");
    cfg.ipam_data_dir = dir.path().join("ipam");
    cfg.routes = routes;
    cfg.lease_ttl = Duration::from_secs(30);
    cfg.release_grace = Duration::ZERO;
    let agent = Agent::start(cfg, Arc::clone(&kv.store), Box::new(kernel.clone())).unwrap();
    Node { agent, kernel, dir }
}

fn conflist(n: &Node) -> serde_json::Value {
    let p = n.dir.path().join("net.d").join("10-aksnet.conflist");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn kubenet_host_gw_three_nodes_converge_and_restart_changes_nothing() {
    let kv = TempSqlite::new().unwrap();
    init(&*kv, &[("plugin", "kubenet")]);
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            node(
                &kv,
                &format!("n{i}"),
                &format!("10.224.0.{}", 4 + i),
                RouteMode::HostGw,
            )
        })
        .collect();
    for _ in 0..2 {
        for n in nodes.iter_mut() {
            n.agent.reconcile().unwrap();
        }
    }
    let blocks: BTreeSet<_> = nodes
        .iter()
        .map(|n| n.agent.record().block.unwrap())
        .collect();
    assert_eq!(blocks.len(), 3, "distinct blocks");
    assert_eq!(
        nodes[0].agent.record().block.unwrap().to_string(),
        "10.244.0.0/24"
    );
    for n in &nodes {
        let c = conflist(n);
        assert_eq!(c["plugins"][0]["mode"], "bridge");
        assert_eq!(
            c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            n.agent.record().block.unwrap().to_string()
        );
        let s = n.kernel.state();
        assert_eq!(s.routes.len(), 2, "a route to each peer");
        assert_eq!(s.sysctls["net.ipv4.ip_forward"], "1");
        assert!(s
            .nft
            .contains_key(&("ip".to_string(), "aksnet-agent".to_string())));
        assert!(!n.agent.record().network_unavailable());
        assert_eq!(
            n.agent
                .record()
                .condition("NetworkUnavailable")
                .unwrap()
                .reason,
            "RoutesProgrammed"
        );
    }
    // No store change: a reconcile changes nothing.
    let before = nodes[1].kernel.state().writes.len();
    let r = nodes[1].agent.reconcile().unwrap();
    assert!(!r.changed(), "{r:?}");
    assert_eq!(nodes[1].kernel.state().writes.len(), before);

    // "kill -9" node 1 and start it again on the same kernel and disk.
    let Node { agent, kernel, dir } = nodes.remove(1);
    let block = agent.record().block;
    drop(agent);
    let before = kernel.state().writes.clone();
    let mut again = node_in(&kv, "n1", "10.224.0.5", RouteMode::HostGw, dir, kernel);
    let r = again.agent.reconcile().unwrap();
    assert_eq!(
        again.agent.record().block,
        block,
        "same block after restart"
    );
    assert!(
        !r.conflist_written && !r.snat_applied && r.routes_changed == 0,
        "{r:?}"
    );
    assert_eq!(
        again.kernel.state().writes,
        before,
        "no kernel change on restart"
    );
}

#[test]
fn vxlan_programs_vtep_neighbours_fdb_and_routes() {
    let kv = TempSqlite::new().unwrap();
    init(&*kv, &[("plugin", "azure"), ("mode", "overlay")]);
    let mut a = node(&kv, "a", "10.224.0.4", RouteMode::Vxlan);
    let mut b = node(&kv, "b", "10.224.0.5", RouteMode::Vxlan);
    a.agent.reconcile().unwrap();
    b.agent.reconcile().unwrap();
    a.agent.reconcile().unwrap();
    let s = a.kernel.state();
    let vx = s.vxlan.clone().unwrap();
    assert_eq!(vx.mtu, 1450);
    assert_eq!(vx.address.to_string(), "10.244.0.0");
    assert_eq!(s.neighs.len(), 1);
    assert_eq!(s.fdb.iter().next().unwrap().dst.to_string(), "10.224.0.5");
    let r = s.routes.values().next().unwrap();
    assert!(r.onlink);
    assert_eq!(r.via.to_string(), "10.244.1.0");
    drop(s);
    let c = conflist(&a);
    assert_eq!(c["plugins"][0]["mode"], "transparent");
    assert_eq!(c["plugins"][0]["mtu"], 1450);
    assert!(b.agent.record().vtep_mac.is_some());
}

#[test]
fn kubenet_fabric_route_table_limit_and_release_on_remove() {
    let kv = TempSqlite::new().unwrap();
    init_with(&*kv, &[("plugin", "kubenet")], |n| n.route_table_limit = 2);
    let mut n: Vec<Node> = (0..3)
        .map(|i| {
            node(
                &kv,
                &format!("n{i}"),
                &format!("10.224.0.{}", 4 + i),
                RouteMode::Fabric,
            )
        })
        .collect();
    for x in n.iter_mut() {
        x.agent.reconcile().unwrap();
    }
    let c = n[2]
        .agent
        .record()
        .condition("NetworkUnavailable")
        .unwrap()
        .clone();
    assert!(c.status);
    assert_eq!(c.reason, "RouteTableFull");
    assert_eq!(c.message, "2 of 2 routes in use");
    assert_eq!(
        n[0].agent
            .record()
            .condition("NetworkUnavailable")
            .unwrap()
            .reason,
        "RouteCreated"
    );
    assert!(
        n[0].kernel.state().routes.is_empty(),
        "the fabric routes, not the node"
    );

    // Remove n0 (as `aksnet node remove` does): its slot frees, n2 takes it.
    kv.delete(&cluster::node_key("n0")).unwrap();
    let view = aksnet_cluster::read(&*kv).unwrap();
    claims::release_node(&*kv, &view, "n0").unwrap();
    n[2].agent.reconcile().unwrap();
    assert!(!n[2].agent.record().network_unavailable());
    assert!(matches!(
        n[0].agent.reconcile(),
        Err(AgentError::Removed(_))
    ));
    let view = aksnet_cluster::read(&*kv).unwrap();
    assert_eq!(view.blocks_of("n0").count(), 0);
    assert_eq!(view.routes.len(), 2);
}

#[test]
fn expired_lease_gives_claims_back() {
    let kv = TempSqlite::new().unwrap();
    init(&*kv, &[("plugin", "kubenet")]);
    let mut cfg = AgentConfig::new("short", "10.224.0.9".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    cfg.cni_conf_dir = dir.path().into();
    cfg.lease_ttl = Duration::from_secs(1);
    let mut a = Agent::start(cfg, Arc::clone(&kv.store), Box::new(FakeKernel::default())).unwrap();
    a.reconcile().unwrap();
    let mut b = node(&kv, "other", "10.224.0.10", RouteMode::Fabric);
    b.agent.reconcile().unwrap();
    // The store's leases count whole seconds: 1 s, and some margin.
    std::thread::sleep(Duration::from_millis(1600));
    b.agent.reconcile().unwrap();
    let view = aksnet_cluster::read(&*kv).unwrap();
    assert_eq!(view.blocks_of("short").count(), 0, "orphan block released");
    assert!(!view
        .ips
        .contains_key(&"10.224.0.9".parse::<Ipv4Addr>().unwrap()));
    // The agent notices its lease is gone and registers again, reclaiming
    // the block its conflist names.
    let old = a.record().block;
    a.reconcile().unwrap();
    assert_eq!(a.record().block, old);
}

#[test]
fn azure_static_reserves_max_pods_and_dynamic_follows_usage() {
    let kv = TempSqlite::new().unwrap();
    init(
        &*kv,
        &[
            ("plugin", "azure"),
            ("subnet", "10.224.0.0/24"),
            ("vnet", "10.224.0.0/16"),
        ],
    );
    let mut a = node(&kv, "a", "10.224.0.4", RouteMode::Fabric);
    a.agent.reconcile().unwrap();
    let held: u64 = a.agent.record().pool.iter().map(|r| r.len()).sum();
    assert_eq!(held, 30);
    assert_eq!(a.agent.record().pool.len(), 1, "contiguous");
    let c = conflist(&a);
    assert_eq!(
        c["plugins"][0]["ipam"]["ranges"][0][0]["rangeEnd"],
        "10.224.0.254"
    );

    let kv = TempSqlite::new().unwrap();
    init(
        &*kv,
        &[
            ("plugin", "azure"),
            ("subnet", "10.224.0.0/24"),
            ("pod-subnet", "10.225.0.0/22"),
            ("vnet", "10.224.0.0/12"),
        ],
    );
    let mut d = node(&kv, "d", "10.224.0.4", RouteMode::Fabric);
    d.agent.reconcile().unwrap();
    assert_eq!(d.agent.record().pool_used, Some(0));
    let pool: Vec<Ipv4Addr> = d
        .agent
        .record()
        .pool
        .iter()
        .flat_map(|r| (u32::from(r.start)..=u32::from(r.end)).map(Ipv4Addr::from))
        .collect();
    assert_eq!(pool.len(), 16);
    // Pods take 9 addresses (files as aksnet-ipam writes them).
    let ipam = d.dir.path().join("ipam").join("aksnet");
    std::fs::create_dir_all(&ipam).unwrap();
    for ip in &pool[..9] {
        std::fs::write(ipam.join(ip.to_string()), "c\r\neth0").unwrap();
    }
    let r = d.agent.reconcile().unwrap();
    assert_eq!(r.pool_claimed, 16);
    assert_eq!(d.agent.record().pool_used, Some(9));
    let c = conflist(&d);
    let total: u64 = c["plugins"][0]["ipam"]["ranges"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s: Ipv4Addr = r["rangeStart"].as_str().unwrap().parse().unwrap();
            let e: Ipv4Addr = r["rangeEnd"].as_str().unwrap().parse().unwrap();
            u64::from(u32::from(e) - u32::from(s) + 1)
        })
        .sum();
    assert_eq!(total, 32);
    // Pods go: the pool shrinks back to 16 (first out of the conflist, then
    // released after the grace period).
    for ip in &pool[..9] {
        std::fs::remove_file(ipam.join(ip.to_string())).unwrap();
    }
    d.agent.reconcile().unwrap();
    let r = d.agent.reconcile().unwrap();
    assert_eq!(r.pool_released, 16);
    let held: u64 = d.agent.record().pool.iter().map(|r| r.len()).sum();
    assert_eq!(held, 16);
}

#[test]
fn hundred_agents_race_for_blocks_without_duplicates() {
    let kv = TempSqlite::new().unwrap();
    init(&*kv, &[("plugin", "kubenet")]);
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(&kv.store);
            std::thread::spawn(move || {
                claims::block::ensure_block(
                    store.as_ref(),
                    &format!("r{i}"),
                    &"10.244.0.0/16".parse().unwrap(),
                    None,
                )
                .unwrap()
            })
        })
        .collect();
    let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let set: BTreeSet<_> = got.iter().collect();
    assert_eq!(set.len(), 100);
    let view = aksnet_cluster::read(&*kv).unwrap();
    assert_eq!(view.blocks.len(), 100);
}
