//! Issue 11 §3: a restart or a `kill -9` of the agent keeps working
//! connections. Two kubenet nodes with real agents on one store; a pod on
//! node-0 holds a TCP connection through a ClusterIP to an echo server in a
//! pod on node-1. The connection keeps flowing while node-0's agent is
//! dead and after a new one started, and the new agent adopts the Services
//! table as it is (every rule keeps its kernel handle: nothing was flushed
//! or rebuilt).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

const TOOLS: [&str; 4] = ["ip", "bridge", "nft", "sysctl"];

fn aksnet_in(args: &[&str], stdin: &str) -> String {
    let mut ch = Command::new(aksnet())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = ch.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "aksnet {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn agent_log(a: &AgentProc) -> String {
    std::fs::read_to_string(&a.log).unwrap_or_default()
}

/// The Services table with its rules' kernel handles.
fn table(n: &Node) -> String {
    n.ns.exec("nft -a list table ip aksnet-services")
}

#[test]
fn an_established_connection_through_a_cluster_ip_survives_an_agent_kill_9_and_restart() {
    if !can_run("the agent restart Services test", &TOOLS, true) {
        return;
    }
    let f = Fabric::new("svcr", 2);
    let store = format!("sqlite:{}", f.tmp.path().join("cluster.db").display());
    aksnet_in(
        &[
            "cluster",
            "init",
            "--store",
            &store,
            "--network-plugin",
            "kubenet",
        ],
        "",
    );
    let mut agents: Vec<AgentProc> = (0..2)
        .map(|i| f.start_agent(&store, i, "host-gw"))
        .collect();
    wait_for("conflists and peer routes", Duration::from_secs(30), || {
        f.nodes.iter().all(|n| {
            n.conflist().is_some() && n.ns.exec("ip -4 route show proto 77").lines().count() == 1
        })
    });
    let client = Pod::add(&f.nodes[0], "client");
    let server = Pod::add(&f.nodes[1], "server");
    let echo_addr = echo_server(&server.ns.path(), server.ip);

    // A Service without a selector and its EndpointSlice: the echo server.
    let manifest = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: keep, namespace: default}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keep-1
  namespace: default
  labels: {{kubernetes.io/service-name: keep}}
addressType: IPv4
ports: [{{port: {port}, protocol: TCP}}]
endpoints:
- addresses: ["{ip}"]
  conditions: {{ready: true}}
  nodeName: node-1
"#,
        port = echo_addr.port(),
        ip = server.ip,
    );
    aksnet_in(&["apply", "--store", &store, "-f", "-"], &manifest);
    let svc: Value = serde_json::from_str(&aksnet_in(
        &["get", "--store", &store, "svc", "keep", "-o", "json"],
        "",
    ))
    .unwrap();
    let cip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    wait_for(
        "the ClusterIP in node-0's table",
        Duration::from_secs(30),
        || table(&f.nodes[0]).contains(&cip.to_string()),
    );

    let mut conn = connect_from(&client.ns.path(), SocketAddr::from((cip, 80)));
    echo(&mut conn, "before the kill").unwrap();
    let before = table(&f.nodes[0]);

    agents[0].kill9();
    echo(&mut conn, "while no agent runs").expect("the connection flows without an agent");
    agents[0] = f.start_agent(&store, 0, "host-gw");
    wait_for(
        "the restarted agent's adoption",
        Duration::from_secs(30),
        || agent_log(&agents[0]).contains("Services table adopted"),
    );
    // A few more passes of the new agent.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        table(&f.nodes[0]),
        before,
        "the restarted agent rewrote the Services table:\n{}",
        agent_log(&agents[0])
    );
    echo(&mut conn, "after the restart").expect("the connection survived the restart");
    // New connections are translated by the adopted table as before.
    let mut fresh = connect_from(&client.ns.path(), SocketAddr::from((cip, 80)));
    echo(&mut fresh, "a new connection").unwrap();

    // A plain restart (SIGTERM) leaves the table and the connection too.
    drop(agents.remove(0));
    echo(&mut conn, "after a stop").expect("the connection survived the stop");
    let again = f.start_agent(&store, 0, "host-gw");
    wait_for(
        "the second restart's adoption",
        Duration::from_secs(30),
        || agent_log(&again).contains("Services table adopted"),
    );
    assert_eq!(table(&f.nodes[0]), before);
    echo(&mut conn, "after the second restart").unwrap();
    drop(fresh);
    drop(conn);
    client.del(&f.nodes[0]);
    server.del(&f.nodes[1]);
}
