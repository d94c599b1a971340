//! The lab as its pods' kubelet, and `lab probe`, end to end as root with
//! the real agent and CNI plugins: Pods and Deployments applied with
//! `aksnet apply --lab` become lab pods with their names, namespaces,
//! labels and container ports; their addresses and nodes are written back
//! and their Services' endpoints follow; replicas changes, `lab rm-pod` and
//! `delete --lab` add and remove pods; `lab probe` reaches them over TCP and
//! UDP, says who answered and which source it saw, tells a refused port
//! from a reached one, and refuses unusable input with exit 2.
//!
//! Each test builds its own lab (names start with `ak5-`) and tears it
//! down on success and failure. Without root or a needed program the tests
//! print why and pass, except under `CI=true`, where they fail.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod labkit;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use labkit::*;
use serde_json::Value;

/// One JSON object per line.
fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect()
}

fn ready() -> bool {
    ready_for("lab pod tests", &["ip", "nft"])
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

    fn apply(&self, yaml: &str) -> Output {
        ok(&["apply", "--lab", &self.0, "-f", "-"], yaml)
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut a = vec!["get", "--lab", &self.0];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        json(&ok(&a, ""))
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
        }
    }
}

const APP: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
      - name: web
        image: nginx
        ports:
        - {name: http, containerPort: 8080}
        - {name: dns, containerPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: shop, labels: {app: solo}}
spec:
  nodeName: node-2
  containers: [{name: c, image: busybox}]
";

/// Pods of the store in `ns`, by name.
fn pods(lab: &Lab, ns: &str) -> Vec<Value> {
    lab.get(&["po", "-n", ns])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn web_pods(lab: &Lab) -> Vec<Value> {
    pods(lab, "shop")
        .into_iter()
        .filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-"))
        .collect()
}

fn slice_addresses(lab: &Lab) -> BTreeSet<String> {
    lab.get(&["endpointslices", "-n", "shop"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn ips(pods: &[Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn applied_pods_and_deployments_become_lab_pods_and_probes_reach_them() {
    if !ready() {
        return;
    }
    let lab = Lab::up("kube", &["--nodes", "2", "--pods-per-node", "1"]);

    // `lab up`'s pods are Pods in default, Running on their node.
    let st = lab.status();
    let defaults = pods(&lab, "default");
    assert_eq!(defaults.len(), 2, "{defaults:?}");
    for p in &defaults {
        let name = p["metadata"]["name"].as_str().unwrap();
        let lp = st["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name && x["namespace"] == "default")
            .unwrap();
        assert_eq!(p["status"]["podIP"], lp["ip"]);
        assert_eq!(p["spec"]["nodeName"], lp["node"]);
        assert_eq!(p["status"]["phase"], "Running");
    }

    lab.apply(APP);
    // The Deployment's Pods: DEPLOYMENT-<suffix>, labelled from the
    // template, Running with an address the lab gave them.
    let web = web_pods(&lab);
    assert_eq!(web.len(), 3, "{web:?}");
    let st = lab.status();
    let lab_pods = st["pods"].as_array().unwrap();
    for p in &web {
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["labels"]["tier"], "front");
        assert_eq!(p["metadata"]["namespace"], "shop");
        assert_eq!(p["status"]["phase"], "Running");
        let lp = lab_pods
            .iter()
            .find(|x| x["name"] == p["metadata"]["name"] && x["namespace"] == "shop")
            .unwrap_or_else(|| panic!("no lab pod for {p}"));
        assert_eq!(p["status"]["podIP"], lp["ip"]);
        assert_eq!(p["spec"]["nodeName"], lp["node"]);
        assert_eq!(lp["probe_running"], true);
    }
    // Spread by load: 1 + 1 pods, then solo on node-2, then 3 web pods.
    let on = |n: &str| lab_pods.iter().filter(|p| p["node"] == n).count();
    assert_eq!((on("node-1"), on("node-2")), (3, 3), "{lab_pods:?}");
    let solo = pods(&lab, "shop")
        .into_iter()
        .find(|p| p["metadata"]["name"] == "solo")
        .unwrap();
    assert_eq!(solo["spec"]["nodeName"], "node-2");
    // The Service's endpoints are the Deployment's pods.
    assert_eq!(slice_addresses(&lab), ips(&web));

    let w0 = format!("shop/{}", web[0]["metadata"]["name"].as_str().unwrap());
    let w0_ip = web[0]["status"]["podIP"].as_str().unwrap().to_string();

    // pod → pod (NAMESPACE/NAME and NAME in default), first container port.
    let o = lab.probe(&["pod-1-1", &w0]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = &lines(&o)[0];
    let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "from",
            "to",
            "address",
            "port",
            "protocol",
            "reachable",
            "refused",
            "answered_by",
            "source_ip_seen",
            "source_seen",
            "elapsed_ms"
        ]
        .into()
    );
    assert_eq!(r["from"], "pod-1-1");
    assert_eq!(r["to"], w0.as_str());
    assert_eq!(r["address"], w0_ip.as_str());
    assert_eq!(
        (r["port"].as_u64(), r["protocol"].as_str()),
        (Some(8080), Some("tcp"))
    );
    assert_eq!(
        (r["reachable"].as_bool(), r["refused"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(r["answered_by"], w0.as_str());
    assert_eq!(r["source_seen"], "pod");
    assert_eq!(r["source_ip_seen"], defaults[0]["status"]["podIP"]);
    assert!(r["elapsed_ms"].as_f64().unwrap() >= 0.0);
    // A pod in default answers as default/NAME; --count makes N lines.
    let o = lab.probe(&[&w0, "default/pod-2-1", "--count", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rs = lines(&o);
    assert_eq!(rs.len(), 3);
    assert!(rs
        .iter()
        .all(|r| r["answered_by"] == "default/pod-2-1" && r["port"] == 80));
    // node → pod: kubenet keeps the node's address.
    let o = lab.probe(&["node-1", &w0, "--protocol", "udp"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = &lines(&o)[0];
    assert_eq!(
        (r["port"].as_u64(), r["protocol"].as_str()),
        (Some(5353), Some("udp"))
    );
    assert_eq!(r["source_seen"], "node");
    assert_eq!(r["answered_by"], w0.as_str());
    // pod → IP (the owner's first port), and a port nothing listens on:
    // refused at once, exit 1, on TCP and UDP.
    let o = lab.probe(&["shop/solo", &w0_ip]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&o)[0]["answered_by"], w0.as_str());
    for proto in ["tcp", "udp"] {
        let o = lab.probe(&["shop/solo", &w0, "--port", "81", "--protocol", proto]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let r = &lines(&o)[0];
        assert_eq!(
            (r["reachable"].as_bool(), r["refused"].as_bool()),
            (Some(false), Some(true)),
            "{proto}: {r}"
        );
        assert!(
            r["answered_by"].is_null()
                && r["source_seen"].is_null()
                && r["source_ip_seen"].is_null()
        );
    }
    // svc/… and nodeport/… resolve from the store; whether they are
    // reached is the Services dataplane's (exit 0 only when reached).
    let svc = lab.get(&["svc", "web", "-n", "shop"]);
    let o = lab.probe(&["pod-1-1", "svc/shop/web", "--count", "2"]);
    let rs = lines(&o);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0]["address"], svc["spec"]["clusterIP"]);
    assert_eq!(rs[0]["port"], 80);
    let all = rs.iter().all(|r| r["reachable"] == true);
    assert_eq!(
        o.status.code(),
        Some(if all { 0 } else { 1 }),
        "{}",
        text(&o)
    );
    let o = lab.probe(&["pod-1-1", "svc/shop/web", "--port", "9999"]);
    assert_eq!(
        lines(&o)[0]["port"],
        9999,
        "--port probes an undeclared port"
    );
    let o = lab.probe(&["pod-1-1", "nodeport/shop/web@node-2"]);
    let r = &lines(&o)[0];
    assert_eq!(r["port"], svc["spec"]["ports"][0]["nodePort"]);
    assert_eq!(r["address"], st["nodes"][1]["ip"]);
    // Unusable input: exit 2, nothing on stdout.
    for args in [
        vec!["pod-1-1", "shop/nope"],
        vec!["nope", "pod-1-1"],
        vec!["web", "pod-1-1"],
        vec!["pod-1-1", "svc/shop/nope"],
        vec!["pod-1-1", "svc/nope"],
        vec!["pod-1-1", "lb/shop/web"],
        vec!["pod-1-1", "nodeport/shop/web"],
        vec!["pod-1-1", "nodeport/shop/web@node-9"],
        vec!["pod-1-1", "a/b/c"],
        vec!["pod-1-1", "pod-2-1", "--protocol", "sctp"],
        vec!["pod-1-1", "pod-2-1", "--port", "0"],
        vec!["pod-1-1", "pod-2-1", "--count", "0"],
    ] {
        let o = lab.probe(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{args:?}: {}", text(&o));
    }
    let o = aksnet(
        &[
            "lab",
            "probe",
            "--name",
            "ak5-no-such-lab",
            "vm",
            "internet",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // exec takes NAMESPACE/NAME.
    let o = ok(
        &[
            "lab",
            "exec",
            "--name",
            &lab.0,
            "shop/solo",
            "--",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ],
        "",
    );
    let solo_ip = solo["status"]["podIP"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(solo_ip),
        "{}",
        text(&o)
    );

    // replicas 3 → 1 → 2: pods and endpoints follow.
    lab.apply(&APP.replace("replicas: 3", "replicas: 1"));
    let web = web_pods(&lab);
    assert_eq!(web.len(), 1);
    assert_eq!(slice_addresses(&lab), ips(&web));
    lab.apply(&APP.replace("replicas: 3", "replicas: 2"));
    let web = web_pods(&lab);
    assert_eq!(web.len(), 2);
    assert_eq!(slice_addresses(&lab), ips(&web));
    let lab_web = |lab: &Lab| {
        lab.status()["pods"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["namespace"] == "shop" && p["name"].as_str().unwrap().starts_with("web-"))
            .count()
    };
    assert_eq!(lab_web(&lab), 2);
    // rm-pod of a Deployment's pod: a new one takes its place.
    let gone = web[0]["metadata"]["name"].as_str().unwrap().to_string();
    ok(
        &["lab", "rm-pod", "--name", &lab.0, &format!("shop/{gone}")],
        "",
    );
    let web = web_pods(&lab);
    assert_eq!(web.len(), 2);
    assert!(web.iter().all(|p| p["metadata"]["name"] != gone.as_str()));
    assert_eq!(slice_addresses(&lab), ips(&web));
    // A template change replaces every pod.
    let before: BTreeSet<String> = web
        .iter()
        .map(|p| p["metadata"]["name"].to_string())
        .collect();
    lab.apply(
        &APP.replace("replicas: 3", "replicas: 2")
            .replace("tier: front", "tier: edge"),
    );
    let web = web_pods(&lab);
    assert_eq!(web.len(), 2);
    assert!(web
        .iter()
        .all(|p| !before.contains(&p["metadata"]["name"].to_string())
            && p["metadata"]["labels"]["tier"] == "edge"));
    // delete --lab: the Pod, then the Deployment with its pods.
    ok(
        &["delete", "--lab", &lab.0, "pod", "solo", "-n", "shop"],
        "",
    );
    ok(
        &["delete", "--lab", &lab.0, "deploy", "web", "-n", "shop"],
        "",
    );
    assert!(pods(&lab, "shop").is_empty());
    assert!(slice_addresses(&lab).is_empty());
    let st = lab.status();
    let left: Vec<&Value> = st["pods"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 2, "only lab up's pods are left: {left:?}");
    assert!(left.iter().all(|p| p["namespace"] == "default"));
    // rm-pod of a plain pod: gone from the store too.
    ok(&["lab", "rm-pod", "--name", &lab.0, "default/pod-2-1"], "");
    let names: Vec<Value> = pods(&lab, "default")
        .iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, ["pod-1-1"]);
    // add-pod records its pod; deleting a namespace takes its pods along.
    ok(
        &["lab", "add-pod", "--name", &lab.0, "--node", "node-2"],
        "",
    );
    assert_eq!(pods(&lab, "default").len(), 2);
    lab.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: tmp}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: tmp}\nspec: {containers: [{name: c, image: x}]}\n",
    );
    let o = lab.probe(&["pod-1-1", "tmp/p"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ok(&["delete", "--lab", &lab.0, "ns", "tmp"], "");
    let st = lab.status();
    assert!(
        st["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["namespace"] != "tmp"),
        "{st}"
    );
}

#[test]
fn a_pod_the_lab_cannot_run_stays_pending() {
    if !ready() {
        return;
    }
    let lab = Lab::up("pend", &["--nodes", "1", "--pods-per-node", "0"]);
    let o = lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: far}\nspec: {nodeName: node-7, containers: [{name: c, image: x}]}\n",
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("node-7"),
        "{}",
        text(&o)
    );
    let p = lab.get(&["po", "far"]);
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["status"]["podIP"].is_null());
    assert!(lab.status()["pods"].as_array().unwrap().is_empty());
    let o = lab.probe(&["node-1", "far"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a Pod without a lab pod: {}",
        text(&o)
    );
}

const SERVICES: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 80}]
";

/// The Services dataplane in each model, through the agents' nftables
/// tables: pod → ClusterIP spread over the endpoints with the pod's own
/// source, a Service without endpoints and an undeclared port refused at
/// once, a NodePort of another node, hairpin, and endpoints that follow
/// the Deployment's replicas.
#[test]
fn services_are_reached_spread_refused_and_follow_their_endpoints_in_every_model() {
    if !ready() {
        return;
    }
    for (tag, args) in [
        ("svk", vec!["--network-plugin", "kubenet"]),
        (
            "svo",
            vec![
                "--network-plugin",
                "azure",
                "--network-plugin-mode",
                "overlay",
            ],
        ),
        ("sva", vec!["--network-plugin", "azure"]),
    ] {
        let mut a = vec!["--nodes", "2", "--pods-per-node", "1"];
        a.extend_from_slice(&args);
        let lab = Lab::up(tag, &a);
        lab.apply(SERVICES);
        let web_ips = ips(&pods(&lab, "default")
            .into_iter()
            .filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-"))
            .collect::<Vec<_>>());
        assert_eq!(web_ips.len(), 3, "{tag}");
        let pod_ip = pods(&lab, "default")
            .into_iter()
            .find(|p| p["metadata"]["name"] == "pod-1-1")
            .unwrap()["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string();
        // The agents program Services once they see them (a watch).
        let mut rs = vec![];
        for _ in 0..50 {
            let o = lab.probe(&["pod-1-1", "svc/default/web", "--count", "30"]);
            rs = lines(&o);
            if o.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(rs.iter().all(|r| r["reachable"] == true), "{tag}: {rs:?}");
        let answered: BTreeSet<String> = rs
            .iter()
            .map(|r| r["answered_by"].as_str().unwrap().to_string())
            .collect();
        assert!(answered.len() >= 2, "{tag}: 30 probes all to {answered:?}");
        assert!(
            rs.iter().all(|r| r["source_ip_seen"] == pod_ip.as_str()),
            "{tag}: pod → ClusterIP keeps the pod's IP {pod_ip}: {rs:?}"
        );
        for (to, port) in [("svc/default/empty", None), ("svc/default/web", Some("81"))] {
            let mut a = vec!["pod-1-1", to];
            if let Some(p) = port {
                a.extend_from_slice(&["--port", p]);
            }
            let o = lab.probe(&a);
            let r = &lines(&o)[0];
            assert_eq!(o.status.code(), Some(1), "{tag} {to}");
            assert_eq!(r["refused"], true, "{tag} {to}: {r}");
            assert!(r["elapsed_ms"].as_f64().unwrap() < 100.0, "{tag} {to}: {r}");
        }
        // sessionAffinity: ClientIP pins each client to one endpoint.
        let o = lab.probe(&["pod-1-1", "svc/default/sticky", "--count", "20"]);
        assert!(o.status.success(), "{tag} affinity: {}", text(&o));
        let pinned: BTreeSet<String> = lines(&o)
            .iter()
            .map(|r| r["answered_by"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(pinned.len(), 1, "{tag}: affinity spread over {pinned:?}");
        let o = lab.probe(&["node-2", "nodeport/default/np@node-1", "--count", "5"]);
        assert!(o.status.success(), "{tag} nodeport: {}", text(&o));
        // Hairpin: each web pod through its own Service.
        let web = pods(&lab, "default")
            .into_iter()
            .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-"))
            .unwrap();
        let from = format!("default/{}", web["metadata"]["name"].as_str().unwrap());
        let o = lab.probe(&[&from, "svc/default/web", "--count", "12"]);
        assert!(o.status.success(), "{tag} hairpin: {}", text(&o));
        // One replica left: every probe goes to it.
        lab.apply(&SERVICES.replace("replicas: 3", "replicas: 1"));
        let left = ips(&pods(&lab, "default")
            .into_iter()
            .filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-"))
            .collect::<Vec<_>>());
        assert_eq!(left.len(), 1);
        let mut ok_once = false;
        for _ in 0..50 {
            let o = lab.probe(&["pod-1-1", "svc/default/web", "--count", "10"]);
            let answered: BTreeSet<String> = lines(&o)
                .iter()
                .map(|r| r["answered_by"].as_str().unwrap_or("-").to_string())
                .collect();
            if o.status.success() && answered.len() == 1 {
                ok_once = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ok_once, "{tag}: endpoints did not follow replicas 3 → 1");
    }
}
