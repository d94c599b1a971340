//! On-disk compatibility with the reference host-local (Debian's
//! `/usr/lib/cni/host-local`): a node can switch from one to the other, or
//! back, without losing an allocation; both honour each other's files,
//! `last_reserved_ip.N` and `lock`. Also: aksnet-ipam as the IPAM of the
//! reference bridge plugin.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const HOST_LOCAL: &str = "/usr/lib/cni/host-local";
const NET: &str = "compat";

fn ipam_bin() -> &'static str {
    env!("CARGO_BIN_EXE_aksnet-ipam")
}

fn conf(ipam_type: &str, data: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": NET, "type": "x",
        "ipam": {"type": ipam_type, "ranges": [[{"subnet": "10.244.3.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data}})
}

fn ready() -> bool {
    need_root() && need_binary(HOST_LOCAL)
}

/// Run IPAM `bin` (host-local or aksnet-ipam, with the matching type).
fn ipam(bin: &str, cmd: &str, id: &str, netns: &str, host: &NamedNs, data: &str) -> Outcome {
    let ty = if bin == HOST_LOCAL {
        "host-local"
    } else {
        "aksnet-ipam"
    };
    Call::new(bin, cmd, id, netns).run(&host.ns, conf(ty, data).to_string().as_bytes())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn switch_both_ways_keeps_allocations() {
    if !ready() {
        return;
    }
    let host = NamedNs::new("akhh");
    let pod = NamedNs::new("akhp");
    let data = TempDir::new();
    let d = data.s();
    let store = data.0.join(NET);
    // host-local first.
    let r = ipam(HOST_LOCAL, "ADD", "c1", &pod.path, &host, &d);
    assert_eq!(first_ip(r.ok()), ip("10.244.3.2"));
    // aksnet-ipam continues after host-local's last reserved address and
    // answers a repeated ADD of host-local's container with its address.
    let r = ipam(ipam_bin(), "ADD", "c2", &pod.path, &host, &d);
    assert_eq!(first_ip(r.ok()), ip("10.244.3.3"));
    let r = ipam(ipam_bin(), "ADD", "c1", &pod.path, &host, &d);
    assert_eq!(first_ip(r.ok()), ip("10.244.3.2"));
    // Same file format either way.
    let theirs = std::fs::read(store.join("10.244.3.2")).unwrap();
    let ours = std::fs::read(store.join("10.244.3.3")).unwrap();
    assert_eq!(theirs, b"c1\r\neth0");
    assert_eq!(ours, b"c2\r\neth0");
    assert_eq!(
        std::fs::read_to_string(store.join("last_reserved_ip.0")).unwrap(),
        "10.244.3.3"
    );
    // host-local continues after ours, and sees ours as taken.
    let r = ipam(HOST_LOCAL, "ADD", "c3", &pod.path, &host, &d);
    assert_eq!(first_ip(r.ok()), ip("10.244.3.4"));
    // CHECK across: each accepts the other's allocation.
    let mut c = conf("host-local", &d);
    c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.3.3/24"}]});
    Call::new(HOST_LOCAL, "CHECK", "c2", &pod.path)
        .run(&host.ns, c.to_string().as_bytes())
        .ok();
    let mut c = conf("aksnet-ipam", &d);
    c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.3.4/24"}]});
    Call::new(ipam_bin(), "CHECK", "c3", &pod.path)
        .run(&host.ns, c.to_string().as_bytes())
        .ok();
    // Each releases the other's allocations.
    ipam(ipam_bin(), "DEL", "c1", &pod.path, &host, &d).ok();
    ipam(HOST_LOCAL, "DEL", "c2", &pod.path, &host, &d).ok();
    assert_eq!(allocated(&store), vec![ip("10.244.3.4")]);
    ipam(ipam_bin(), "DEL", "c3", &pod.path, &host, &d).ok();
    assert!(allocated(&store).is_empty());
}

/// Legacy files holding only the container ID (old host-local) belong to
/// that container whatever the ifname.
#[test]
fn legacy_id_only_files() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akhh");
    let pod = NamedNs::new("akhp");
    let data = TempDir::new();
    let store = data.0.join(NET);
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("10.244.3.9"), "old\n").unwrap();
    let r = ipam(ipam_bin(), "ADD", "old", &pod.path, &host, &data.s());
    assert_eq!(first_ip(r.ok()), ip("10.244.3.9"));
    ipam(ipam_bin(), "DEL", "old", &pod.path, &host, &data.s()).ok();
    assert!(allocated(&store).is_empty());
}

/// Both plugins allocating at once from one directory: the shared `lock`
/// keeps every address distinct.
#[test]
fn concurrent_mixed_allocation() {
    if !ready() {
        return;
    }
    let host = NamedNs::new("akhh");
    let pod = NamedNs::new("akhp");
    let data = TempDir::new();
    let d = data.s();
    let ips: Vec<IpAddr> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..24)
            .map(|i| {
                let (host, pod, d) = (&host, &pod, &d);
                s.spawn(move || {
                    let bin = if i % 2 == 0 { HOST_LOCAL } else { ipam_bin() };
                    let r = ipam(bin, "ADD", &format!("m{i}"), &pod.path, host, d);
                    first_ip(r.ok())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = ips.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 24, "duplicate addresses: {ips:?}");
    assert_eq!(allocated(&data.0.join(NET)), sorted);
}

/// The reference bridge plugin with aksnet-ipam as its IPAM (found in
/// CNI_PATH): ADD, CHECK, DEL.
#[test]
fn reference_bridge_uses_aksnet_ipam() {
    if !ready() || !need_binary("/usr/lib/cni/bridge") {
        return;
    }
    let host = NamedNs::new("akhh").with_node_ip("10.224.0.4/32");
    let pod = NamedNs::new("akhp");
    let data = TempDir::new();
    let c = json!({"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "cbr9",
        "isGateway": true, "ipam": {"type": "aksnet-ipam", "ranges": [[{"subnet": "10.244.3.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data.s()}});
    let r = Call::new("/usr/lib/cni/bridge", "ADD", "b1", &pod.path)
        .run(&host.ns, c.to_string().as_bytes())
        .ok()
        .clone();
    let IpAddr::V4(a) = first_ip(&r) else {
        panic!("v4")
    };
    assert!(ping(&host.ns, a, Duration::from_secs(3)));
    let mut cc = c.clone();
    cc["prevResult"] = r;
    Call::new("/usr/lib/cni/bridge", "CHECK", "b1", &pod.path)
        .run(&host.ns, cc.to_string().as_bytes())
        .ok();
    Call::new("/usr/lib/cni/bridge", "DEL", "b1", &pod.path)
        .run(&host.ns, cc.to_string().as_bytes())
        .ok();
    assert!(allocated(&data.0.join(NET)).is_empty());
}
