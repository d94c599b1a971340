//! The upstream network policy suite on real labs (kubenet, overlay): the
//! model of `crates/agent/tests/upstream/mod.rs` (namespaces x, y, z; pods
//! a, b, c on two nodes, servers on 80 and 81 over TCP and UDP, a Service
//! per pod) applied with `aksnet apply --lab`; for each scenario and phase
//! every one of the 72 non-loopback pairs is probed on the four ports
//! through the pod IP and through the Service IP (576 probes, in parallel,
//! 300 ms each), until the table matches the expected one or 15 s pass.
//! After each scenario its policies are deleted (and labels reset) and
//! every probe must pass again.
//!
//! Each lab is named `pol-…`, torn down on success and failure. Without
//! root or a needed program the tests print why and pass, except under
//! `CI=true`, where they fail.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

#[path = "../../agent/tests/upstream/mod.rs"]
mod upstream;

mod labkit;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aksnet_lab::probe::{run_all, Probe, Protocol};
use aksnet_lab::state::LabDir;
use aksnet_lab::topology::netns_path;
use labkit::*;
use serde_json::Value;
use upstream::{Ctx, Flow};

const PARALLEL: usize = 64;
const TIMEOUT: Duration = Duration::from_millis(300);
const SETTLE: Duration = Duration::from_secs(15);

fn ready() -> bool {
    ready_for("lab policy tests", &["ip", "nft"])
}

struct Lab(String);

impl Lab {
    fn up(tag: &str, args: &[&str]) -> Lab {
        let name = format!("pol-{tag}{}", std::process::id() % 100_000);
        let lab = Lab(name.clone());
        let mut a = vec![
            "lab",
            "up",
            "--name",
            &name,
            "--nodes",
            "2",
            "--pods-per-node",
            "0",
        ];
        a.extend_from_slice(args);
        ok(&a, "");
        lab
    }

    fn apply(&self, yaml: &str) {
        ok(&["apply", "--lab", &self.0, "-f", "-"], yaml);
    }

    fn delete_policy(&self, ns: &str, name: &str) {
        ok(&["delete", "--lab", &self.0, "netpol", name, "-n", ns], "");
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut a = vec!["get", "--lab", &self.0];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let o = ok(&a, "");
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = aksnet(&["lab", "down", "--name", &self.0], "");
        if !std::thread::panicking() {
            assert!(o.status.success(), "down: {}", text(&o));
        }
    }
}

/// Where each probe starts and goes.
struct Targets {
    lab: String,
    netns: BTreeMap<String, PathBuf>,
    pod_ips: BTreeMap<String, Ipv4Addr>,
    service_ips: BTreeMap<String, Ipv4Addr>,
}

fn targets(lab: &Lab) -> Targets {
    let state = LabDir::new(&lab.0).unwrap().load().unwrap();
    let names = state.names();
    let mut t = Targets {
        lab: lab.0.clone(),
        netns: BTreeMap::new(),
        pod_ips: BTreeMap::new(),
        service_ips: BTreeMap::new(),
    };
    // The upstream model's pods (the lab's cluster DNS pods are not).
    for p in state
        .pods
        .iter()
        .filter(|p| upstream::NAMESPACES.contains(&p.namespace.as_str()))
    {
        let r = format!("{}/{}", p.namespace, p.name);
        t.netns
            .insert(r.clone(), netns_path(&names.pod(p.node_index, p.index)));
        t.pod_ips.insert(r, p.ip.unwrap());
    }
    for ns in upstream::NAMESPACES {
        for s in lab.get(&["svc", "-n", ns])["items"].as_array().unwrap() {
            let name = s["metadata"]["name"].as_str().unwrap();
            let pod = name.trim_start_matches("s-");
            t.service_ips.insert(
                format!("{ns}/{pod}"),
                s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap(),
            );
        }
    }
    t
}

/// Probes `flows` through the pod IP (`via = false`) or the Service IP.
fn probe(t: &Targets, flows: &[(Flow, bool)], timeout: Duration) -> Vec<bool> {
    let probes: Vec<Probe> = flows
        .iter()
        .map(|(f, svc)| Probe {
            from_netns: t.netns[&f.from].clone(),
            to: if *svc {
                t.service_ips[&f.to]
            } else {
                t.pod_ips[&f.to]
            },
            port: f.port,
            protocol: if f.proto == "tcp" {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
        })
        .collect();
    run_all(&probes, PARALLEL, timeout)
        .into_iter()
        .map(|o| o.reachable)
        .collect()
}

#[derive(Default)]
struct Tally {
    probes: usize,
    phases: usize,
}

/// Probes every flow both ways until the results match `expect` (the
/// policy may take a moment to be programmed), at most [`SETTLE`].
fn check(t: &Targets, what: &str, expect: &dyn Fn(&Flow) -> bool, tally: &mut Tally) {
    let all: Vec<(Flow, bool)> = upstream::flows()
        .into_iter()
        .flat_map(|f| [(f.clone(), false), (f, true)])
        .collect();
    let mut got: BTreeMap<(Flow, bool), bool> = BTreeMap::new();
    let mut todo = all.clone();
    let start = Instant::now();
    let mut round = 0;
    loop {
        // Later rounds wait longer: a loaded machine may be slow to answer.
        let timeout = if round == 0 { TIMEOUT } else { TIMEOUT * 3 };
        let r = probe(t, &todo, timeout);
        tally.probes += todo.len();
        for (k, v) in todo.iter().cloned().zip(r) {
            got.insert(k, v);
        }
        todo = all
            .iter()
            .filter(|(f, s)| got[&(f.clone(), *s)] != expect(f))
            .cloned()
            .collect();
        round += 1;
        if todo.is_empty() || start.elapsed() > SETTLE {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tally.phases += 1;
    if todo.is_empty() {
        println!(
            "  {what}: matches after {round} round(s), {:?}",
            start.elapsed()
        );
        return;
    }
    let mut msg = format!(
        "{what}: {} probes differ from the expected table\n",
        todo.len()
    );
    for svc in [false, true] {
        let table: BTreeMap<Flow, bool> = got
            .iter()
            .filter(|((_, s), _)| *s == svc)
            .map(|((f, _), v)| (f.clone(), *v))
            .collect();
        for (port, proto) in upstream::PORTS {
            msg += &format!("via {}:\n", if svc { "Service IP" } else { "pod IP" });
            msg += &upstream::table(&table, expect, port, proto);
        }
    }
    msg += &dump(&t.lab);
    panic!("{msg}");
}

/// Each node's policy table and the agents' last policy lines.
fn dump(lab: &str) -> String {
    let dir = LabDir::new(lab).unwrap();
    let state = dir.load().unwrap();
    let mut out = String::new();
    for n in &state.nodes {
        let ns = state.names().node(n.index);
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "nft",
                "list",
                "table",
                "ip",
                "aksnet-policy",
            ])
            .output()
            .unwrap();
        out += &format!("--- {}\n{}", n.name, String::from_utf8_lossy(&o.stdout));
        let log = std::fs::read_to_string(aksnet_lab::nodes::agent_log(&dir, &n.name))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("polic")).collect();
        for l in lines.iter().rev().take(10).rev() {
            out += &format!("{l}\n");
        }
    }
    out
}

/// A pod created together with a policy isolating it is isolated from its
/// first probe: the kubelet starts its servers only once its node's agent
/// published a policy revision covering it. Its node still reaches it.
fn fail_closed(lab: &Lab, t: &Targets, tag: &str) {
    let yaml = upstream::namespace_yaml("w", &[])
        + "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: w}\nspec:\n  podSelector: {}\n"
        + &upstream::pod_yaml("w", "d", "node-1", &[]);
    lab.apply(&yaml);
    let state = LabDir::new(&lab.0).unwrap().load().unwrap();
    let d = state.pods.iter().find(|p| p.namespace == "w").unwrap();
    let ip = d.ip.unwrap();
    let node = state.nodes.iter().find(|n| n.name == "node-1").unwrap();
    let probes = [
        Probe {
            from_netns: t.netns["x/a"].clone(),
            to: ip,
            port: 80,
            protocol: Protocol::Tcp,
        },
        Probe {
            from_netns: netns_path(&state.names().node(node.index)),
            to: ip,
            port: 80,
            protocol: Protocol::Tcp,
        },
    ];
    let r = run_all(&probes, 2, Duration::from_millis(500));
    assert!(
        !r[0].reachable,
        "{tag}: w/d was open at its first probe: {r:?}"
    );
    assert!(r[1].reachable, "{tag}: its node reaches w/d: {r:?}");
    println!("  {tag} fail closed: w/d isolated at its first probe, its node reaches it");
    ok(
        &["delete", "--lab", &lab.0, "netpol", "deny", "-n", "w"],
        "",
    );
}

fn suite(tag: &str, args: &[&str]) {
    if !ready() {
        return;
    }
    let started = Instant::now();
    let lab = Lab::up(tag, args);
    let model = upstream::model_yaml(&["node-1", "node-2"]);
    lab.apply(&model);
    let t = targets(&lab);
    assert_eq!(t.pod_ips.len(), 9, "{tag}: {:?}", t.pod_ips);
    assert_eq!(t.service_ips.len(), 9, "{tag}: {:?}", t.service_ips);
    let ctx = Ctx {
        ips: t.pod_ips.clone(),
        nodes: LabDir::new(&lab.0)
            .unwrap()
            .load()
            .unwrap()
            .pods
            .iter()
            .map(|p| (format!("{}/{}", p.namespace, p.name), p.node.clone()))
            .collect(),
    };
    let mut tally = Tally::default();
    check(&t, &format!("{tag} no policy"), &|_| true, &mut tally);
    let scenarios = upstream::all(&ctx);
    let only = std::env::var("AKSNET_POLICY_SCENARIO").ok();
    for s in &scenarios {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|o| s.name.contains(o)))
        {
            continue;
        }
        let at = Instant::now();
        for (i, ph) in s.phases.iter().enumerate() {
            if !ph.apply.is_empty() {
                lab.apply(&ph.apply);
            }
            for (ns, name) in &ph.delete {
                lab.delete_policy(ns, name);
            }
            check(
                &t,
                &format!("{tag} {} phase {i}", s.name),
                &*ph.expect,
                &mut tally,
            );
        }
        for (ns, name) in &s.policies {
            if !s.phases.iter().any(|p| p.delete.contains(&(*ns, *name))) {
                lab.delete_policy(ns, name);
            }
        }
        if s.relabels {
            lab.apply(&model);
        }
        check(
            &t,
            &format!("{tag} {} cleaned up", s.name),
            &|_| true,
            &mut tally,
        );
        println!("{tag} {}: {:?}", s.name, at.elapsed());
    }
    fail_closed(&lab, &t, tag);
    println!(
        "{tag}: {} scenarios, {} checked tables, {} probes, {:?} in all",
        scenarios.len(),
        tally.phases,
        tally.probes,
        started.elapsed()
    );
}

#[test]
fn upstream_policy_suite_in_a_kubenet_lab() {
    suite("k", &["--network-plugin", "kubenet"]);
}

#[test]
fn upstream_policy_suite_in_an_overlay_lab() {
    suite(
        "o",
        &[
            "--network-plugin",
            "azure",
            "--network-plugin-mode",
            "overlay",
        ],
    );
}
