//! `aksnet explain --verify` and `aksnet lab check --policy` end to end as
//! root, in a kubenet and an overlay lab with the upstream policy model
//! (namespaces x, y, z labelled `ns=<name>`, pods a, b, c labelled
//! `pod=<name>` serving 80 and 81 over TCP and UDP, a Service per pod):
//! the policy matrix's JSON contract and its timing, flows allowed,
//! denied by an NSG rule and by a NetworkPolicy, each explained with the
//! rule that decides, verified on the data plane where it enforces, and
//! exit 2 for unusable input.
//!
//! Each test builds its own lab (names start with `ex-`) and tears it down
//! on success and failure. Without root or a needed program the tests
//! print why and pass, except under `CI=true`, where they fail.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod labkit;

use std::process::Output;
use std::time::Instant;

use labkit::*;
use serde_json::Value;

fn ready() -> bool {
    ready_for("explain lab tests", &["ip", "nft"])
}

/// Tears the lab down however the test ends.
struct Lab(String);

impl Lab {
    fn up(tag: &str, args: &[&str]) -> Lab {
        let name = format!("ex-{tag}{}", std::process::id() % 100_000);
        let lab = Lab(name.clone());
        let mut a = vec!["lab", "up", "--name", &name];
        a.extend_from_slice(args);
        ok(&a, "");
        lab
    }

    fn explain(&self, args: &[&str]) -> (Option<i32>, Value, Output) {
        let mut a = vec!["explain", "--lab", &self.0, "-o", "json"];
        a.extend_from_slice(args);
        let o = aksnet(&a, "");
        let code = o.status.code();
        let v = if code == Some(2) {
            Value::Null
        } else {
            json(&o)
        };
        (code, v, o)
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

/// The upstream model: 3 namespaces × 3 pods, spread over the nodes.
fn model(nodes: usize) -> String {
    let mut docs = vec![];
    for n in ["x", "y", "z"] {
        docs.push(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}, labels: {{ns: {n}}}}}\n"
        ));
    }
    for n in ["x", "y", "z"] {
        for (j, p) in ["a", "b", "c"].iter().enumerate() {
            let node = format!("node-{}", j % nodes + 1);
            docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {p}, namespace: {n}, labels: {{pod: {p}}}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: agnhost\n    ports:\n    - {{name: serve-80-tcp, containerPort: 80}}\n    - {{name: serve-80-udp, containerPort: 80, protocol: UDP}}\n    - {{name: serve-81-tcp, containerPort: 81}}\n    - {{name: serve-81-udp, containerPort: 81, protocol: UDP}}\n"
            ));
            docs.push(format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s-{n}-{p}, namespace: {n}}}\nspec:\n  selector: {{pod: {p}}}\n  ports:\n  - {{name: http, port: 80}}\n"
            ));
        }
    }
    docs.join("---\n")
}

const ONLY_FROM_Y: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{port: 9999}]
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
";

fn scenario(tag: &str, up: &[&str], nodes: usize) {
    if !ready() {
        return;
    }
    let lab = Lab::up(tag, up);
    ok(&["apply", "--lab", &lab.0, "-f", "-"], &model(nodes));
    let names = format!("--name={}", lab.0);

    // No policy, no NSG rule: every served pair reachable, as expected.
    let t = Instant::now();
    let o = aksnet(&["lab", "check", &names, "--policy", "-o", "json"], "");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["ports"]);
    let ports = v["ports"].as_array().unwrap();
    let got: Vec<(u64, &str)> = ports
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    // The lab-up pods serve 80/tcp; the model's pods 80 and 81 over both.
    assert_eq!(
        got,
        vec![(80, "tcp"), (80, "udp"), (81, "tcp"), (81, "udp")]
    );
    let pods = 9 + nodes;
    for p in ports {
        let rs = p["results"].as_array().unwrap();
        assert_eq!(rs.len(), pods * pods);
        for r in rs {
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                vec!["expected_reachable", "from", "matches", "reachable", "to"]
            );
            assert_eq!(r["matches"], true, "{r}");
            assert!(r["from"].as_str().unwrap().contains('/'));
        }
        // Between the model's pods everything is served and allowed.
        assert!(rs
            .iter()
            .filter(|r| r["to"].as_str().unwrap().len() == 3)
            .all(|r| r["reachable"] == true));
    }
    assert!(secs < 30.0, "{} probes took {secs:.1} s", pods * pods * 4);

    // Allowed, verified.
    let (code, e, o) = lab.explain(&["x/a", "y/b", "--verify"]);
    assert_eq!(code, Some(0), "{}", text(&o));
    assert_eq!(e["verdict"], "allowed");
    assert_eq!(e["verification"]["agrees"], true);
    assert_eq!(e["paths"][0]["delivered_to"], "y/b");
    // Through y/b's Service: DNAT to its one backend.
    let (code, e, o) = lab.explain(&["x/a", "svc/y/s-y-b", "--verify"]);
    assert_eq!(code, Some(0), "{}", text(&o));
    assert_eq!(e["service"], "y/s-y-b");
    assert!(e["paths"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "dnat"));

    // An NSG rule denies 81/tcp into node-2's pods: x/a (node-1) → y/b
    // (node-2) is denied by it, on the data plane too; the matrix agrees.
    let yb_ip = e["paths"][0]["backend"]["ip"].as_str().unwrap().to_string();
    let dst = format!("{yb_ip}/32");
    ok(
        &[
            "lab",
            "nsg",
            "add",
            &names,
            "--priority",
            "200",
            "--direction",
            "inbound",
            "--access",
            "deny",
            "--destination",
            &dst,
            "--port",
            "81",
            "--protocol",
            "tcp",
        ],
        "",
    );
    let (code, e, o) = lab.explain(&["x/a", "y/b", "--port", "81", "--verify"]);
    assert_eq!(code, Some(1), "{}", text(&o));
    assert_eq!(e["verdict"], "denied");
    assert_eq!(e["verification"]["agrees"], true, "{e}");
    let nsg = e["paths"][0]["nsg"].as_array().unwrap();
    assert_eq!(nsg.last().unwrap()["rule"], "deny-inbound-200");
    let o = aksnet(&["lab", "check", &names, "--policy", "-o", "json"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    let p81 = v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 81 && p["protocol"] == "tcp")
        .unwrap();
    let denied: Vec<&Value> = p81["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["to"] == "y/b" && r["expected_reachable"] == false)
        .collect();
    // Every pod not on y/b's node is denied; those on it are not.
    assert!(!denied.is_empty() && denied.len() < pods, "{denied:?}");
    assert!(denied.iter().all(|r| r["reachable"] == false));

    // A NetworkPolicy: x/a admits only namespace y (its second rule).
    ok(&["apply", "--lab", &lab.0, "-f", "-"], ONLY_FROM_Y);
    let (code, e, o) = lab.explain(&["y/c", "x/a"]);
    assert_eq!(code, Some(0), "{}", text(&o));
    let ing = e["paths"][0]["policy"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(ing["allowed_by"][0]["policy"], "x/only-from-y");
    assert_eq!(ing["allowed_by"][0]["rule"], 1);
    let (code, e, o) = lab.explain(&["z/b", "x/a"]);
    assert_eq!(code, Some(1), "{}", text(&o));
    let ing = e["paths"][0]["policy"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(ing["reason"], "no-rule-allows");
    assert_eq!(ing["isolated_by"][0], "x/only-from-y");

    // The same flows from the lab's store alone: policy and routes, no NSG.
    let root = std::env::var("AKSNET_LAB_ROOT").unwrap_or_else(|_| "/run/aksnet/lab".into());
    let url = format!("sqlite:{root}/{}/cluster.db", lab.0);
    let o = aksnet(
        &["explain", "--store", &url, "z/b", "x/a", "-o", "json"],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = json(&o);
    assert_eq!(e["verdict"], "denied");
    assert!(e["paths"][0]["nsg"].as_array().unwrap().is_empty());
    let o = aksnet(&["explain", "--store", &url, "y/a", "x/a"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = aksnet(&["explain", "--store", &url, "vm", "x/a"], "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Unusable input: exit 2.
    for args in [
        vec!["nope/none", "x/a"],
        vec!["x/a", "svc/x/none"],
        vec!["x/a", "y/b", "--protocol", "icmp"],
    ] {
        let (code, _, o) = lab.explain(&args);
        assert_eq!(code, Some(2), "{args:?}: {}", text(&o));
    }
    let o = aksnet(
        &[
            "explain",
            "--store",
            "sqlite:/nonexistent/x.db",
            "x/a",
            "y/b",
            "--verify",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn kubenet_explain_and_policy_matrix() {
    scenario(
        "k",
        &[
            "--nodes",
            "3",
            "--pods-per-node",
            "1",
            "--network-plugin",
            "kubenet",
        ],
        3,
    );
}

#[test]
fn overlay_explain_and_policy_matrix() {
    scenario("o", &["--nodes", "2", "--pods-per-node", "1"], 2);
}
