//! The Azure Load Balancer of the lab, end to end as root with the real
//! agents, CNI plugins and fabric controller: a LoadBalancer Service gets a
//! public frontend in `status.loadBalancer.ingress`; with
//! `externalTrafficPolicy: Cluster` the internet reaches it through every
//! node (a node's address seen), with `Local` only through the node with
//! the endpoint (the internet host's address seen, the other node's probe
//! down); an internal frontend comes from the node subnet and answers the
//! VM, not the internet; `loadBalancerSourceRanges` keeps the internet out;
//! `lab check` judges both load-balancer kinds; deleting a Service frees
//! its frontend for the next one.
//!
//! The lab is named `ak13lb-…` and torn down on success and failure.
//! Without root or a needed program the test says why and passes, except
//! under `CI=true`, where it fails.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod labkit;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use labkit::*;
use serde_json::Value;

fn ready() -> bool {
    ready_for("lab load balancer tests", &["ip", "nft"])
}

struct Lab(String);

impl Lab {
    fn up() -> Lab {
        let name = format!("ak13lb-{}", std::process::id() % 100_000);
        let lab = Lab(name.clone());
        let dir = bin_dir();
        ok(
            &[
                "lab",
                "up",
                "--name",
                &name,
                "--nodes",
                "2",
                "--pods-per-node",
                "0",
                "--cni-bin-dir",
                dir.to_str().unwrap(),
            ],
            "",
        );
        lab
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        if a[0] == "lab" {
            a.splice(2..2, ["--name", &self.0]);
        } else {
            a.splice(1..1, ["--lab", &self.0]);
        }
        aksnet(&a, stdin)
    }

    /// `lab probe --output json` rows.
    fn probe(&self, from: &str, to: &str, count: u32) -> (bool, Vec<Value>) {
        let n = count.to_string();
        let o = self.run(
            &["lab", "probe", from, to, "--count", &n, "--output", "json"],
            "",
        );
        let rows = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
        (o.status.success(), rows)
    }

    fn status(&self) -> Value {
        let o = self.run(&["lab", "status", "--output", "json"], "");
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn ingress(&self, svc: &str) -> Option<String> {
        let o = self.run(&["get", "svc", svc, "-o", "json"], "");
        assert!(o.status.success(), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    }

    /// Waits until `svc`'s first rule has exactly `healthy` up; returns
    /// how long that took.
    fn settle(&self, svc: &str, healthy: &[&str]) -> Duration {
        let want: BTreeSet<String> = healthy.iter().map(|s| s.to_string()).collect();
        let start = Instant::now();
        loop {
            let st = self.status();
            let up: BTreeSet<String> = st["load_balancer"]["frontends"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["service"] == svc)
                .flat_map(|f| f["rules"][0]["pool"].as_array().unwrap().clone())
                .filter(|m| m["probe"]["up"] == true)
                .map(|m| m["node"].as_str().unwrap().to_string())
                .collect();
            if up == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{svc}: pool {up:?}, want {want:?}: {}",
                st["load_balancer"]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = format!("/run/aksnet/lab/{}/log/controller.log", self.0);
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(30).collect();
            eprintln!(
                "{log}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let o = aksnet(&["lab", "down", "--name", &self.0], "");
        if !std::thread::panicking() {
            assert!(o.status.success(), "down: {}", text(&o));
            let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
            let prefix = format!("aksnet-lab-{}-", self.0);
            assert!(
                !String::from_utf8_lossy(&ns.stdout)
                    .lines()
                    .any(|l| l.starts_with(&prefix)),
                "namespaces left"
            );
        }
    }
}

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeName: node-1
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web-cluster}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-internal
  annotations: {service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-ranged}
spec:
  type: LoadBalancer
  loadBalancerSourceRanges: [10.225.0.0/24]
  selector: {app: web}
  ports: [{port: 80}]
";

#[test]
fn public_internal_local_cluster_source_ranges_and_freed_frontends() {
    if !ready() {
        return;
    }
    let lab = Lab::up();
    let o = lab.run(&["apply", "-f", "-"], APP);
    assert!(o.status.success(), "{}", text(&o));

    // Frontends: public ones from 203.0.113.150 up, the internal one from
    // the node subnet, after the nodes' .4 and .5.
    let start = Instant::now();
    while lab.ingress("web-ranged").is_none() || lab.ingress("web-internal").is_none() {
        assert!(start.elapsed() < Duration::from_secs(15), "no ingress");
        std::thread::sleep(Duration::from_millis(200));
    }
    let public: BTreeSet<String> = ["web-cluster", "web-local", "web-ranged"]
        .iter()
        .map(|s| lab.ingress(s).unwrap())
        .collect();
    assert!(
        public.iter().all(|ip| ip.starts_with("203.0.113.1")),
        "{public:?}"
    );
    assert_eq!(public.len(), 3);
    assert_eq!(lab.ingress("web-internal").unwrap(), "10.224.0.6");

    // The pools: Cluster probes the NodePort (every node up), Local the
    // healthCheckNodePort (only node-1, which has the endpoint).
    lab.settle("default/web-cluster", &["node-1", "node-2"]);
    lab.settle("default/web-local", &["node-1"]);
    let st = lab.status();
    let local = st["load_balancer"]["frontends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["service"] == "default/web-local")
        .unwrap()
        .clone();
    let probe = &local["rules"][0]["probe"];
    assert_eq!(probe["protocol"], "Http");
    assert_eq!(probe["requestPath"], "/healthz");
    assert_eq!(probe["intervalSeconds"], 5);
    assert_eq!(probe["probeThreshold"], 2);
    let node2 = local["rules"][0]["pool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["node"] == "node-2")
        .unwrap()
        .clone();
    assert_eq!(node2["probe"]["lastResult"], "503", "{node2}");

    // Cluster: node addresses seen, both nodes used; Local: the internet
    // host's own address, through node-1.
    let (all, rows) = lab.probe("internet", "lb/default/web-cluster", 12);
    assert!(all, "{rows:?}");
    let seen: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["source_ip_seen"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from(["10.224.0.4", "10.224.0.5"]),
        "both members take flows: {rows:?}"
    );
    assert!(rows.iter().all(|r| r["source_seen"] == "node"));
    let (all, rows) = lab.probe("internet", "lb/default/web-local", 6);
    assert!(all, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["source_ip_seen"] == "203.0.113.10" && r["source_seen"] == "other"),
        "{rows:?}"
    );

    // Internal: the VM yes, the internet no. Source ranges: the VM subnet.
    assert!(lab.probe("vm", "lb/default/web-internal", 2).0);
    assert!(!lab.probe("internet", "lb/default/web-internal", 1).0);
    assert!(lab.probe("vm", "lb/default/web-ranged", 2).0);
    let (reached, rows) = lab.probe("internet", "lb/default/web-ranged", 1);
    assert!(!reached && rows[0]["refused"] == false, "{rows:?}");

    // lab check: both kinds, every result as the Services say.
    let o = lab.run(&["lab", "check", "--output", "json"], "");
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lb: Vec<&Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["kind"] == "internet-to-loadbalancer" || x["kind"] == "vm-to-internal-loadbalancer"
        })
        .collect();
    assert_eq!(lb.len(), 5, "{lb:?}");
    assert!(lb.iter().all(|x| x["matches"] == true), "{lb:?}");

    // A new node skips the internal frontend's address, and joins every
    // pool (Cluster: its NodePort probe passes).
    let o = lab.run(&["lab", "add-node"], "");
    assert!(o.status.success(), "{}", text(&o));
    let st = lab.status();
    let node3 = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-3")
        .unwrap()
        .clone();
    assert_eq!(node3["ip"], "10.224.0.7", "{node3}");
    lab.settle("default/web-cluster", &["node-1", "node-2", "node-3"]);
    lab.settle("default/web-local", &["node-1"]);

    // Deleting a Service frees its frontend: the next Service gets it.
    let ranged = lab.ingress("web-ranged").unwrap();
    assert!(lab
        .run(&["delete", "svc", "web-ranged"], "")
        .status
        .success());
    let next = "apiVersion: v1\nkind: Service\nmetadata: {name: web-next}\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports: [{port: 80}]\n";
    // Wait for the controller to see the deletion first.
    let start = Instant::now();
    loop {
        let st = lab.status();
        let fronts: Vec<String> = st["load_balancer"]["frontends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["ip"].as_str().unwrap().to_string())
            .collect();
        if !fronts.contains(&ranged) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{fronts:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(lab.run(&["apply", "-f", "-"], next).status.success());
    let start = Instant::now();
    while lab.ingress("web-next").is_none() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lab.ingress("web-next").unwrap(), ranged);

    // No endpoint any more: Local's pool empties within the probes'
    // 2 × 5 s (and a round).
    assert!(lab
        .run(&["delete", "deployment", "web"], "")
        .status
        .success());
    let took = lab.settle("default/web-local", &[]);
    assert!(took < Duration::from_secs(17), "{took:?}");
    assert!(!lab.probe("internet", "lb/default/web-local", 1).0);
}
