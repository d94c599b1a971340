//! aksnet-portmap against the kernel, in namespaces each test creates:
//!
//! ```text
//!  outside (192.0.2.2) ── up0 192.0.2.1 ─ host ─ br0 10.77.0.1/24 ── veth ── pod eth0 10.77.0.2
//! ```
//!
//! The plugin binary runs inside the "host" namespace (`ip netns exec`);
//! the pod runs a probe server answering with the source address it saw,
//! so masquerading is visible.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use aksnet_linux::nft::{self, Family, Table};
use common::{
    can_run, cni, probe_server, probe_server_on, tcp_probe, udp_probe, Call, NamedNs, Outcome,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_aksnet-portmap");
const NFT: &str = "/usr/sbin/nft";
const IP: &str = "/usr/sbin/ip";
const TABLE: &str = "aksnet-portmap";

struct Topo {
    host: NamedNs,
    pod: NamedNs,
    outside: NamedNs,
}

fn topo() -> Topo {
    let host = NamedNs::with_lo_up("h");
    let pod = NamedNs::with_lo_up("p");
    let outside = NamedNs::with_lo_up("o");
    host.ip(&["link", "add", "br0", "type", "bridge"]);
    host.ip(&["addr", "add", "10.77.0.1/24", "dev", "br0"]);
    host.ip(&["link", "set", "br0", "up"]);
    host.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    host.ip(&["link", "set", "veth0", "master", "br0", "up"]);
    // With br_netfilter loaded (bridge-nf-call-iptables=1), a hairpin
    // connection is DNATed in bridge context and forwarded back out of the
    // port it came in on: the port needs hairpin mode (what the main
    // plugin's hairpinMode sets). Without br_netfilter it is routed and
    // works either way; the test covers both below.
    host.ip(&[
        "link",
        "set",
        "veth0",
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ]);
    pod.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&["route", "add", "default", "via", "10.77.0.1"]);
    host.ip(&[
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &outside.name,
    ]);
    host.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"]);
    host.ip(&["link", "set", "up0", "up"]);
    outside.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    outside.ip(&["link", "set", "eth0", "up"]);
    outside.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    probe_server(&pod, 80);
    Topo { host, pod, outside }
}

fn prev_result(pod: &NamedNs, ip: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "br0", "mac": "02:00:00:00:00:01"},
            {"name": "veth0", "mac": "02:00:00:00:00:02"},
            {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": pod.path.clone()}
        ],
        "ips": [{"address": format!("{ip}/24"), "gateway": "10.77.0.1", "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0"}]
    })
}

fn conf(version: &str, name: &str, snat: Option<bool>, mappings: Value, prev: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": name,
        "type": "aksnet-portmap",
        "runtimeConfig": {"portMappings": mappings},
        "prevResult": prev,
    });
    if let Some(s) = snat {
        c["snat"] = json!(s);
    }
    c
}

fn ok(out: &Outcome, what: &str) -> String {
    assert!(
        out.code == Some(0),
        "{what} failed: stdout {} stderr {}",
        out.stdout,
        out.stderr
    );
    out.stdout.clone()
}

fn err_code(out: &Outcome, what: &str) -> u64 {
    assert!(out.code != Some(0), "{what} should have failed");
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {:?}", out.stdout));
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no code in {v}"))
}

fn listing(host: &NamedNs, family: Family) -> Option<Table> {
    host.within(|| nft::list_table(family, TABLE).expect("list table"))
}

fn tagged(host: &NamedNs, comment_part: &str) -> usize {
    listing(host, Family::Ip).map_or(0, |t| {
        t.rules
            .iter()
            .filter(|r| {
                r.comment
                    .as_deref()
                    .is_some_and(|c| c.contains(comment_part))
            })
            .count()
    })
}

#[test]
fn add_reaches_the_pod_from_outside_host_localhost_and_hairpin_then_check_and_del() {
    if !can_run("portmap end to end", &[NFT, IP]) {
        return;
    }
    let t = topo();
    let prev = prev_result(&t.pod, "10.77.0.2");
    let mappings = json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5300, "containerPort": 80, "protocol": "udp", "hostIP": ""}
    ]);
    let c = conf("1.0.0", "pmtest", None, mappings, prev.clone());
    let id = "ctr-e2e";
    let add = cni(BIN, &t.host, "ADD", id, "eth0", &t.pod.path, &c);
    let out: Value = serde_json::from_str(&ok(&add, "ADD")).unwrap();
    // The result is prevResult, unchanged.
    assert_eq!(out, prev);

    // (a) from another namespace routed to the host: source preserved.
    assert_eq!(
        tcp_probe(&t.outside, "192.0.2.1:8080"),
        Ok("from 192.0.2.2".into())
    );
    assert_eq!(
        udp_probe(&t.outside, "192.0.2.1:5300"),
        Ok("from 192.0.2.2".into())
    );
    // (b) node-local, to the host's addresses and to 127.0.0.1 (masqueraded
    // to the bridge address, which needs route_localnet on br0).
    assert_eq!(
        tcp_probe(&t.host, "192.0.2.1:8080"),
        Ok("from 192.0.2.1".into())
    );
    assert_eq!(
        tcp_probe(&t.host, "10.77.0.1:8080"),
        Ok("from 10.77.0.1".into())
    );
    assert_eq!(
        tcp_probe(&t.host, "127.0.0.1:8080"),
        Ok("from 10.77.0.1".into())
    );
    assert_eq!(
        udp_probe(&t.host, "127.0.0.1:5300"),
        Ok("from 10.77.0.1".into())
    );
    assert_eq!(
        t.host
            .exec(&["sysctl", "-n", "net.ipv4.conf.br0.route_localnet"])
            .trim(),
        "1"
    );
    assert_eq!(
        t.host
            .exec(&["sysctl", "-n", "net.ipv4.conf.up0.route_localnet"])
            .trim(),
        "0",
        "route_localnet only where the container is reached"
    );
    // (c) hairpin: the pod through the host's address, masqueraded so the
    // reply comes back through the host.
    assert_eq!(
        tcp_probe(&t.pod, "192.0.2.1:8080"),
        Ok("from 10.77.0.1".into())
    );
    if std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        t.host.ip(&[
            "link",
            "set",
            "veth0",
            "type",
            "bridge_slave",
            "hairpin",
            "off",
        ]);
        t.host
            .exec(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"]);
        assert_eq!(
            tcp_probe(&t.pod, "192.0.2.1:8080"),
            Ok("from 10.77.0.1".into())
        );
    }

    // CHECK passes, and fails once the rules are gone.
    let chk = cni(BIN, &t.host, "CHECK", id, "eth0", &t.pod.path, &c);
    ok(&chk, "CHECK");
    t.host.exec(&[NFT, "flush", "table", "ip", TABLE]);
    let chk = cni(BIN, &t.host, "CHECK", id, "eth0", &t.pod.path, &c);
    err_code(&chk, "CHECK after flush");
    assert!(tcp_probe(&t.outside, "192.0.2.1:8080").is_err());

    // ADD again restores everything (and replaces, not duplicates).
    ok(
        &cni(BIN, &t.host, "ADD", id, "eth0", &t.pod.path, &c),
        "ADD 2",
    );
    ok(
        &cni(BIN, &t.host, "ADD", id, "eth0", &t.pod.path, &c),
        "ADD 3",
    );
    ok(
        &cni(BIN, &t.host, "CHECK", id, "eth0", &t.pod.path, &c),
        "CHECK 2",
    );
    assert_eq!(
        tcp_probe(&t.outside, "192.0.2.1:8080"),
        Ok("from 192.0.2.2".into())
    );

    // DEL removes every rule of the attachment; the jumps stay.
    ok(
        &cni(BIN, &t.host, "DEL", id, "eth0", &t.pod.path, &c),
        "DEL",
    );
    let tab = listing(&t.host, Family::Ip).expect("table stays");
    assert!(
        tab.rules.iter().all(|r| r.comment.is_none()),
        "tagged rules left: {:?}",
        tab.rules
    );
    assert_eq!(tab.rules.len(), 3, "only the three jump rules remain");
    assert!(tcp_probe(&t.outside, "192.0.2.1:8080").is_err());
    // DEL again, without prevResult or netns, succeeds.
    let bare = json!({"cniVersion": "1.0.0", "name": "pmtest", "type": "aksnet-portmap"});
    ok(&cni(BIN, &t.host, "DEL", id, "eth0", "", &bare), "DEL 2");
    ok(&cni(BIN, &t.host, "DEL", id, "eth0", "", &bare), "DEL 3");
    let chk = cni(BIN, &t.host, "CHECK", id, "eth0", &t.pod.path, &c);
    err_code(&chk, "CHECK after DEL");
}

#[test]
fn older_versions_get_prev_result_converted_and_no_mappings_pass_through() {
    if !can_run("portmap versions", &[NFT, IP]) {
        return;
    }
    let t = topo();
    let prev = prev_result(&t.pod, "10.77.0.2");
    let c = conf(
        "0.3.1",
        "pmtest",
        None,
        json!([{"hostPort": 8080, "containerPort": 80}]),
        prev.clone(),
    );
    let out: Value = serde_json::from_str(&ok(
        &cni(BIN, &t.host, "ADD", "v031", "eth0", &t.pod.path, &c),
        "ADD",
    ))
    .unwrap();
    assert_eq!(out["cniVersion"], "0.3.1");
    assert_eq!(out["ips"][0]["version"], "4");
    assert_eq!(out["ips"][0]["address"], "10.77.0.2/24");
    assert_eq!(out["interfaces"], prev["interfaces"]);
    assert_eq!(
        tcp_probe(&t.outside, "192.0.2.1:8080"),
        Ok("from 192.0.2.2".into())
    );
    ok(
        &cni(BIN, &t.host, "DEL", "v031", "eth0", &t.pod.path, &c),
        "DEL",
    );

    // Without mappings nothing is created, and the result passes through.
    let mut none = conf("1.1.0", "pmtest", None, json!([]), prev.clone());
    none.as_object_mut().unwrap().remove("runtimeConfig");
    let t2 = topo();
    let out: Value = serde_json::from_str(&ok(
        &cni(BIN, &t2.host, "ADD", "nomap", "eth0", &t2.pod.path, &none),
        "ADD without mappings",
    ))
    .unwrap();
    assert_eq!(out["cniVersion"], "1.1.0");
    assert_eq!(out["ips"], prev["ips"]);
    assert!(
        listing(&t2.host, Family::Ip).is_none(),
        "no table for no mappings"
    );
    ok(
        &cni(BIN, &t2.host, "CHECK", "nomap", "eth0", &t2.pod.path, &none),
        "CHECK",
    );
    ok(
        &cni(BIN, &t2.host, "DEL", "nomap", "eth0", "", &none),
        "DEL",
    );
}

#[test]
fn snat_false_adds_no_masquerade() {
    if !can_run("portmap snat false", &[NFT, IP]) {
        return;
    }
    let t = topo();
    let c = conf(
        "1.0.0",
        "pmtest",
        Some(false),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        prev_result(&t.pod, "10.77.0.2"),
    );
    ok(
        &cni(BIN, &t.host, "ADD", "nosnat", "eth0", &t.pod.path, &c),
        "ADD",
    );
    let tab = listing(&t.host, Family::Ip).unwrap();
    assert_eq!(
        tab.rules
            .iter()
            .filter(|r| r.chain == "masquerading")
            .count(),
        0
    );
    assert_eq!(
        tab.rules.iter().filter(|r| r.chain == "hostports").count(),
        1
    );
    assert_eq!(
        t.host
            .exec(&["sysctl", "-n", "net.ipv4.conf.br0.route_localnet"])
            .trim(),
        "0"
    );
    assert_eq!(
        tcp_probe(&t.outside, "192.0.2.1:8080"),
        Ok("from 192.0.2.2".into())
    );
    ok(
        &cni(BIN, &t.host, "CHECK", "nosnat", "eth0", &t.pod.path, &c),
        "CHECK",
    );
    ok(
        &cni(BIN, &t.host, "DEL", "nosnat", "eth0", &t.pod.path, &c),
        "DEL",
    );
}

#[test]
fn gc_removes_only_stale_attachments_of_its_network() {
    if !can_run("portmap gc", &[NFT, IP]) {
        return;
    }
    let t = topo();
    let prev = prev_result(&t.pod, "10.77.0.2");
    let add = |net: &str, id: &str, port: u16| {
        let c = conf(
            "1.1.0",
            net,
            None,
            json!([{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]),
            prev.clone(),
        );
        ok(
            &cni(BIN, &t.host, "ADD", id, "eth0", &t.pod.path, &c),
            "ADD",
        );
    };
    add("pmtest", "keep", 8081);
    add("pmtest", "stale", 8082);
    add("pmother", "foreign", 8083);
    add("pmtest", "legacy", 8084);
    for p in [8081, 8082, 8083, 8084] {
        assert!(
            tcp_probe(&t.outside, &format!("192.0.2.1:{p}")).is_ok(),
            "port {p}"
        );
    }
    let gc = json!({
        "cniVersion": "1.1.0", "name": "pmtest", "type": "aksnet-portmap",
        "cni.dev/valid-attachments": [
            {"containerID": "keep", "ifname": "eth0"},
            {"containerID": "legacy", "ifname": "eth0"}
        ]
    });
    ok(&cni(BIN, &t.host, "GC", "", "", "", &gc), "GC");
    assert!(tagged(&t.host, " keep eth0") > 0);
    assert_eq!(tagged(&t.host, " stale eth0"), 0);
    assert!(tagged(&t.host, "pmother foreign eth0") > 0);
    assert!(tcp_probe(&t.outside, "192.0.2.1:8081").is_ok());
    assert!(tcp_probe(&t.outside, "192.0.2.1:8082").is_err());
    assert!(tcp_probe(&t.outside, "192.0.2.1:8083").is_ok());
    // The legacy key works too.
    let legacy = json!({
        "cniVersion": "1.1.0", "name": "pmtest", "type": "aksnet-portmap",
        "cni.dev/attachments": [{"containerID": "keep", "ifname": "eth0"}]
    });
    ok(&cni(BIN, &t.host, "GC", "", "", "", &legacy), "GC legacy");
    assert_eq!(tagged(&t.host, " legacy eth0"), 0);
    assert!(tagged(&t.host, " keep eth0") > 0);
    assert!(tcp_probe(&t.outside, "192.0.2.1:8084").is_err());
    // STATUS answers in the host namespace.
    ok(&cni(BIN, &t.host, "STATUS", "", "", "", &gc), "STATUS");
}

#[test]
fn concurrent_adds_and_dels_leave_exact_rule_sets() {
    if !can_run("portmap concurrency", &[NFT, IP]) {
        return;
    }
    let t = topo();
    let prev = prev_result(&t.pod, "10.77.0.2");
    let confs: Vec<(String, Value)> = (0..8u16)
        .map(|i| {
            let c = conf(
                "1.0.0",
                "pmtest",
                None,
                json!([{"hostPort": 9000 + i, "containerPort": 80, "protocol": "tcp"}]),
                prev.clone(),
            );
            (format!("par{i}"), c)
        })
        .collect();
    let run_all = |cmd: &'static str, copies: usize| {
        std::thread::scope(|s| {
            for _ in 0..copies {
                for (id, c) in &confs {
                    let t = &t;
                    s.spawn(move || {
                        let out = cni(BIN, &t.host, cmd, id, "eth0", &t.pod.path, c);
                        ok(&out, cmd);
                    });
                }
            }
        });
    };
    run_all("ADD", 1);
    for (id, c) in &confs {
        ok(
            &cni(BIN, &t.host, "CHECK", id, "eth0", &t.pod.path, c),
            "CHECK",
        );
    }
    let tab = listing(&t.host, Family::Ip).unwrap();
    assert_eq!(tab.rules.iter().filter(|r| r.comment.is_none()).count(), 3);
    assert!(tcp_probe(&t.outside, "192.0.2.1:9007").is_ok());
    // Every DEL twice, all at once.
    run_all("DEL", 2);
    let tab = listing(&t.host, Family::Ip).unwrap();
    assert_eq!(tab.rules.len(), 3, "{:?}", tab.rules);
}

#[test]
fn bad_input_gives_spec_errors() {
    if !can_run("portmap errors", &[NFT, IP]) {
        return;
    }
    // Run in a namespace of our own even though none of these reaches the
    // kernel: a bug must not touch the machine's nftables.
    let t = topo();
    let pod = t.pod.path.clone();
    let prev = prev_result(&t.pod, "10.77.0.2");
    let raw = |cmd: &str, id: &str, stdin: &[u8]| {
        let mut call = Call::new(BIN, cmd, id, &pod);
        call.path = "/x".into();
        call.run(&t.host.ns, stdin)
    };
    assert_eq!(err_code(&raw("ADD", "x", b"{not json"), "bad json"), 6);
    assert_eq!(err_code(&raw("ADD", "x", b"[1]"), "array"), 6);
    assert_eq!(err_code(&raw("BOGUS", "x", b"{}"), "bad command"), 4);
    let no_prev = conf(
        "1.0.0",
        "pmtest",
        None,
        json!([{"hostPort": 1, "containerPort": 1}]),
        Value::Null,
    );
    assert_eq!(
        err_code(
            &raw("ADD", "x", no_prev.to_string().as_bytes()),
            "no prevResult"
        ),
        7
    );
    assert_eq!(
        err_code(&raw("ADD", "", no_prev.to_string().as_bytes()), "no id"),
        4
    );
    for bad in [
        json!([{"hostPort": 0, "containerPort": 80}]),
        json!([{"hostPort": 70000, "containerPort": 80}]),
        json!([{"hostPort": 80, "containerPort": "80"}]),
        json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]),
        json!([{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}]),
        json!({"hostPort": 80}),
        json!("80:80"),
    ] {
        let c = conf("1.0.0", "pmtest", None, bad.clone(), prev.clone());
        assert_eq!(
            err_code(&raw("ADD", "x", c.to_string().as_bytes()), "bad mapping"),
            7,
            "{bad}"
        );
    }
    let mut snat = conf("1.0.0", "pmtest", None, json!([]), prev.clone());
    snat["snat"] = json!("yes");
    assert_eq!(
        err_code(&raw("ADD", "x", snat.to_string().as_bytes()), "snat"),
        7
    );
    // prevResult without the container's interface.
    let c = conf(
        "1.0.0",
        "pmtest",
        None,
        json!([{"hostPort": 80, "containerPort": 80}]),
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "br0"}], "ips": [{"address": "10.77.0.1/24", "interface": 0}]}),
    );
    assert_eq!(
        err_code(
            &raw("ADD", "x", c.to_string().as_bytes()),
            "no container ip"
        ),
        7
    );
    // Nothing was created by any of these.
    assert!(listing(&t.host, Family::Ip).is_none());
    // VERSION lists every supported version.
    let v = raw("VERSION", "", br#"{"cniVersion":"1.1.0"}"#);
    let v: Value = serde_json::from_str(&ok(&v, "VERSION")).unwrap();
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    // Arbitrary bytes never panic: every answer is a spec error or success.
    for junk in [
        &b""[..],
        b"\0\xff",
        b"{\"cniVersion\": 1}",
        b"{\"cniVersion\":\"9.9.9\"}",
        b"null",
    ] {
        let out = raw("ADD", "x", junk);
        err_code(&out, "junk");
        assert!(!out.stderr.contains("panicked"));
    }
}

#[test]
fn ipv6_mappings_in_the_ip6_table() {
    if !can_run("portmap ipv6", &[NFT, IP]) {
        return;
    }
    let t = topo();
    for (ns, addr, dev) in [
        (&t.host, "fd77::1/64", "br0"),
        (&t.pod, "fd77::2/64", "eth0"),
        (&t.host, "2001:db8::1/64", "up0"),
        (&t.outside, "2001:db8::2/64", "eth0"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev, "nodad"]);
    }
    t.pod
        .ip(&["-6", "route", "add", "default", "via", "fd77::1"]);
    t.outside
        .ip(&["-6", "route", "add", "default", "via", "2001:db8::1"]);
    t.host
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    probe_server_on(&t.pod, "::", 81);
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": t.pod.path.clone()}],
        "ips": [{"address": "fd77::2/64", "gateway": "fd77::1", "interface": 0}]
    });
    let c = conf(
        "1.0.0",
        "pmtest",
        None,
        json!([
            {"hostPort": 8080, "containerPort": 81, "protocol": "tcp"},
            {"hostPort": 8081, "containerPort": 81, "protocol": "udp"}
        ]),
        prev,
    );
    ok(
        &cni(BIN, &t.host, "ADD", "six", "eth0", &t.pod.path, &c),
        "ADD",
    );
    assert!(
        listing(&t.host, Family::Ip).is_none(),
        "no IPv4 table for an IPv6-only container"
    );
    let six = listing(&t.host, Family::Ip6).expect("ip6 table");
    assert_eq!(six.rules.iter().filter(|r| r.comment.is_some()).count(), 4);
    // Neighbour discovery may need a moment on fresh links.
    let mut outside = tcp_probe(&t.outside, "[2001:db8::1]:8080");
    for _ in 0..20 {
        if outside.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        outside = tcp_probe(&t.outside, "[2001:db8::1]:8080");
    }
    assert_eq!(outside, Ok("from 2001:db8::2".into()));
    assert_eq!(
        udp_probe(&t.outside, "[2001:db8::1]:8081"),
        Ok("from 2001:db8::2".into())
    );
    assert_eq!(
        tcp_probe(&t.host, "[2001:db8::1]:8080"),
        Ok("from 2001:db8::1".into())
    );
    // Hairpin, masqueraded to the bridge's address.
    assert_eq!(
        tcp_probe(&t.pod, "[2001:db8::1]:8080"),
        Ok("from fd77::1".into())
    );
    ok(
        &cni(BIN, &t.host, "CHECK", "six", "eth0", &t.pod.path, &c),
        "CHECK",
    );
    t.host
        .exec(&[NFT, "flush", "chain", "ip6", TABLE, "masquerading"]);
    err_code(
        &cni(BIN, &t.host, "CHECK", "six", "eth0", &t.pod.path, &c),
        "CHECK",
    );
    ok(
        &cni(BIN, &t.host, "DEL", "six", "eth0", &t.pod.path, &c),
        "DEL",
    );
    let six = listing(&t.host, Family::Ip6).expect("ip6 table stays");
    assert!(six.rules.iter().all(|r| r.comment.is_none()));
    assert!(tcp_probe(&t.outside, "[2001:db8::1]:8080").is_err());
}
