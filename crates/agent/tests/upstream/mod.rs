//! The upstream network policy model (test/e2e/network/netpol, cyclonus):
//! namespaces x, y, z labelled `ns=<name>`, pods a, b, c in each labelled
//! `pod=<name>`, each serving 80 and 81 over TCP and UDP (named ports
//! `serve-<port>-<proto>`), and a Service `s-<pod>` per pod; the scenarios
//! of the upstream suite, each as phases (objects to apply, policies to
//! delete) with the expected truth table over all 81 pairs (loopback is
//! ignored, as upstream's `ignoreLoopback`).
//!
//! Shared by the rule-set test on the Fake (`tests/policy_model.rs`) and
//! the lab suite (`crates/cli/tests/lab_policy.rs`, included by path), so
//! the data plane and the model are judged by the same tables.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const PODS: [&str; 3] = ["a", "b", "c"];
pub const PORTS: [(u16, &str); 4] = [(80, "tcp"), (81, "tcp"), (80, "udp"), (81, "udp")];

/// `x/a`.
pub type PodRef = String;

/// Every pod of the model, `x/a` … `z/c`.
pub fn pods() -> Vec<PodRef> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
        .collect()
}

/// One probe of a truth table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub from: PodRef,
    pub to: PodRef,
    pub port: u16,
    pub proto: &'static str,
}

impl Flow {
    pub fn src_ns(&self) -> &str {
        self.from.split('/').next().unwrap_or_default()
    }
    pub fn dst_ns(&self) -> &str {
        self.to.split('/').next().unwrap_or_default()
    }
    pub fn src_pod(&self) -> &str {
        self.from.split('/').nth(1).unwrap_or_default()
    }
    fn is(&self, port: u16, proto: &str) -> bool {
        self.port == port && self.proto == proto
    }
}

/// Every non-loopback flow: 72 pairs × 4 ports.
pub fn flows() -> Vec<Flow> {
    let mut out = vec![];
    for from in pods() {
        for to in pods() {
            if from == to {
                continue;
            }
            for (port, proto) in PORTS {
                out.push(Flow {
                    from: from.clone(),
                    to: to.clone(),
                    port,
                    proto,
                });
            }
        }
    }
    out
}

/// The model's objects: namespaces, pods (pod `a` and `c` on the first
/// node, `b` on the second, so there are same-node and cross-node pairs),
/// Services. Applying it again resets every label.
pub fn model_yaml(nodes: &[&str]) -> String {
    let mut y = String::new();
    for ns in NAMESPACES {
        y += &namespace_yaml(ns, &[]);
    }
    for ns in NAMESPACES {
        for (i, pod) in PODS.iter().enumerate() {
            let node = if i == 1 {
                nodes[1 % nodes.len()]
            } else {
                nodes[0]
            };
            y += &pod_yaml(ns, pod, node, &[]);
            y += &format!(
                "---
apiVersion: v1
kind: Service
metadata: {{name: s-{pod}, namespace: {ns}}}
spec:
  selector: {{pod: {pod}}}
  ports:
  - {{name: p80tcp, port: 80, targetPort: 80}}
  - {{name: p81tcp, port: 81, targetPort: 81}}
  - {{name: p80udp, port: 80, targetPort: 80, protocol: UDP}}
  - {{name: p81udp, port: 81, targetPort: 81, protocol: UDP}}
"
            );
        }
    }
    y
}

pub fn namespace_yaml(ns: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = format!("ns: {ns}");
    for (k, v) in extra {
        labels += &format!(", {k}: {v}");
    }
    format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{{labels}}}}}\n"
    )
}

pub fn pod_yaml(ns: &str, pod: &str, node: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = format!("pod: {pod}");
    for (k, v) in extra {
        labels += &format!(", {k}: {v}");
    }
    format!(
        "---
apiVersion: v1
kind: Pod
metadata: {{name: {pod}, namespace: {ns}, labels: {{{labels}}}}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: agnhost
    ports:
    - {{name: serve-80-tcp, containerPort: 80}}
    - {{name: serve-81-tcp, containerPort: 81}}
    - {{name: serve-80-udp, containerPort: 80, protocol: UDP}}
    - {{name: serve-81-udp, containerPort: 81, protocol: UDP}}
"
    )
}

/// What a scenario may need to know of the cluster it runs in.
pub struct Ctx {
    /// `x/a` → pod IP.
    pub ips: BTreeMap<PodRef, Ipv4Addr>,
    /// The node of each pod.
    pub nodes: BTreeMap<PodRef, String>,
}

impl Ctx {
    pub fn ip(&self, p: &str) -> Ipv4Addr {
        self.ips[p]
    }
}

pub type Expect = Box<dyn Fn(&Flow) -> bool>;

pub struct Phase {
    /// YAML to apply (policies, namespaces, pods).
    pub apply: String,
    /// Policies to delete: `(namespace, name)`.
    pub delete: Vec<(&'static str, &'static str)>,
    pub expect: Expect,
}

pub struct Scenario {
    pub name: &'static str,
    pub phases: Vec<Phase>,
    /// Every policy the scenario creates (deleted after it).
    pub policies: Vec<(&'static str, &'static str)>,
    /// Whether it changes labels (the model is applied again after it).
    pub relabels: bool,
}

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
    )
}

fn phase(apply: String, expect: impl Fn(&Flow) -> bool + 'static) -> Phase {
    Phase {
        apply,
        delete: vec![],
        expect: Box::new(expect),
    }
}

fn one(
    name: &'static str,
    policies: Vec<(&'static str, &'static str)>,
    apply: String,
    expect: impl Fn(&Flow) -> bool + 'static,
) -> Scenario {
    Scenario {
        name,
        phases: vec![phase(apply, expect)],
        policies,
        relabels: false,
    }
}

fn in_cidr(ip: Ipv4Addr, net: Ipv4Addr, len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The upstream scenarios. Pod `x/a` is the usual target.
#[allow(
    clippy::vec_init_then_push,
    reason = "scenarios in upstream's order, some with locals of their own"
)]
pub fn all(ctx: &Ctx) -> Vec<Scenario> {
    let xa = |f: &Flow| f.to == "x/a";
    let mut v = vec![];
    v.push(one(
        "default-deny-ingress",
        vec![("x", "deny")],
        policy("x", "deny", "  podSelector: {}\n"),
        |f| f.dst_ns() != "x",
    ));
    v.push(one(
        "default-deny-all",
        vec![("x", "deny-all")],
        policy(
            "x",
            "deny-all",
            "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n",
        ),
        |f| f.dst_ns() != "x" && f.src_ns() != "x",
    ));
    v.push(one(
        "allow-ingress-by-pod-selector-in-its-namespace",
        vec![("x", "from-b")],
        policy(
            "x",
            "from-b",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n",
        ),
        move |f| !xa(f) || f.from == "x/b",
    ));
    v.push(one(
        "allow-from-all-namespaces-on-port-80",
        vec![("x", "all-ns-80")],
        policy(
            "x",
            "all-ns-80",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n    ports:\n    - port: 80\n",
        ),
        move |f| !xa(f) || f.is(80, "tcp"),
    ));
    v.push(one(
        "allow-only-from-another-namespace",
        vec![("x", "from-y")],
        policy(
            "x",
            "from-y",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n",
        ),
        move |f| !xa(f) || f.src_ns() == "y",
    ));
    v.push(one(
        "match-expressions-and-within-one-peer",
        vec![("x", "expr")],
        policy(
            "x",
            "expr",
            "  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a]}]}\n  ingress:\n  - from:\n    - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}\n      podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [c]}]}\n",
        ),
        move |f| !xa(f) || (f.src_ns() != "x" && f.src_pod() != "c"),
    ));
    v.push(one(
        "pod-selector-or-namespace-selector",
        vec![("x", "or")],
        policy(
            "x",
            "or",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n    - namespaceSelector: {matchLabels: {ns: y}}\n",
        ),
        move |f| !xa(f) || f.from == "x/b" || f.src_ns() == "y",
    ));
    v.push(one(
        "pod-selector-and-namespace-selector",
        vec![("x", "and")],
        policy(
            "x",
            "and",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n      namespaceSelector: {matchLabels: {ns: y}}\n",
        ),
        move |f| !xa(f) || f.from == "y/b",
    ));
    v.push(one(
        "one-port-does-not-widen-and-defaults-to-tcp",
        vec![("x", "port-81")],
        policy(
            "x",
            "port-81",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports:\n    - port: 81\n",
        ),
        move |f| !xa(f) || f.is(81, "tcp"),
    ));
    v.push(one(
        "named-port-with-its-protocol",
        vec![("x", "named")],
        policy(
            "x",
            "named",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports:\n    - {port: serve-80-udp, protocol: UDP}\n",
        ),
        move |f| !xa(f) || f.is(80, "udp"),
    ));
    v.push(one(
        "udp-only-end-port-does-not-allow-tcp",
        vec![("x", "udp-range")],
        policy(
            "x",
            "udp-range",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports:\n    - {protocol: UDP, port: 80, endPort: 81}\n",
        ),
        move |f| !xa(f) || f.proto == "udp",
    ));
    // ipBlock on pod IPs: y/b's /24 less y/b itself.
    let yb = ctx.ip("y/b");
    let ips = ctx.ips.clone();
    v.push(one(
        "ip-block-with-except-on-pod-ips",
        vec![("x", "cidr")],
        policy(
            "x",
            "cidr",
            &format!(
                "  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: {yb}/24, except: [{yb}/32]}}\n"
            ),
        ),
        move |f| !xa(f) || (in_cidr(ips[&f.from], yb, 24) && ips[&f.from] != yb),
    ));
    let ips = ctx.ips.clone();
    v.push(Scenario {
        name: "ip-block-except-allowed-by-another-policy",
        phases: vec![phase(
            policy(
                "x",
                "cidr",
                &format!(
                    "  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: {yb}/24, except: [{yb}/32]}}\n"
                ),
            ) + &policy(
                "x",
                "yb",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n      podSelector: {matchLabels: {pod: b}}\n",
            ),
            move |f| !xa(f) || in_cidr(ips[&f.from], yb, 24),
        )],
        policies: vec![("x", "cidr"), ("x", "yb")],
        relabels: false,
    });
    v.push(one(
        "deny-egress",
        vec![("x", "no-egress")],
        policy(
            "x",
            "no-egress",
            "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n",
        ),
        |f| f.from != "x/a",
    ));
    v.push(one(
        "egress-to-a-pod-of-another-namespace-also-isolates-ingress",
        vec![("x", "to-yb")],
        policy(
            "x",
            "to-yb",
            "  podSelector: {matchLabels: {pod: a}}\n  egress:\n  - to:\n    - podSelector: {matchLabels: {pod: b}}\n      namespaceSelector: {matchLabels: {ns: y}}\n    ports:\n    - {port: 80, protocol: TCP}\n",
        ),
        |f| {
            if f.from == "x/a" {
                f.to == "y/b" && f.is(80, "tcp")
            } else {
                f.to != "x/a"
            }
        },
    ));
    v.push(one(
        "egress-to-an-ip-block",
        vec![("x", "to-cidr")],
        policy(
            "x",
            "to-cidr",
            &format!(
                "  podSelector: {{matchLabels: {{pod: a}}}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {{cidr: {yb}/32}}\n"
            ),
        ),
        |f| f.from != "x/a" || f.to == "y/b",
    ));
    v.push(Scenario {
        name: "client-egress-deny-wins-over-server-allow",
        phases: vec![phase(
            policy(
                "x",
                "no-egress",
                "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n",
            ) + &policy(
                "y",
                "allow-all",
                "  podSelector: {matchLabels: {pod: b}}\n  ingress:\n  - {}\n",
            ),
            |f| f.from != "x/a",
        )],
        policies: vec![("x", "no-egress"), ("y", "allow-all")],
        relabels: false,
    });
    v.push(Scenario {
        name: "stacked-policies-are-a-union",
        phases: vec![phase(
            policy(
                "x",
                "b-80",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n    ports:\n    - port: 80\n",
            ) + &policy(
                "x",
                "y-81",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n    ports:\n    - port: 81\n",
            ),
            move |f| {
                !xa(f) || (f.from == "x/b" && f.is(80, "tcp")) || (f.src_ns() == "y" && f.is(81, "tcp"))
            },
        )],
        policies: vec![("x", "b-80"), ("x", "y-81")],
        relabels: false,
    });
    let from = |pod: &str| {
        policy(
            "x",
            "upd",
            &format!("  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  - from:\n    - podSelector: {{matchLabels: {{pod: {pod}}}}}\n"),
        )
    };
    v.push(Scenario {
        name: "updated-policy",
        phases: vec![
            phase(from("b"), move |f| !xa(f) || f.from == "x/b"),
            phase(from("c"), move |f| !xa(f) || f.from == "x/c"),
        ],
        policies: vec![("x", "upd")],
        relabels: false,
    });
    v.push(Scenario {
        name: "ingress-from-an-updated-namespace",
        phases: vec![
            phase(
                policy(
                    "x",
                    "ns2",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns2: updated}}\n",
                ),
                move |f| !xa(f),
            ),
            phase(namespace_yaml("y", &[("ns2", "updated")]), move |f| {
                !xa(f) || f.src_ns() == "y"
            }),
        ],
        policies: vec![("x", "ns2")],
        relabels: true,
    });
    let node_xb = ctx.nodes.get("x/b").cloned().unwrap_or_default();
    v.push(Scenario {
        name: "ingress-from-an-updated-pod",
        phases: vec![
            phase(
                policy(
                    "x",
                    "pod2",
                    "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod2: updated}}\n",
                ),
                move |f| !xa(f),
            ),
            phase(pod_yaml("x", "b", &node_xb, &[("pod2", "updated")]), move |f| {
                !xa(f) || f.from == "x/b"
            }),
        ],
        policies: vec![("x", "pod2")],
        relabels: true,
    });
    v.push(Scenario {
        name: "deny-then-delete",
        phases: vec![
            phase(policy("x", "deny", "  podSelector: {}\n"), |f| {
                f.dst_ns() != "x"
            }),
            Phase {
                apply: String::new(),
                delete: vec![("x", "deny")],
                expect: Box::new(|_| true),
            },
        ],
        policies: vec![("x", "deny")],
        relabels: false,
    });
    v
}

/// A truth table as upstream prints it: rows from, columns to, `.`
/// reachable, `X` denied, `*` where it differs from the expected.
pub fn table(
    got: &BTreeMap<Flow, bool>,
    expect: &dyn Fn(&Flow) -> bool,
    port: u16,
    proto: &str,
) -> String {
    let all = pods();
    let mut s = format!("{port}/{proto}  ");
    for to in &all {
        s += &format!("{to:>4}");
    }
    s += "\n";
    for from in &all {
        s += &format!("{from:>7}");
        for to in &all {
            let f = Flow {
                from: from.clone(),
                to: to.clone(),
                port,
                proto: if proto == "tcp" { "tcp" } else { "udp" },
            };
            let c = match got.get(&f) {
                None => "-".to_string(),
                Some(g) => {
                    let c = if *g { "." } else { "X" };
                    if *g == expect(&f) {
                        c.to_string()
                    } else {
                        format!("{c}*")
                    }
                }
            };
            s += &format!("{c:>4}");
        }
        s += "\n";
    }
    s
}
