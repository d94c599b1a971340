//! CNI spec conformance of `aksnet-cni` and `aksnet-ipam`, run as real
//! processes inside namespaces the tests create: every mode × every spec
//! version × both IPAM paths (in-process aksnet-ipam, delegated host-local)
//! through ADD, CHECK, DEL, DEL; DEL without ADD; GC; STATUS; chained
//! prevResult; masquerade rules; and the spec's error codes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use aksnet_linux::nft::{self, Family};
use common::*;
use serde_json::{json, Value};

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const NET: &str = "aksnet";
const NODE_IP: &str = "10.224.0.4/32";

fn cni() -> &'static str {
    env!("CARGO_BIN_EXE_aksnet-cni")
}

fn ipam_bin() -> &'static str {
    env!("CARGO_BIN_EXE_aksnet-ipam")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Bridge,
    Transparent,
}

/// The agent's conflist entry for `mode` (plugins[0]), standalone.
fn conf(ver: &str, mode: Mode, ipam_type: &str, data: &str) -> Value {
    match mode {
        Mode::Bridge => json!({
            "cniVersion": ver, "name": NET, "type": "aksnet-cni", "mode": "bridge",
            "bridge": "cbr0", "isGateway": true, "mtu": 1500, "promiscMode": true,
            "hairpinMode": false, "ipMasq": false,
            "ipam": {"type": ipam_type,
                "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]],
                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data}
        }),
        Mode::Transparent => json!({
            "cniVersion": ver, "name": NET, "type": "aksnet-cni", "mode": "transparent",
            "mtu": 1500, "ipMasq": false,
            "ipam": {"type": ipam_type,
                "ranges": [[{"subnet": "10.224.0.0/16", "rangeStart": "10.224.0.30", "rangeEnd": "10.224.0.39"},
                            {"subnet": "10.224.0.0/16", "rangeStart": "10.224.0.50", "rangeEnd": "10.224.0.50"}]],
                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data}
        }),
    }
}

fn with_prev(mut c: Value, prev: &Value) -> Vec<u8> {
    c["prevResult"] = prev.clone();
    c.to_string().into_bytes()
}

fn ge(ver: &str, min: &str) -> bool {
    let p = |s: &str| -> Vec<u32> { s.split('.').map(|x| x.parse().unwrap()).collect() };
    p(ver) >= p(min)
}

fn host_veth_exists(host: &NamedNs, id: &str) -> bool {
    let name = aksnet_cni::tag::host_veth_name(id, "eth0");
    host.socket().link_by_name(&name).unwrap().is_some()
}

/// One case of the matrix: ADD, CHECK, DEL, DEL (and CHECK after DEL
/// fails), checking the result's shape and that the pod is reachable.
fn case(mode: Mode, ipam_type: &str, ver: &str) {
    let host = NamedNs::new("akch").with_node_ip(NODE_IP);
    let pod = NamedNs::new("akcp");
    let data = TempDir::new();
    let store = data.0.join(NET);
    let c = conf(ver, mode, ipam_type, &data.s());
    let id = format!("ctr-{}", unique("m"));
    let ctx = format!("{mode:?}/{ipam_type}/{ver}");

    let add = Call::new(cni(), "ADD", &id, &pod.path).run(&host.ns, c.to_string().as_bytes());
    let r = add.ok().clone();
    assert_eq!(r["cniVersion"], ver, "{ctx}: {r}");
    let ip = first_ip(&r);
    let has_version = r["ips"][0].get("version").is_some();
    assert_eq!(has_version, !ge(ver, "1.0.0"), "{ctx}: {r}");
    if has_version {
        assert_eq!(r["ips"][0]["version"], "4", "{ctx}");
    }
    let ifaces = r["interfaces"].as_array().unwrap();
    let pi = r["ips"][0]["interface"].as_u64().unwrap() as usize;
    assert_eq!(ifaces[pi]["name"], "eth0", "{ctx}: {r}");
    assert_eq!(ifaces[pi]["sandbox"], pod.path.as_str(), "{ctx}");
    match mode {
        Mode::Bridge => {
            assert_eq!(ifaces[0]["name"], "cbr0", "{ctx}");
            assert_eq!(r["ips"][0]["gateway"], "10.244.0.1", "{ctx}");
        }
        Mode::Transparent => {
            assert_eq!(r["ips"][0]["gateway"], "169.254.1.1", "{ctx}");
            assert_eq!(
                r["ips"][0]["address"].as_str().unwrap().split('/').nth(1),
                Some("16")
            );
        }
    }
    assert_eq!(allocated(&store), vec![ip], "{ctx}");
    let mut hs = host.socket();
    let hv = hs
        .link_by_name(&aksnet_cni::tag::host_veth_name(&id, "eth0"))
        .unwrap()
        .expect("host veth");
    assert!(hv.up, "{ctx}");
    assert_eq!(hv.mtu, Some(1500), "{ctx}");
    assert_eq!(
        hv.alias.as_deref(),
        Some(aksnet_cni::tag::attachment_tag(NET, &id, "eth0").as_str()),
        "{ctx}"
    );
    if mode == Mode::Bridge {
        let br = hs.link_by_name("cbr0").unwrap().expect("bridge");
        assert_eq!(hv.master, Some(br.index), "{ctx}");
        assert!(br.promisc && br.up, "{ctx}");
    }
    let IpAddr::V4(ip4) = ip else {
        panic!("{ctx}: v4")
    };
    assert!(
        ping(&host.ns, ip4, Duration::from_secs(3)),
        "{ctx}: pod {ip} unreachable"
    );

    if ge(ver, "0.4.0") {
        Call::new(cni(), "CHECK", &id, &pod.path)
            .run(&host.ns, &with_prev(c.clone(), &r))
            .ok();
    }
    let del_in = if ge(ver, "0.4.0") {
        with_prev(c.clone(), &r)
    } else {
        c.to_string().into_bytes()
    };
    let del = Call::new(cni(), "DEL", &id, &pod.path).run(&host.ns, &del_in);
    del.ok();
    assert!(
        del.stdout.trim().is_empty(),
        "{ctx}: DEL printed {}",
        del.stdout
    );
    assert!(!host_veth_exists(&host, &id), "{ctx}: veth left");
    assert!(allocated(&store).is_empty(), "{ctx}: allocation left");
    Call::new(cni(), "DEL", &id, &pod.path)
        .run(&host.ns, &del_in)
        .ok();
    if ge(ver, "0.4.0") {
        let out = Call::new(cni(), "CHECK", &id, &pod.path).run(&host.ns, &with_prev(c, &r));
        assert_eq!(
            out.code,
            Some(1),
            "{ctx}: CHECK after DEL must fail: {}",
            out.stdout
        );
    }
}

fn matrix(mode: Mode, ipam_type: &str) {
    if !need_root() {
        return;
    }
    if ipam_type == "host-local" && !need_binary("/usr/lib/cni/host-local") {
        return;
    }
    // Delegation passes the configuration as it is, so only the versions
    // the delegated IPAM speaks can be run through it.
    let versions: Vec<&str> = if ipam_type == "host-local" {
        let host = NamedNs::new("akch");
        let mut v = Call::new("/usr/lib/cni/host-local", "VERSION", "", "");
        v.path = String::new();
        let out = v.run(&host.ns, br#"{"cniVersion":"1.0.0"}"#);
        let theirs = out.ok()["supportedVersions"].clone();
        VERSIONS
            .into_iter()
            .filter(|x| theirs.as_array().unwrap().iter().any(|t| t == x))
            .collect()
    } else {
        VERSIONS.to_vec()
    };
    assert!(versions.len() >= 4, "{versions:?}");
    for v in &versions {
        case(mode, ipam_type, v);
    }
    eprintln!("{mode:?} × {ipam_type}: versions {versions:?} passed");
}

#[test]
fn matrix_bridge_aksnet_ipam() {
    matrix(Mode::Bridge, "aksnet-ipam");
}

#[test]
fn matrix_bridge_host_local() {
    matrix(Mode::Bridge, "host-local");
}

#[test]
fn matrix_transparent_aksnet_ipam() {
    matrix(Mode::Transparent, "aksnet-ipam");
}

#[test]
fn matrix_transparent_host_local() {
    matrix(Mode::Transparent, "host-local");
}

/// CHECK fails when what ADD made is removed: the pod's address, the host
/// veth, the transparent host route.
#[test]
fn check_detects_removal() {
    if !need_root() {
        return;
    }
    for mode in [Mode::Bridge, Mode::Transparent] {
        let host = NamedNs::new("akch").with_node_ip(NODE_IP);
        let pod = NamedNs::new("akcp");
        let data = TempDir::new();
        let c = conf("1.0.0", mode, "aksnet-ipam", &data.s());
        let r = Call::new(cni(), "ADD", "c1", &pod.path)
            .run(&host.ns, c.to_string().as_bytes())
            .ok()
            .clone();
        let check =
            || Call::new(cni(), "CHECK", "c1", &pod.path).run(&host.ns, &with_prev(c.clone(), &r));
        check().ok();
        // CHECK without prevResult is a configuration error.
        Call::new(cni(), "CHECK", "c1", &pod.path)
            .run(&host.ns, c.to_string().as_bytes())
            .err(7);
        let mut ps = pod.socket();
        let eth0 = ps.link_by_name("eth0").unwrap().unwrap();
        let addr: ipnet::IpNet = r["ips"][0]["address"].as_str().unwrap().parse().unwrap();
        ps.del_address(eth0.index, addr).unwrap();
        let msg = check().err(999);
        assert!(msg.contains("address"), "{mode:?}: {msg}");
        ps.add_address(eth0.index, addr, Default::default())
            .unwrap();
        if mode == Mode::Transparent {
            // The pod's routes went with... nothing: noprefixroute. The host
            // route is the transparent-specific piece.
            let mut hs = host.socket();
            let v = hs
                .link_by_name(&aksnet_cni::tag::host_veth_name("c1", "eth0"))
                .unwrap()
                .unwrap();
            hs.del_route(
                &aksnet_linux::route::Route::new(ipnet::IpNet::from(addr.addr())).dev(v.index),
            )
            .unwrap();
            let msg = check().err(999);
            assert!(msg.contains("route"), "{msg}");
        }
        host.socket()
            .delete_link_by_name(&aksnet_cni::tag::host_veth_name("c1", "eth0"))
            .unwrap();
        check().err(999);
        // The allocation file removed: the IPAM part of CHECK fails.
        std::fs::remove_file(data.0.join(NET).join(addr.addr().to_string())).unwrap();
        check().err(999);
    }
}

/// DEL succeeds whatever is already gone: no namespace, no link, no
/// allocation, namespace path missing, DEL without ADD, repeated DEL.
#[test]
fn del_whatever_is_gone() {
    if !need_root() {
        return;
    }
    for mode in [Mode::Bridge, Mode::Transparent] {
        let host = NamedNs::new("akch").with_node_ip(NODE_IP);
        let data = TempDir::new();
        let c = conf("1.1.0", mode, "aksnet-ipam", &data.s());
        let cb = c.to_string().into_bytes();
        // DEL without ADD, with an empty and with a missing CNI_NETNS.
        Call::new(cni(), "DEL", "never", "").run(&host.ns, &cb).ok();
        Call::new(cni(), "DEL", "never", "/run/netns/does-not-exist")
            .run(&host.ns, &cb)
            .ok();
        // ADD, then the pod's namespace disappears, then DEL twice.
        let pod = NamedNs::new("akcp");
        Call::new(cni(), "ADD", "c1", &pod.path)
            .run(&host.ns, &cb)
            .ok();
        pod.delete();
        Call::new(cni(), "DEL", "c1", &pod.path)
            .run(&host.ns, &cb)
            .ok();
        assert!(!host_veth_exists(&host, "c1"));
        assert!(allocated(&data.0.join(NET)).is_empty());
        Call::new(cni(), "DEL", "c1", &pod.path)
            .run(&host.ns, &cb)
            .ok();
        // The IPAM plugin alone, too.
        Call::new(ipam_bin(), "DEL", "never", "")
            .run(&host.ns, &cb)
            .ok();
    }
}

/// GC releases every allocation (and veth) not listed, with both the
/// current and the legacy attachment key.
#[test]
fn gc_releases_unlisted() {
    if !need_root() {
        return;
    }
    for (mode, key) in [
        (Mode::Bridge, "cni.dev/valid-attachments"),
        (Mode::Transparent, "cni.dev/attachments"),
    ] {
        let host = NamedNs::new("akch").with_node_ip(NODE_IP);
        let pods: Vec<NamedNs> = (0..3).map(|_| NamedNs::new("akcp")).collect();
        let data = TempDir::new();
        let store = data.0.join(NET);
        let c = conf("1.1.0", mode, "aksnet-ipam", &data.s());
        let mut ips = Vec::new();
        for (i, p) in pods.iter().enumerate() {
            let r = Call::new(cni(), "ADD", &format!("c{i}"), &p.path)
                .run(&host.ns, c.to_string().as_bytes())
                .ok()
                .clone();
            ips.push(first_ip(&r));
        }
        let mut g = c.clone();
        g[key] = json!([{"containerID": "c0", "ifname": "eth0"}]);
        let mut call = Call::new(cni(), "GC", "", "");
        call.ifname = String::new();
        call.run(&host.ns, g.to_string().as_bytes()).ok();
        assert_eq!(allocated(&store), vec![ips[0]], "{mode:?}");
        assert!(host_veth_exists(&host, "c0"));
        assert!(!host_veth_exists(&host, "c1") && !host_veth_exists(&host, "c2"));
        // GC without any list releases nothing.
        call.run(&host.ns, c.to_string().as_bytes()).ok();
        assert_eq!(allocated(&store), vec![ips[0]]);
        // The IPAM binary alone, empty list: everything goes.
        g[key] = json!([]);
        call.bin = ipam_bin().into();
        call.run(&host.ns, g.to_string().as_bytes()).ok();
        assert!(allocated(&store).is_empty());
    }
}

/// STATUS is fine while addresses are left, 50 when none is; ADD then
/// fails with an error naming the range.
#[test]
fn status_and_exhaustion() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akch").with_node_ip(NODE_IP);
    let data = TempDir::new();
    let mut c = conf("1.1.0", Mode::Transparent, "aksnet-ipam", &data.s());
    c["ipam"]["ranges"] = json!([[{"subnet": "10.224.0.0/16", "rangeStart": "10.224.0.30", "rangeEnd": "10.224.0.31"}]]);
    let cb = c.to_string().into_bytes();
    let status = |bin: &str| {
        let mut s = Call::new(bin, "STATUS", "", "");
        s.ifname = String::new();
        s.run(&host.ns, &cb)
    };
    status(cni()).ok();
    status(ipam_bin()).ok();
    let pods: Vec<NamedNs> = (0..3).map(|_| NamedNs::new("akcp")).collect();
    for (i, p) in pods.iter().take(2).enumerate() {
        Call::new(cni(), "ADD", &format!("c{i}"), &p.path)
            .run(&host.ns, &cb)
            .ok();
    }
    assert!(status(cni()).err(50).contains("10.224.0.30-10.224.0.31"));
    status(ipam_bin()).err(50);
    let out = Call::new(cni(), "ADD", "c2", &pods[2].path).run(&host.ns, &cb);
    let msg = out.err(999);
    assert!(msg.contains("10.224.0.30-10.224.0.31"), "{msg}");
    assert!(!host_veth_exists(&host, "c2"), "failed ADD left its veth");
    // STATUS and GC are 1.1.0 commands.
    let mut old = c.clone();
    old["cniVersion"] = json!("1.0.0");
    let mut s = Call::new(cni(), "STATUS", "", "");
    s.ifname = String::new();
    s.run(&host.ns, old.to_string().as_bytes()).err(1);
}

/// A repeated ADD for the same (container, ifname) answers with the same
/// address, keeps one allocation, and leaves the pod reachable.
#[test]
fn repeated_add_is_consistent() {
    if !need_root() {
        return;
    }
    for mode in [Mode::Bridge, Mode::Transparent] {
        let host = NamedNs::new("akch").with_node_ip(NODE_IP);
        let pod = NamedNs::new("akcp");
        let data = TempDir::new();
        let c = conf("1.0.0", mode, "aksnet-ipam", &data.s());
        let a = Call::new(cni(), "ADD", "c1", &pod.path).run(&host.ns, c.to_string().as_bytes());
        let b = Call::new(cni(), "ADD", "c1", &pod.path).run(&host.ns, c.to_string().as_bytes());
        let ip = first_ip(a.ok());
        assert_eq!(ip, first_ip(b.ok()));
        assert_eq!(allocated(&data.0.join(NET)), vec![ip]);
        let IpAddr::V4(ip4) = ip else { panic!() };
        assert!(ping(&host.ns, ip4, Duration::from_secs(3)), "{mode:?}");
        // The IPAM binary alone answers the same way.
        let i =
            Call::new(ipam_bin(), "ADD", "c1", &pod.path).run(&host.ns, c.to_string().as_bytes());
        assert_eq!(first_ip(i.ok()), ip);
        assert!(i.json.get("interfaces").is_none());
    }
}

/// Requested addresses: CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips.
#[test]
fn requested_addresses() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akch").with_node_ip(NODE_IP);
    let data = TempDir::new();
    let c = conf("1.0.0", Mode::Bridge, "aksnet-ipam", &data.s());
    let pods: Vec<NamedNs> = (0..3).map(|_| NamedNs::new("akcp")).collect();
    let mut a = Call::new(cni(), "ADD", "c0", &pods[0].path);
    a.args = "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.244.0.77".into();
    assert_eq!(
        first_ip(a.run(&host.ns, c.to_string().as_bytes()).ok()).to_string(),
        "10.244.0.77"
    );
    let mut c1 = c.clone();
    c1["args"] = json!({"cni": {"ips": ["10.244.0.78"]}});
    let r = Call::new(cni(), "ADD", "c1", &pods[1].path).run(&host.ns, c1.to_string().as_bytes());
    assert_eq!(first_ip(r.ok()).to_string(), "10.244.0.78");
    let mut c2 = c.clone();
    c2["runtimeConfig"] = json!({"ips": ["10.244.0.79/24"]});
    let r = Call::new(cni(), "ADD", "c2", &pods[2].path).run(&host.ns, c2.to_string().as_bytes());
    assert_eq!(first_ip(r.ok()).to_string(), "10.244.0.79");
    // Taken already.
    let mut d = Call::new(ipam_bin(), "ADD", "c9", &pods[0].path);
    d.args = "IP=10.244.0.77".into();
    assert!(d
        .run(&host.ns, c.to_string().as_bytes())
        .err(999)
        .contains("already allocated"));
}

/// A prevResult from an earlier plugin is kept, ours appended with
/// re-indexed interfaces.
#[test]
fn chained_prev_result() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akch").with_node_ip(NODE_IP);
    let pod = NamedNs::new("akcp");
    let data = TempDir::new();
    let prev = json!({"cniVersion": "0.4.0", "interfaces": [{"name": "earlier"}],
        "ips": [{"version": "4", "address": "192.0.2.9/32", "interface": 0}]});
    let c = conf("0.4.0", Mode::Transparent, "aksnet-ipam", &data.s());
    let r = Call::new(cni(), "ADD", "c1", &pod.path)
        .run(&host.ns, &with_prev(c.clone(), &prev))
        .ok()
        .clone();
    assert_eq!(r["interfaces"][0]["name"], "earlier");
    assert_eq!(r["ips"][0]["address"], "192.0.2.9/32");
    assert_eq!(r["ips"][1]["interface"], 2);
    assert_eq!(r["interfaces"][2]["name"], "eth0");
    assert_eq!(r["ips"][1]["version"], "4");
    // The merged result checks fine: our CHECK looks at our interface.
    Call::new(cni(), "CHECK", "c1", &pod.path)
        .run(&host.ns, &with_prev(c.clone(), &r))
        .ok();
    // A 0.2.0-shaped prevResult is refused.
    let bad = json!({"ip4": {"ip": "10.0.0.2/24"}});
    Call::new(cni(), "ADD", "c2", &pod.path)
        .run(&host.ns, &with_prev(c, &bad))
        .err(1);
}

fn masq_comments(host: &NamedNs) -> Vec<String> {
    let _g = host.ns.enter().unwrap();
    nft::list_table(Family::Ip, "aksnet-cni")
        .unwrap()
        .map(|t| t.rules.into_iter().filter_map(|r| r.comment).collect())
        .unwrap_or_default()
}

/// ipMasq: one rule per pod, removed by DEL and by GC.
#[test]
fn ip_masq_rules() {
    if !need_root() || !need_binary("/usr/sbin/nft") {
        return;
    }
    let host = NamedNs::new("akch").with_node_ip(NODE_IP);
    let data = TempDir::new();
    let mut c = conf("1.1.0", Mode::Bridge, "aksnet-ipam", &data.s());
    c["ipMasq"] = json!(true);
    let pods: Vec<NamedNs> = (0..3).map(|_| NamedNs::new("akcp")).collect();
    for (i, p) in pods.iter().enumerate() {
        Call::new(cni(), "ADD", &format!("c{i}"), &p.path)
            .run(&host.ns, c.to_string().as_bytes())
            .ok();
    }
    let tag = |i: usize| aksnet_cni::tag::attachment_tag(NET, &format!("c{i}"), "eth0");
    let mut got = masq_comments(&host);
    got.sort();
    assert_eq!(got, vec![tag(0), tag(1), tag(2)]);
    Call::new(cni(), "DEL", "c0", &pods[0].path)
        .run(&host.ns, c.to_string().as_bytes())
        .ok();
    assert_eq!(masq_comments(&host).len(), 2);
    let mut g = c.clone();
    g["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    let mut call = Call::new(cni(), "GC", "", "");
    call.ifname = String::new();
    call.run(&host.ns, g.to_string().as_bytes()).ok();
    assert_eq!(masq_comments(&host), vec![tag(1)]);
}

/// The spec's error codes.
#[test]
fn error_codes() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akch").with_node_ip(NODE_IP);
    let pod = NamedNs::new("akcp");
    let data = TempDir::new();
    let c = conf("1.0.0", Mode::Bridge, "aksnet-ipam", &data.s());
    for bin in [cni(), ipam_bin()] {
        let add = Call::new(bin, "ADD", "c1", &pod.path);
        // 1: incompatible version.
        let mut v = c.clone();
        v["cniVersion"] = json!("0.2.0");
        add.run(&host.ns, v.to_string().as_bytes()).err(1);
        // 4: missing or bad environment.
        let mut e = add.clone();
        e.id = String::new();
        e.run(&host.ns, c.to_string().as_bytes()).err(4);
        let mut e = add.clone();
        e.command = "FROB".into();
        e.run(&host.ns, c.to_string().as_bytes()).err(4);
        let mut e = add.clone();
        e.args = "NOPE".into();
        e.run(&host.ns, c.to_string().as_bytes()).err(4);
        // 6: undecodable.
        add.run(&host.ns, b"{not json").err(6);
        // 7: invalid configuration.
        let mut bad = c.clone();
        bad["ipam"]["ranges"] = json!([[{"subnet": "10.244.0.1/24"}]]);
        add.run(&host.ns, bad.to_string().as_bytes()).err(7);
    }
    let mut m = c.clone();
    m["mode"] = json!("tunnel");
    Call::new(cni(), "ADD", "c1", &pod.path)
        .run(&host.ns, m.to_string().as_bytes())
        .err(7);
    let mut m = c.clone();
    m["ipam"]["type"] = json!("no-such-ipam");
    Call::new(cni(), "ADD", "c1", &pod.path)
        .run(&host.ns, m.to_string().as_bytes())
        .err(7);
    // 4: CNI_NETNS that is not a namespace.
    Call::new(cni(), "ADD", "c1", "/proc/self/status")
        .run(&host.ns, c.to_string().as_bytes())
        .err(4);
    assert!(
        allocated(&data.0.join(NET)).is_empty(),
        "failed ADD kept its address"
    );
    // 11: the store is locked by someone else for too long.
    let dir = data.0.join(NET);
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join("lock")).unwrap();
    lock.lock().unwrap();
    let mut l = Call::new(cni(), "ADD", "c1", &pod.path);
    l.env
        .push(("AKSNET_IPAM_LOCK_TIMEOUT_MS".into(), "200".into()));
    l.run(&host.ns, c.to_string().as_bytes()).err(11);
    lock.unlock().unwrap();
    l.run(&host.ns, c.to_string().as_bytes()).ok();
}

/// VERSION answers with every supported version, whatever else is set.
#[test]
fn version_command() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akch");
    for bin in [cni(), ipam_bin()] {
        let mut v = Call::new(bin, "VERSION", "", "");
        v.path = String::new();
        let out = v.run(&host.ns, br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(out.ok()["supportedVersions"], json!(VERSIONS));
        assert_eq!(out.json["cniVersion"], "0.4.0");
        assert_eq!(v.run(&host.ns, b"").ok()["cniVersion"], "1.1.0");
    }
}

/// No input makes a plugin die of a signal (panic=abort) or exit with
/// anything but 0 or 1.
#[test]
fn garbage_never_panics() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akch");
    let pod = NamedNs::new("akcp");
    let data = TempDir::new();
    let good = conf("1.1.0", Mode::Transparent, "aksnet-ipam", &data.s());
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"null".to_vec(),
        b"42".to_vec(),
        vec![0xff, 0xfe, 0x00],
        br#"{"cniVersion":1}"#.to_vec(),
        br#"{"cniVersion":"1.1.0","name":"a","ipam":null}"#.to_vec(),
        br#"{"cniVersion":"1.1.0","name":"a","ipam":{"type":"aksnet-ipam","ranges":[[]]}}"#.to_vec(),
        br#"{"cniVersion":"1.1.0","name":"a","ipam":{"type":"aksnet-ipam","ranges":[[{"subnet":"::/127"}]]}}"#.to_vec(),
        br#"{"cniVersion":"1.1.0","name":"a","ipam":{"type":"aksnet-ipam","ranges":"x"}}"#.to_vec(),
        format!(r#"{{"cniVersion":"1.1.0","name":"a","prevResult":{{"ips":[{{"address":7}}]}},"ipam":{{"type":"aksnet-ipam","subnet":"10.0.0.0/30","dataDir":"{}"}}}}"#, data.s()).into_bytes(),
        "{\"cniVersion\":\"1.1.0\",\"name\":\"\u{1F600}\"}".as_bytes().to_vec(),
    ];
    for (k, v) in [
        ("mtu", json!(-1)),
        ("mtu", json!(1e99)),
        ("ipsToRouteViaHost", json!("x")),
        ("bridge", json!("")),
        ("runtimeConfig", json!({"ips": [1, 2]})),
        (
            "runtimeConfig",
            json!({"ipRanges": [[{"subnet": "300.0.0.0/8"}]]}),
        ),
        ("args", json!({"cni": {"ips": "10.0.0.1"}})),
        ("cni.dev/valid-attachments", json!([{"containerID": 1}])),
    ] {
        let mut g = good.clone();
        g[k] = v;
        inputs.push(g.to_string().into_bytes());
    }
    for bin in [cni(), ipam_bin()] {
        for cmd in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
            for input in &inputs {
                let out = Call::new(bin, cmd, "c1", &pod.path).run(&host.ns, input);
                assert!(
                    matches!(out.code, Some(0) | Some(1)),
                    "{bin} {cmd} {:?}: {:?} {}",
                    String::from_utf8_lossy(input),
                    out.code,
                    out.stderr
                );
                if out.code == Some(1) {
                    assert!(out.json["code"].is_u64(), "{cmd}: {}", out.stdout);
                }
            }
        }
    }
    assert!(allocated(&data.0.join(NET)).is_empty());
}

/// Dual stack: one address per range set (IPv4 and IPv6), IPv6 usable at
/// once (no DAD), CHECK and DEL cover both; transparent mode uses Azure's
/// IPv6 virtual gateway.
#[test]
fn dual_stack() {
    if !need_root() {
        return;
    }
    for mode in [Mode::Bridge, Mode::Transparent] {
        let host = NamedNs::new("akch").with_node_ip(NODE_IP);
        let pod = NamedNs::new("akcp");
        let data = TempDir::new();
        let mut c = conf("1.1.0", mode, "aksnet-ipam", &data.s());
        let mut ranges = c["ipam"]["ranges"].as_array().unwrap().clone();
        ranges.push(json!([{"subnet": "fd00:10:244::/64"}]));
        c["ipam"]["ranges"] = json!(ranges);
        c["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
        let r = Call::new(cni(), "ADD", "c1", &pod.path)
            .run(&host.ns, c.to_string().as_bytes())
            .ok()
            .clone();
        assert_eq!(r["ips"][1]["address"], "fd00:10:244::2/64", "{mode:?}: {r}");
        if mode == Mode::Transparent {
            assert_eq!(r["ips"][1]["gateway"], "fe80::1234:5678:9abc");
        }
        let mut ps = pod.socket();
        let eth0 = ps.link_by_name("eth0").unwrap().unwrap();
        let v6: Vec<_> = ps
            .addresses(Some(eth0.index))
            .unwrap()
            .into_iter()
            .filter(|a| a.addr.to_string() == "fd00:10:244::2/64")
            .collect();
        assert_eq!(v6.len(), 1, "{mode:?}");
        let defaults = ps
            .routes(true, None)
            .unwrap()
            .into_iter()
            .filter(|x| x.dst.prefix_len() == 0)
            .count();
        assert_eq!(defaults, 1, "{mode:?}: IPv6 default route");
        let IpAddr::V4(a) = first_ip(&r) else {
            panic!()
        };
        assert!(ping(&host.ns, a, Duration::from_secs(3)), "{mode:?}");
        Call::new(cni(), "CHECK", "c1", &pod.path)
            .run(&host.ns, &with_prev(c.clone(), &r))
            .ok();
        Call::new(cni(), "DEL", "c1", &pod.path)
            .run(&host.ns, &with_prev(c.clone(), &r))
            .ok();
        assert!(allocated(&data.0.join(NET)).is_empty(), "{mode:?}");
    }
}

/// `ipsToRouteViaHost` gives the pod a /32 route via its gateway, in both
/// modes, and is part of the result; `hairpinMode` is accepted.
#[test]
fn ips_to_route_via_host() {
    if !need_root() {
        return;
    }
    for (mode, gw) in [
        (Mode::Bridge, "10.244.0.1"),
        (Mode::Transparent, "169.254.1.1"),
    ] {
        let host = NamedNs::new("akch").with_node_ip(NODE_IP);
        let pod = NamedNs::new("akcp");
        let data = TempDir::new();
        let mut c = conf("1.1.0", mode, "aksnet-ipam", &data.s());
        c["ipsToRouteViaHost"] = json!(["169.254.20.10"]);
        c["hairpinMode"] = json!(true);
        let r = Call::new(cni(), "ADD", "c1", &pod.path)
            .run(&host.ns, c.to_string().as_bytes())
            .ok()
            .clone();
        assert!(
            r["routes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["dst"] == "169.254.20.10/32"),
            "{r}"
        );
        let want: ipnet::IpNet = "169.254.20.10/32".parse().unwrap();
        let routes = pod.socket().routes(false, None).unwrap();
        let rt = routes.iter().find(|x| x.dst == want).expect("route in pod");
        assert_eq!(rt.gateway, Some(gw.parse().unwrap()), "{mode:?}");
        Call::new(cni(), "CHECK", "c1", &pod.path)
            .run(&host.ns, &with_prev(c.clone(), &r))
            .ok();
    }
}
