//! Cluster DNS and the API server endpoint in a lab, end to end as root
//! with the real agents, CNI plugins and `aksnet dns`:
//!
//! - every lab gets `kube-system/coredns` (two pods running `aksnet dns`)
//!   behind `kube-system/kube-dns` at the DNS service IP, and every pod
//!   the kubelet's resolv.conf; from a pod, `dig` gets A, headless, SRV,
//!   PTR, NXDOMAIN and forwarded public answers, `getent hosts` and `lab
//!   probe` reach a Service by its short name, and the files go with the
//!   pod and the lab (kubenet and Azure CNI);
//! - `lab up --api-server-authorized-ip-ranges` keeps the internet host
//!   out of the API server while the nodes (the outbound IP) always get
//!   in; `lab update` lets it in within 10 s and opens it again with "".
//!
//! Labs are named `ak5-…` and torn down however a test ends. Without root
//! or a program they need the tests print why and pass, except under
//! `CI=true`, where they fail.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod labkit;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use labkit::*;
use serde_json::Value;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ready(tools: &[&str]) -> bool {
    ready_for("lab DNS and API server tests", tools)
}

/// `/etc/netns` entries of a lab.
fn etc_netns(lab: &str) -> Vec<String> {
    let prefix = format!("aksnet-lab-{lab}-");
    std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Tears the lab down however the test ends, and checks nothing is left.
struct Lab(String);

impl Lab {
    fn up(tag: &str, args: &[&str]) -> Lab {
        let name = format!("ak5-{tag}{}", std::process::id() % 100_000);
        let lab = Lab(name.clone());
        let mut a = vec!["lab", "up", "--name", &name];
        a.extend_from_slice(args);
        ok(&a, "");
        lab
    }

    fn exec(&self, target: &str, cmd: &[&str]) -> Output {
        let mut a = vec!["lab", "exec", "--name", &self.0, target, "--"];
        a.extend_from_slice(cmd);
        aksnet(&a, "")
    }

    /// `dig +noall +answer ARGS` from `target`: the answer lines' data.
    fn dig(&self, target: &str, args: &[&str]) -> Vec<String> {
        let mut a = vec!["dig", "+noall", "+answer", "+time=2", "+tries=2"];
        a.extend_from_slice(args);
        let o = self.exec(target, &a);
        assert!(o.status.success(), "dig {args:?}: {}", text(&o));
        let mut v: Vec<String> = stdout(&o)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5).then(|| format!("{} {}", f[3], f[4..].join(" ")))
            })
            .collect();
        v.sort();
        v
    }

    fn probe(&self, args: &[&str]) -> Output {
        let mut a = vec!["lab", "probe", "--name", &self.0, "--output", "json"];
        a.extend_from_slice(args);
        aksnet(&a, "")
    }

    fn status(&self) -> Value {
        json(&ok(
            &["lab", "status", "--name", &self.0, "--output", "json"],
            "",
        ))
    }

    fn check(&self) -> Value {
        let o = aksnet(&["lab", "check", "--name", &self.0, "-o", "json"], "");
        json(&o)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
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
            assert!(etc_netns(&self.0).is_empty(), "/etc/netns files left");
        }
    }
}

const APP: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: y}
---
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: y}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: y}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: y}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: y}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
spec:
  containers: [{name: c, image: busybox}]
";

fn dns_in(tag: &str, model: &[&str]) {
    if !ready(&["ip", "nft", "dig", "getent"]) {
        return;
    }
    let mut args = vec!["--nodes", "2", "--pods-per-node", "1"];
    args.extend_from_slice(model);
    let lab = Lab::up(tag, &args);
    let st = lab.status();
    let dns = &st["cluster_dns"];
    assert_eq!(dns["service_ip"], "10.0.0.10");
    let dns_pods = dns["pods"].as_array().unwrap();
    assert_eq!(dns_pods.len(), 2, "{dns}");
    assert!(dns_pods.iter().all(|p| p["dns_running"] == true
        && p["pod"]
            .as_str()
            .unwrap()
            .starts_with("kube-system/coredns-")));
    assert_eq!(dns["upstream_running"], true);
    // The workload pods are lab up's two.
    assert_eq!(st["pods"].as_array().unwrap().len(), 2);
    // kube-dns at the DNS service IP, selecting the DNS pods.
    let svc = json(&ok(
        &[
            "get",
            "--lab",
            &lab.0,
            "svc",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
        "",
    ));
    assert_eq!(svc["spec"]["clusterIP"], "10.0.0.10");
    assert_eq!(svc["spec"]["selector"]["k8s-app"], "kube-dns");

    ok(&["apply", "--lab", &lab.0, "-f", "-"], APP);
    let web_ip = json(&ok(
        &[
            "get", "--lab", &lab.0, "svc", "web", "-n", "y", "-o", "json",
        ],
        "",
    ))["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let web_pods: Vec<String> = json(&ok(
        &[
            "get", "--lab", &lab.0, "po", "-n", "y", "-l", "app=web", "-o", "json",
        ],
        "",
    ))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(web_pods.len(), 2);

    // The kubelet's resolv.conf, seen by a command in the pod.
    let conf = stdout(&lab.exec("x/a", &["cat", "/etc/resolv.conf"]));
    assert!(conf.contains("nameserver 10.0.0.10\n"), "{conf}");
    assert!(
        conf.contains("search x.svc.cluster.local svc.cluster.local cluster.local\n"),
        "{conf}"
    );
    assert!(conf.contains("options ndots:5"), "{conf}");

    // getent (glibc's resolver, search list and all): short name and NS.
    let g = lab.exec("y/client", &["getent", "hosts", "web"]);
    assert!(g.status.success(), "{}", text(&g));
    assert!(
        stdout(&g).starts_with(&format!("{web_ip} "))
            && stdout(&g).contains("web.y.svc.cluster.local"),
        "{}",
        text(&g)
    );
    let g = lab.exec("x/a", &["getent", "hosts", "web.y"]);
    assert!(
        stdout(&g).starts_with(&format!("{web_ip} ")),
        "{}",
        text(&g)
    );
    assert_eq!(
        lab.exec("x/a", &["getent", "hosts", "web"]).status.code(),
        Some(2),
        "no web in x"
    );

    // dig: A, headless, SRV, PTR, NXDOMAIN, forwarded, over TCP.
    assert_eq!(
        lab.dig("x/a", &["web.y.svc.cluster.local"]),
        [format!("A {web_ip}")]
    );
    assert_eq!(
        lab.dig("x/a", &["+search", "web.y"]),
        [format!("A {web_ip}")]
    );
    assert_eq!(
        lab.dig("x/a", &["+tcp", "web.y.svc.cluster.local"]),
        [format!("A {web_ip}")]
    );
    let mut want: Vec<String> = web_pods.iter().map(|ip| format!("A {ip}")).collect();
    want.sort();
    assert_eq!(
        lab.dig("x/a", &["db.y.svc.cluster.local"]),
        want,
        "headless"
    );
    assert_eq!(
        lab.dig("x/a", &["_http._tcp.web.y.svc.cluster.local", "SRV"]),
        ["SRV 0 100 80 web.y.svc.cluster.local."]
    );
    assert_eq!(
        lab.dig("x/a", &["-x", &web_ip]),
        ["PTR web.y.svc.cluster.local."]
    );
    assert_eq!(
        lab.dig("x/a", &["-x", "10.0.0.10"]),
        ["PTR kube-dns.kube-system.svc.cluster.local."]
    );
    let nx = stdout(&lab.exec("x/a", &["dig", "nope.y.svc.cluster.local"]));
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("flags: qr aa"), "authoritative: {nx}");
    // Outside the cluster domain: forwarded to the internet host's zone.
    assert_eq!(lab.dig("x/a", &["www.example.com"]), ["A 203.0.113.10"]);
    // … with the public zone's TTL (300 s), not the cluster's 5 s.
    let fwd = stdout(&lab.exec("x/a", &["dig", "+noall", "+answer", "www.example.com"]));
    assert!(
        fwd.split_whitespace().nth(1) == Some("300"),
        "the upstream's answer: {fwd}"
    );
    let nx = stdout(&lab.exec("x/a", &["dig", "missing.example.com"]));
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    let fqdn = st["api_server"]["fqdn"].as_str().unwrap();
    assert_eq!(lab.dig("x/a", &[fqdn]), ["A 203.0.113.200"]);

    // lab probe resolves TO through the pod's resolver.
    for (from, to) in [("y/client", "web"), ("x/a", "web.y")] {
        let o = lab.probe(&[from, to, "--port", "80"]);
        assert!(o.status.success(), "{from} → {to}: {}", text(&o));
        let r = json(&o);
        assert_eq!(r["address"], web_ip.as_str());
        assert_eq!(r["source_seen"], "pod");
        assert!(
            r["answered_by"].as_str().unwrap().starts_with("y/web-"),
            "{r}"
        );
    }
    let o = lab.probe(&["x/a", "nope.y"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not resolve"));

    // lab check: every pod reaches kube-dns by name.
    let c = lab.check();
    let by_name: Vec<&Value> = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "pod-to-service-by-name")
        .collect();
    assert_eq!(
        by_name.len(),
        6,
        "lab up's 2, y/web × 2, y/client, x/a: {by_name:#?}"
    );
    assert!(
        by_name.iter().all(|r| r["matches"] == true
            && r["source_seen"] == "pod"
            && r["to_ip"] == "10.0.0.10"),
        "{by_name:#?}"
    );

    // The pod's /etc/netns files go with it.
    let before = etc_netns(&lab.0).len();
    ok(&["lab", "rm-pod", "--name", &lab.0, "x/a"], "");
    assert_eq!(etc_netns(&lab.0).len(), before - 1);
    // A DNS pod removed is replaced (its Deployment), with its server.
    let first = dns_pods[0]["pod"].as_str().unwrap();
    ok(&["lab", "rm-pod", "--name", &lab.0, first], "");
    let again = lab.status()["cluster_dns"]["pods"].clone();
    let again = again.as_array().unwrap();
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|p| p["dns_running"] == true && p["pod"] != first),
        "{again:?}"
    );
    assert_eq!(
        lab.dig("y/client", &["web.y.svc.cluster.local"]),
        [format!("A {web_ip}")]
    );
}

#[test]
fn cluster_dns_in_a_kubenet_lab() {
    dns_in("dk", &["--network-plugin", "kubenet"]);
}

#[test]
fn cluster_dns_in_an_azure_cni_lab() {
    dns_in("da", &["--network-plugin", "azure"]);
}

/// The internet host's and the nodes' probes of the API server.
fn api(lab: &Lab, from: &str) -> Value {
    let o = lab.probe(&[from, "apiserver", "--timeout-ms", "500"]);
    let v = json(&o);
    assert_eq!(
        o.status.code(),
        Some(if v["reachable"] == true { 0 } else { 1 }),
        "{}",
        text(&o)
    );
    v
}

#[test]
fn api_server_authorized_ip_ranges() {
    if !ready(&["ip", "nft"]) {
        return;
    }
    // An unusable range: exit 2, nothing built.
    let o = aksnet(
        &[
            "lab",
            "up",
            "--name",
            "ak5-apibad",
            "--api-server-authorized-ip-ranges",
            "198.51.100.0/40",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!Path::new("/run/aksnet/lab/ak5-apibad").exists());

    let lab = Lab::up(
        "api",
        &[
            "--network-plugin",
            "azure",
            "--network-plugin-mode",
            "overlay",
            "--nodes",
            "2",
            "--pods-per-node",
            "1",
            "--api-server-authorized-ip-ranges",
            "198.51.100.0/24",
        ],
    );
    let st = lab.status();
    assert_eq!(st["internet_ip"], "203.0.113.10");
    assert_eq!(st["apiserver_ip"], "203.0.113.200");
    assert_eq!(st["api_server"]["port"], 443);
    assert_eq!(
        st["api_server"]["authorized_ip_ranges"],
        serde_json::json!(["198.51.100.0/24"])
    );
    assert_eq!(
        st["api_server"]["allowed_sources"],
        serde_json::json!(["198.51.100.0/24", "203.0.113.100/32", "203.0.113.200/32"])
    );
    // The internet host is outside the ranges; the nodes come from the
    // outbound IP, which AKS always allows.
    let r = api(&lab, "internet");
    assert_eq!(r["reachable"], false, "{r}");
    for n in ["node-1", "node-2"] {
        let r = api(&lab, n);
        assert_eq!(r["reachable"], true, "{n}: {r}");
        assert_eq!(r["source_ip_seen"], "203.0.113.100");
        assert_eq!(r["answered_by"], "apiserver");
    }
    let check = |lab: &Lab, internet: bool| {
        let c = lab.check();
        let of = |k: &str| -> Vec<Value> {
            c["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] == k)
                .cloned()
                .collect()
        };
        let i = of("internet-to-apiserver");
        assert_eq!(i.len(), 1);
        assert_eq!(i[0]["expected_reachable"], internet, "{i:?}");
        assert_eq!(i[0]["reachable"], internet, "{i:?}");
        assert_eq!(i[0]["matches"], true, "{i:?}");
        let n = of("node-to-apiserver");
        assert_eq!(n.len(), 2);
        assert!(
            n.iter()
                .all(|r| r["matches"] == true && r["source_seen"] == "public"),
            "{n:?}"
        );
    };
    check(&lab, false);

    // lab update lets the internet host in: measured until a probe gets through.
    let start = Instant::now();
    let u = json(&ok(
        &[
            "lab",
            "update",
            "--name",
            &lab.0,
            "--api-server-authorized-ip-ranges",
            "198.51.100.0/24,203.0.113.0/28",
            "-o",
            "json",
        ],
        "",
    ));
    assert_eq!(
        u["api_server_authorized_ip_ranges"],
        serde_json::json!(["198.51.100.0/24", "203.0.113.0/28"])
    );
    loop {
        let r = api(&lab, "internet");
        if r["reachable"] == true {
            assert_eq!(r["source_ip_seen"], "203.0.113.10");
            assert_eq!(r["source_seen"], "other"); // lab probe's contract: pod|node|vm|public|other
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not in effect within 10 s"
        );
    }
    eprintln!(
        "lab update → internet reaches the API server: {:?}",
        start.elapsed()
    );
    assert!(api(&lab, "node-1")["reachable"] == true);
    check(&lab, true);

    // 0.0.0.0/32: only the outbound IP.
    ok(
        &[
            "lab",
            "update",
            "--name",
            &lab.0,
            "--api-server-authorized-ip-ranges",
            "0.0.0.0/32",
        ],
        "",
    );
    assert_eq!(api(&lab, "internet")["reachable"], false);
    assert_eq!(api(&lab, "node-2")["reachable"], true);
    // An empty list opens it again.
    let u = json(&ok(
        &[
            "lab",
            "update",
            "--name",
            &lab.0,
            "--api-server-authorized-ip-ranges",
            "",
            "-o",
            "json",
        ],
        "",
    ));
    assert!(u["allowed_sources"].is_null(), "{u}");
    assert_eq!(api(&lab, "internet")["reachable"], true);
    assert_eq!(
        lab.status()["api_server"]["authorized_ip_ranges"],
        serde_json::json!([])
    );
    // Unusable input: exit 2, nothing changed.
    for bad in [
        vec!["--api-server-authorized-ip-ranges", "1.2.3.0/33"],
        vec![],
    ] {
        let mut a = vec!["lab", "update", "--name", lab.0.as_str()];
        a.extend(bad.iter().copied());
        let o = aksnet(&a, "");
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", text(&o));
    }
    let o = aksnet(
        &[
            "lab",
            "update",
            "--name",
            "ak5-nosuchlab",
            "--api-server-authorized-ip-ranges",
            "",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(api(&lab, "internet")["reachable"], true);
}
