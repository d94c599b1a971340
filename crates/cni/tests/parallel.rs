//! 64 parallel ADDs into one range, in both modes: every address distinct,
//! every pod reachable from the host side; then 64 parallel DELs free
//! every address and every veth.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PODS: usize = 64;
const NET: &str = "par";

fn conf(mode: &str, data: &str) -> Value {
    if mode == "bridge" {
        json!({"cniVersion": "1.0.0", "name": NET, "type": "aksnet-cni", "mode": "bridge",
            "bridge": "cbr0", "isGateway": true, "mtu": 1500, "promiscMode": true,
            "ipam": {"type": "aksnet-ipam", "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]],
                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data}})
    } else {
        json!({"cniVersion": "1.0.0", "name": NET, "type": "aksnet-cni", "mode": "transparent",
            "mtu": 1500,
            "ipam": {"type": "aksnet-ipam", "ranges": [[{"subnet": "10.224.0.0/16", "rangeStart": "10.224.0.10", "rangeEnd": "10.224.0.99"}]],
                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data}})
    }
}

fn parallel(mode: &str) {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akph").with_node_ip("10.224.0.4/32");
    let pods: Vec<NamedNs> = (0..PODS).map(|_| NamedNs::new("akpp")).collect();
    let data = TempDir::new();
    let stdin = conf(mode, &data.s()).to_string();
    let bin = env!("CARGO_BIN_EXE_aksnet-cni");
    let ips: Vec<IpAddr> = std::thread::scope(|s| {
        let hs: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (host, stdin) = (&host, &stdin);
                s.spawn(move || {
                    let r = Call::new(bin, "ADD", &format!("p{i}"), &p.path)
                        .run(&host.ns, stdin.as_bytes());
                    first_ip(r.ok())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), PODS, "{mode}: duplicates in {ips:?}");
    assert_eq!(allocated(&data.0.join(NET)), distinct);
    for ip in &ips {
        let IpAddr::V4(a) = ip else { panic!("v4") };
        assert!(
            ping(&host.ns, *a, Duration::from_secs(3)),
            "{mode}: {a} unreachable"
        );
    }
    // Pod to pod on the node (bridge: one L2 segment; transparent: routed
    // through the host via 169.254.1.1).
    for (from, to) in [(0, 1), (PODS - 1, 0)] {
        let IpAddr::V4(a) = ips[to] else { panic!("v4") };
        assert!(
            // 10 s, not 3: on a loaded 2-core CI machine the first packet
            // through the host (two ARP resolutions, proxy ARP in transparent
            // mode) was seen to take longer than 3 s.
            ping(&pods[from].ns, a, Duration::from_secs(10)),
            "{mode}: pod {from} cannot reach pod {to} ({a})"
        );
    }
    std::thread::scope(|s| {
        for (i, p) in pods.iter().enumerate() {
            let (host, stdin) = (&host, &stdin);
            s.spawn(move || {
                Call::new(bin, "DEL", &format!("p{i}"), &p.path)
                    .run(&host.ns, stdin.as_bytes())
                    .ok();
            });
        }
    });
    assert!(
        allocated(&data.0.join(NET)).is_empty(),
        "{mode}: addresses left"
    );
    let links = host.socket().links().unwrap();
    let veths: Vec<_> = links
        .iter()
        .filter(|l| l.name.starts_with("veth"))
        .collect();
    assert!(veths.is_empty(), "{mode}: veths left: {veths:?}");
}

#[test]
fn parallel_adds_bridge() {
    parallel("bridge");
}

#[test]
fn parallel_adds_transparent() {
    parallel("transparent");
}
