//! Issue 4 §5: a cluster on one machine. Node namespaces on a shared L2,
//! `aksnet agent` processes on one store, pods set up by the real aksnet
//! CNI plugins with the conflists the agents wrote; pods on different nodes
//! reach each other over host-gw and over vxlan, and traffic to a host
//! outside the pod CIDR leaves with the node's IP.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

const TOOLS: [&str; 4] = ["ip", "bridge", "nft", "sysctl"];

fn aksnet_ok(args: &[&str]) -> String {
    let out = Command::new(aksnet()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "aksnet {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn proto_routes(n: &Node) -> usize {
    n.ns.exec("ip -4 route show proto 77").lines().count()
}

/// The kernel state an agent owns on a node, for before/after comparisons.
fn snapshot(n: &Node) -> String {
    // Links without `-d` (bridge timers tick); the VTEP with its details.
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        n.ns.exec("ip -4 route show table main"),
        n.ns.exec("ip link show"),
        n.ns.exec("ip -d link show type vxlan"),
        n.ns.exec("bridge fdb show dev aksnet.1 2>/dev/null || true"),
        n.ns.exec("ip neigh show nud permanent"),
        n.ns.exec("nft list ruleset")
    )
}

fn agent_log(a: &AgentProc) -> String {
    std::fs::read_to_string(&a.log).unwrap_or_default()
}

/// Brings up agents on `nodes`, waits until every node holds a conflist and
/// a route to each peer.
fn wait_converged(f: &Fabric, nodes: &[usize], agents: &mut [AgentProc], routes: &str) {
    let peers = nodes.len() - 1;
    wait_for("conflists and peer routes", Duration::from_secs(30), || {
        for a in agents.iter_mut() {
            if let Ok(Some(status)) = a.child.try_wait() {
                panic!("agent exited ({status}): {}", agent_log(a));
            }
        }
        nodes.iter().all(|i| {
            let n = &f.nodes[*i];
            n.conflist().is_some() && (routes == "fabric" || proto_routes(n) == peers)
        })
    });
}

struct Scenario<'a> {
    store: &'a str,
    design: &'a [&'a str],
    routes: &'a str,
    mode: &'a str,
}

fn run_scenario(tag: &str, s: Scenario<'_>, mid_run: impl FnOnce(&Fabric) -> Option<usize>) {
    let f = Fabric::new(tag, 4);
    let mut init = vec!["cluster", "init", "--store", s.store];
    init.extend_from_slice(s.design);
    aksnet_ok(&init);
    let mut agents: Vec<AgentProc> = (0..3)
        .map(|i| f.start_agent(s.store, i, s.routes))
        .collect();
    wait_converged(&f, &[0, 1, 2], &mut agents, s.routes);

    // Distinct blocks, conflists in the model's mode.
    let blocks: BTreeSet<String> = (0..3)
        .map(|i| {
            let c = f.nodes[i].conflist().unwrap();
            assert_eq!(c["plugins"][0]["type"], "aksnet-cni");
            assert_eq!(c["plugins"][0]["mode"], s.mode);
            assert_eq!(c["plugins"][1]["type"], "aksnet-portmap");
            c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(blocks.len(), 3, "distinct blocks: {blocks:?}");

    // Something happens to the cluster mid-run (an etcd member stops, say);
    // a fourth node joining afterwards must still get a block of its own.
    let mut active = vec![0, 1, 2];
    if let Some(extra) = mid_run(&f) {
        agents.push(f.start_agent(s.store, extra, s.routes));
        active.push(extra);
        wait_converged(&f, &active, &mut agents, s.routes);
        let c = f.nodes[extra].conflist().unwrap();
        let b = c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            !blocks.contains(&b),
            "no double allocation: {b} in {blocks:?}"
        );
    }

    let pods: Vec<Pod> = active
        .iter()
        .map(|i| Pod::add(&f.nodes[*i], &format!("pod{i}")))
        .collect();

    // Pod to pod across nodes: reached, and no NAT on the way.
    for (a, b) in [(0usize, 1usize), (1, 2), (2, 0)] {
        let probe = Probe::start(&pods[b].ns.path(), pods[b].ip);
        let seen = probe_from(&pods[a].ns.path(), probe.addr).unwrap_or_else(|e| {
            panic!(
                "pod on node {a} -> pod on node {b}: {e}\n{}",
                agent_log(&agents[a])
            )
        });
        assert_eq!(
            seen,
            pods[a].ip.to_string(),
            "pod-to-pod keeps the pod's address"
        );
    }
    // Pod to a host outside the pod CIDR: SNAT to the node's IP.
    let outside = Probe::start(&f.outside.path(), OUTSIDE_IP.parse().unwrap());
    for (k, i) in active.iter().enumerate() {
        let seen = probe_from(&pods[k].ns.path(), outside.addr).unwrap();
        assert_eq!(seen, f.nodes[*i].ip.to_string(), "SNAT to the node IP");
    }

    let list: Value = serde_json::from_str(&aksnet_ok(&[
        "node", "list", "--store", s.store, "--output", "json",
    ]))
    .unwrap();
    let nodes = list["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), active.len());
    for n in nodes {
        let c = &n["conditions"][0];
        assert_eq!(c["type"], "NetworkUnavailable");
        assert_eq!(c["status"], false, "{n}");
    }
    eprintln!("{}", aksnet_ok(&["node", "list", "--store", s.store]));

    // kill -9 and restart node 1's agent: nothing in its kernel changes and
    // its pod keeps working; a connection open across the restart survives.
    let echo_addr = echo_server(&pods[1].ns.path(), pods[1].ip);
    let mut conn = connect_from(&pods[0].ns.path(), echo_addr);
    echo(&mut conn, "before restart").unwrap();
    let before = snapshot(&f.nodes[1]);
    let conf_before = std::fs::metadata(f.nodes[1].conf_dir().join("10-aksnet.conflist"))
        .unwrap()
        .modified()
        .unwrap();
    agents[1].kill9();
    agents[1] = f.start_agent(s.store, 1, s.routes);
    wait_for(
        "restarted agent's first reconcile",
        Duration::from_secs(20),
        || agent_log(&agents[1]).contains("agent started"),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        snapshot(&f.nodes[1]),
        before,
        "restart changed kernel state"
    );
    let conf_after = std::fs::metadata(f.nodes[1].conf_dir().join("10-aksnet.conflist"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        conf_before, conf_after,
        "restart rewrote an unchanged conflist"
    );
    let probe = Probe::start(&pods[1].ns.path(), pods[1].ip);
    assert_eq!(
        probe_from(&pods[0].ns.path(), probe.addr).unwrap(),
        pods[0].ip.to_string()
    );
    echo(&mut conn, "after restart").expect("the open connection survived the restart");

    // `aksnet node remove` while the node's agent runs: the agent stops, the
    // block goes back, and the other nodes drop their route to it.
    let gone = *active.last().unwrap();
    let gone_name = f.nodes[gone].name.clone();
    for (k, i) in active.iter().enumerate() {
        pods[k].del(&f.nodes[*i]);
    }
    aksnet_ok(&["node", "remove", &gone_name, "--store", s.store]);
    wait_for(
        "the removed node's agent to stop",
        Duration::from_secs(15),
        || matches!(agents[gone].child.try_wait(), Ok(Some(_))),
    );
    assert!(agent_log(&agents[gone]).contains("was removed from the cluster"));
    if s.routes != "fabric" {
        let left: Vec<usize> = active.iter().copied().filter(|i| *i != gone).collect();
        wait_for(
            "peers to drop the removed node's route",
            Duration::from_secs(15),
            || {
                left.iter()
                    .all(|i| proto_routes(&f.nodes[*i]) == left.len() - 1)
            },
        );
    }
    let show: Value = serde_json::from_str(&aksnet_ok(&[
        "cluster", "show", "--store", s.store, "--output", "json",
    ]))
    .unwrap();
    assert_eq!(show["usage"]["nodes"], active.len() - 1);
    assert_eq!(
        show["usage"]["blocks_claimed"],
        active.len() - 1,
        "the block went back"
    );
}

#[test]
fn kubenet_host_gw_on_sqlite() {
    if !can_run("the 3-node host-gw cluster test", &TOOLS, true) {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let store = format!("sqlite:{}", tmp.path().join("cluster.db").display());
    run_scenario(
        "hgw",
        Scenario {
            store: &store,
            design: &["--network-plugin", "kubenet"],
            routes: "host-gw",
            mode: "bridge",
        },
        |_| None,
    );
}

#[test]
fn overlay_vxlan_on_sqlite() {
    if !can_run("the 3-node vxlan cluster test", &TOOLS, true) {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let store = format!("sqlite:{}", tmp.path().join("cluster.db").display());
    run_scenario(
        "vx",
        Scenario {
            store: &store,
            design: &[
                "--network-plugin",
                "azure",
                "--network-plugin-mode",
                "overlay",
            ],
            routes: "vxlan",
            mode: "transparent",
        },
        |_| None,
    );
}

#[test]
fn kubenet_host_gw_on_a_three_member_etcd_cluster_with_a_member_stopped() {
    if !can_run("the etcd cluster test", &TOOLS, true) {
        return;
    }
    let Some(etcd) = aksnet_store::testing::etcd::require_etcd("etcd cluster agent test") else {
        return;
    };
    let mut cluster =
        aksnet_store::testing::etcd::EtcdCluster::start(&etcd, 3).expect("3-member etcd");
    let store = cluster.store_url();
    let victim = std::cell::Cell::new(None);
    run_scenario(
        "etcd",
        Scenario {
            store: &store,
            design: &["--network-plugin", "kubenet"],
            routes: "host-gw",
            mode: "bridge",
        },
        |_| {
            // Stop the leader: the agents must carry on through the election.
            let i = cluster.leader().unwrap_or(0);
            eprintln!("stopping etcd member {i} (the leader)");
            cluster.stop_member(i);
            victim.set(Some(i));
            Some(3)
        },
    );
    assert!(victim.get().is_some());
}

fn node_json(store: &str, name: &str) -> Value {
    let list: Value = serde_json::from_str(&aksnet_ok(&[
        "node", "list", "--store", store, "--output", "json",
    ]))
    .unwrap();
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn conflist_size(n: &Node) -> u64 {
    let c = n.conflist().unwrap_or(Value::Null);
    c["plugins"][0]["ipam"]["ranges"][0]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let s: std::net::Ipv4Addr = r["rangeStart"].as_str().unwrap().parse().unwrap();
                    let e: std::net::Ipv4Addr = r["rangeEnd"].as_str().unwrap().parse().unwrap();
                    u64::from(u32::from(e) - u32::from(s) + 1)
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Azure CNI with a pod subnet: the node holds 16 addresses, grows by a
/// batch of 16 when pods leave fewer than 8 free, and gives the batch back
/// when they go; the conflist follows.
#[test]
fn azure_dynamic_pool_follows_the_pods() {
    if !can_run("the azure dynamic pool test", &TOOLS, true) {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let store = format!("sqlite:{}", tmp.path().join("cluster.db").display());
    let f = Fabric::new("dyn", 2);
    aksnet_ok(&[
        "cluster",
        "init",
        "--store",
        &store,
        "--network-plugin",
        "azure",
        "--vnet-cidr",
        "10.224.0.0/12",
        "--subnet-cidr",
        "10.224.0.0/16",
        "--pod-subnet-cidr",
        "10.225.0.0/16",
    ]);
    let mut agents: Vec<AgentProc> = (0..2).map(|i| f.start_agent(&store, i, "fabric")).collect();
    wait_converged(&f, &[0, 1], &mut agents, "fabric");
    let n0 = &f.nodes[0];
    assert_eq!(n0.conflist().unwrap()["plugins"][0]["mode"], "transparent");
    wait_for("an initial batch of 16", Duration::from_secs(10), || {
        node_json(&store, "node-0")["pool_size"] == 16 && conflist_size(n0) == 16
    });

    let pods: Vec<Pod> = (0..10).map(|i| Pod::add(n0, &format!("d{i}"))).collect();
    let pool: BTreeSet<String> = pods.iter().map(|p| p.ip.to_string()).collect();
    assert_eq!(pool.len(), 10);
    assert!(
        pods.iter().all(|p| p.ip.octets()[..2] == [10, 225]),
        "pod addresses from the pod subnet"
    );
    wait_for(
        "a second batch (10 used, 8 must stay free)",
        Duration::from_secs(15),
        || {
            let n = node_json(&store, "node-0");
            n["pool_size"] == 32 && n["pool_used"] == 10 && conflist_size(n0) == 32
        },
    );
    eprintln!("{}", aksnet_ok(&["node", "list", "--store", &store]));
    let other = node_json(&store, "node-1");
    assert_eq!(other["pool_size"], 16);

    for p in &pods {
        p.del(n0);
    }
    wait_for(
        "the second batch given back",
        Duration::from_secs(20),
        || {
            let n = node_json(&store, "node-0");
            n["pool_size"] == 16 && n["pool_used"] == 0 && conflist_size(n0) == 16
        },
    );
    let show: Value = serde_json::from_str(&aksnet_ok(&[
        "cluster", "show", "--store", &store, "--output", "json",
    ]))
    .unwrap();
    assert_eq!(show["usage"]["pod_ips_claimed"], 32, "16 per node");
    assert_eq!(show["usage"]["node_ips_claimed"], 2);
}
