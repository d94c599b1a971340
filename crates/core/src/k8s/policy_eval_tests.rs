//! The upstream conformance model (test/e2e/network/netpol, cyclonus):
//! namespaces x, y, z labelled `ns=<name>`, pods a, b, c in each labelled
//! `pod=<name>`, serving 80 and 81 over TCP and UDP on named ports
//! `serve-<port>-<proto>`. Each scenario is an expected truth table over the
//! 81 ordered pairs (the self pairs are always reachable: a pod cannot block
//! itself), built the way upstream's `Reachability` is: default, then
//! `expect_all_ingress` / `expect_all_egress` / `expect_peer`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::*;
use crate::k8s::store::Stored;
use crate::k8s::{Kind, Object};

const NS: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

/// x/a, x/b, …, z/c in this order.
fn all() -> Vec<String> {
    NS.iter()
        .flat_map(|n| PODS.iter().map(move |p| format!("{n}/{p}")))
        .collect()
}

fn ip_of(id: &str) -> Ipv4Addr {
    let (n, p) = id.split_once('/').unwrap();
    let i = NS.iter().position(|x| *x == n).unwrap() as u8;
    // Pods outside the model (extra ones a test adds) get .200.
    let j = PODS.iter().position(|x| *x == p).map_or(190, |j| j as u8);
    // Pods of namespace x on node-1, y on node-2, z on node-3.
    Ipv4Addr::new(10, 244, i, 10 + j)
}

fn node_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 224, 0, 4 + i)
}

fn pod_json(ns: &str, name: &str, labels: Value) -> Value {
    let i = NS.iter().position(|x| *x == ns).unwrap_or(0) as u8;
    let ports: Vec<Value> = [80, 81]
        .iter()
        .flat_map(|p| {
            ["TCP", "UDP"].iter().map(move |proto| {
                json!({"name": format!("serve-{p}-{}", proto.to_lowercase()), "containerPort": p, "protocol": proto})
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": format!("node-{}", i + 1), "containers": [{"name": "c", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip_of(&format!("{ns}/{name}")).to_string(),
            "hostIP": node_ip(i).to_string()}})
}

struct Model {
    state: K8sState,
}

impl Model {
    fn new() -> Self {
        let mut m = Model {
            state: K8sState::default(),
        };
        for n in NS {
            m.put(
                Kind::Namespace,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"ns": n}}}),
            );
            for p in PODS {
                m.put(Kind::Pod, pod_json(n, p, json!({"pod": p})));
            }
        }
        m
    }

    fn put(&mut self, kind: Kind, v: Value) {
        let o = Object::from_value(kind, v).unwrap();
        self.state.objects.insert(
            o.id(),
            Stored {
                value: o,
                mod_revision: 1,
            },
        );
    }

    fn policy(&mut self, ns: &str, name: &str, spec: Value) -> &mut Self {
        self.put(
            Kind::NetworkPolicy,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}),
        );
        self
    }

    fn delete_policy(&mut self, ns: &str, name: &str) {
        self.state
            .objects
            .remove(&crate::k8s::ObjectId::new(Kind::NetworkPolicy, ns, name));
    }

    fn relabel_pod(&mut self, id: &str, labels: Value) {
        let (n, p) = id.split_once('/').unwrap();
        self.put(Kind::Pod, pod_json(n, p, labels));
    }

    fn relabel_ns(&mut self, ns: &str, labels: Value) {
        self.put(
            Kind::Namespace,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        );
    }

    fn view(&self) -> PolicyView<'_> {
        let nodes: BTreeMap<String, Ipv4Addr> = (0..3)
            .map(|i| (format!("node-{}", i + 1), node_ip(i)))
            .collect();
        PolicyView::new(&self.state).with_node_ips(nodes)
    }

    /// The probed-by-policy truth table on one port.
    fn table(&self, port: u16, proto: &str) -> Table {
        let v = self.view();
        let mut t = Table::new(false);
        for (i, f) in all().iter().enumerate() {
            for (j, to) in all().iter().enumerate() {
                t.0[i][j] = v
                    .evaluate(&Flow::new(ip_of(f), ip_of(to), port, proto))
                    .allowed;
            }
        }
        t
    }
}

/// Rows from, columns to, in [`all`]'s order.
#[derive(Clone, PartialEq, Eq)]
struct Table([[bool; 9]; 9]);

fn idx(id: &str) -> usize {
    all().iter().position(|x| x == id).unwrap()
}

impl Table {
    fn new(default: bool) -> Self {
        let mut t = Table([[default; 9]; 9]);
        for i in 0..9 {
            t.0[i][i] = true;
        }
        t
    }

    fn all_ingress(mut self, to: &str, ok: bool) -> Self {
        let j = idx(to);
        for i in 0..9 {
            if i != j {
                self.0[i][j] = ok;
            }
        }
        self
    }

    fn all_egress(mut self, from: &str, ok: bool) -> Self {
        let i = idx(from);
        for j in 0..9 {
            if i != j {
                self.0[i][j] = ok;
            }
        }
        self
    }

    fn peer(mut self, from: &str, to: &str, ok: bool) -> Self {
        self.0[idx(from)][idx(to)] = ok;
        self
    }

    fn ns_ingress(mut self, ns: &str, ok: bool) -> Self {
        for p in PODS {
            self = self.all_ingress(&format!("{ns}/{p}"), ok);
        }
        self
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f)?;
        write!(f, "    ")?;
        for c in all() {
            write!(f, "{c} ")?;
        }
        writeln!(f)?;
        for (i, r) in all().iter().enumerate() {
            write!(f, "{r} ")?;
            for j in 0..9 {
                write!(f, "{}   ", if self.0[i][j] { '.' } else { 'X' })?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn check(m: &Model, port: u16, proto: &str, want: Table) {
    assert_eq!(m.table(port, proto), want, "{port}/{proto}");
}

#[test]
fn no_policy_everything_reachable() {
    let m = Model::new();
    for (p, proto) in [(80, "TCP"), (81, "UDP")] {
        check(&m, p, proto, Table::new(true));
    }
    let v = m.view();
    let r = v.evaluate(&Flow::new(ip_of("x/a"), ip_of("y/b"), 80, "tcp"));
    assert_eq!(r.egress.as_ref().unwrap().reason, Reason::NotIsolated);
    assert_eq!(r.ingress.as_ref().unwrap().pod, "y/b");
}

#[test]
fn default_deny_ingress() {
    let mut m = Model::new();
    m.policy("x", "deny-ingress", json!({"podSelector": {}}));
    let want = Table::new(true).ns_ingress("x", false);
    check(&m, 80, "TCP", want.clone());
    check(&m, 81, "UDP", want);
    let r = m
        .view()
        .evaluate(&Flow::new(ip_of("y/a"), ip_of("x/b"), 80, "TCP"));
    let ing = r.ingress.unwrap();
    assert_eq!(ing.reason, Reason::NoRuleAllows);
    assert_eq!(ing.isolated_by, vec!["x/deny-ingress"]);
    assert!(ing.message.contains("no rule allows"), "{}", ing.message);
}

#[test]
fn default_deny_all() {
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let mut want = Table::new(true).ns_ingress("x", false);
    for p in PODS {
        want = want.all_egress(&format!("x/{p}"), false);
    }
    check(&m, 80, "TCP", want);
}

#[test]
fn allow_by_pod_selector_in_the_server_namespace() {
    let mut m = Model::new();
    m.policy(
        "x",
        "allow-b",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    // A podSelector-only peer is namespace-local: y/b and z/b are denied.
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("x/b", "x/a", true);
    check(&m, 80, "TCP", want);
    let r = m
        .view()
        .evaluate(&Flow::new(ip_of("x/b"), ip_of("x/a"), 80, "TCP"));
    assert_eq!(
        r.ingress.unwrap().allowed_by,
        vec![RuleRef {
            policy: "x/allow-b".into(),
            direction: Direction::Ingress,
            rule: 0
        }]
    );
}

#[test]
fn allow_from_all_namespaces_and_any_pod_selector() {
    let mut m = Model::new();
    m.policy(
        "x",
        "all-ns",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    );
    check(&m, 80, "TCP", Table::new(true));
    // An empty podSelector peer: every pod of the policy's namespace only.
    let mut m = Model::new();
    m.policy(
        "x",
        "any-pod",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("x/b", "x/a", true)
        .peer("x/c", "x/a", true);
    check(&m, 80, "TCP", want);
}

#[test]
fn namespace_selector_match_labels_and_expressions() {
    let only_y = || {
        let mut t = Table::new(true).all_ingress("x/a", false);
        for p in PODS {
            t = t.peer(&format!("y/{p}"), "x/a", true);
        }
        t
    };
    for sel in [
        json!({"matchLabels": {"ns": "y"}}),
        json!({"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]}),
        json!({"matchLabels": {"kubernetes.io/metadata.name": "y"}}),
        json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["y"]}]}),
    ] {
        let mut m = Model::new();
        m.policy(
            "x",
            "from-y",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": sel.clone()}]}]}),
        );
        check(&m, 80, "TCP", only_y());
    }
    // NotIn x: y and z; a pod selector with matchExpressions (pod In [b, c]).
    let mut m = Model::new();
    m.policy(
        "x",
        "not-x",
        json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a"]}]},
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("y/a", "x/a", true)
        .peer("y/b", "x/a", true)
        .peer("y/c", "x/a", true)
        .peer("z/a", "x/a", true)
        .peer("z/b", "x/a", true)
        .peer("z/c", "x/a", true);
    check(&m, 80, "TCP", want);
}

#[test]
fn pod_selector_or_namespace_selector_vs_and() {
    // Two peers: OR.
    let mut m = Model::new();
    m.policy(
        "x",
        "or",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}},
                                   {"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("x/b", "x/a", true)
        .peer("y/a", "x/a", true)
        .peer("y/b", "x/a", true)
        .peer("y/c", "x/a", true);
    check(&m, 80, "TCP", want);
    // One peer with both: AND.
    let mut m = Model::new();
    m.policy(
        "x",
        "and",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                                    "namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("y/b", "x/a", true);
    check(&m, 80, "TCP", want);
    // Multiple pod+ns selector peers: (pod=b, ns=y) or (pod=c, ns=z).
    let mut m = Model::new();
    m.policy(
        "x",
        "multi",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [
                {"podSelector": {"matchLabels": {"pod": "b"}}, "namespaceSelector": {"matchLabels": {"ns": "y"}}},
                {"podSelector": {"matchLabels": {"pod": "c"}}, "namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("y/b", "x/a", true)
        .peer("z/c", "x/a", true);
    check(&m, 80, "TCP", want);
}

#[test]
fn ports_protocol_default_and_end_port() {
    let mut m = Model::new();
    m.policy(
        "x",
        "only-81",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": 81}]}]}),
    );
    let closed = Table::new(true).all_ingress("x/a", false);
    check(&m, 80, "TCP", closed.clone());
    check(&m, 81, "TCP", Table::new(true));
    // The protocol defaults to TCP: UDP 81 is not allowed (one port entry
    // must not widen to every protocol; libcalico-go#1373).
    check(&m, 81, "UDP", closed.clone());

    // UDP-only does not allow TCP; SCTP-only still isolates TCP.
    let mut m = Model::new();
    m.policy(
        "x",
        "udp-81",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"protocol": "UDP", "port": 81}]}]}),
    );
    check(&m, 81, "UDP", Table::new(true));
    check(&m, 81, "TCP", closed.clone());
    let mut m = Model::new();
    m.policy(
        "x",
        "sctp",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"protocol": "SCTP"}]}]}),
    );
    check(&m, 80, "TCP", closed.clone());
    check(&m, 80, "SCTP", Table::new(true));

    // Any port of one protocol.
    let mut m = Model::new();
    m.policy(
        "x",
        "any-udp",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"protocol": "UDP"}]}]}),
    );
    check(&m, 80, "UDP", Table::new(true));
    check(&m, 81, "UDP", Table::new(true));
    check(&m, 80, "TCP", closed.clone());

    // endPort, inclusive.
    let mut m = Model::new();
    m.policy(
        "x",
        "range",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": 81, "endPort": 90}]}]}),
    );
    check(&m, 80, "TCP", closed.clone());
    check(&m, 81, "TCP", Table::new(true));
    let mut m = Model::new();
    m.policy(
        "x",
        "range2",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": 53, "endPort": 80}]}]}),
    );
    check(&m, 80, "TCP", Table::new(true));
    check(&m, 81, "TCP", closed);
}

#[test]
fn named_ports() {
    let mut m = Model::new();
    m.policy(
        "x",
        "named",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
    );
    let closed = Table::new(true).all_ingress("x/a", false);
    check(&m, 80, "TCP", Table::new(true));
    check(&m, 81, "TCP", closed.clone());
    check(&m, 80, "UDP", closed.clone());
    // A protocol that does not match the named port: matches nothing
    // (cyclonus' pathological case).
    let mut m = Model::new();
    m.policy(
        "x",
        "mismatch",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"protocol": "UDP", "port": "serve-80-tcp"}]}]}),
    );
    check(&m, 80, "TCP", closed.clone());
    check(&m, 80, "UDP", closed.clone());
    // Ingress from a namespace on one named port.
    let mut m = Model::new();
    m.policy(
        "x",
        "ns-named",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}],
                         "from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
    );
    let mut want = closed.clone();
    for p in PODS {
        want = want.peer(&format!("y/{p}"), "x/a", true);
    }
    check(&m, 81, "UDP", want);
    check(&m, 81, "TCP", closed);
}

#[test]
fn egress_named_port_resolves_on_the_peer() {
    let mut m = Model::new();
    // z/b serves 81/TCP under another name: the egress named port does not
    // cover it.
    m.put(Kind::Pod, {
        let mut p = pod_json("z", "b", json!({"pod": "b"}));
        p["spec"]["containers"][0]["ports"] =
            json!([{"name": "other", "containerPort": 81, "protocol": "TCP"}]);
        p
    });
    m.policy(
        "x",
        "egress-named",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
    );
    let want = Table::new(true)
        .all_egress("x/a", false)
        .peer("x/a", "x/b", true)
        .peer("x/a", "x/c", true)
        .peer("x/a", "y/a", true)
        .peer("x/a", "y/b", true)
        .peer("x/a", "y/c", true)
        .peer("x/a", "z/a", true)
        .peer("x/a", "z/c", true);
    check(&m, 81, "TCP", want);
    check(&m, 80, "TCP", Table::new(true).all_egress("x/a", false));
    // A named port never matches a destination that is no pod.
    let v = m.view();
    let out = v.evaluate(&Flow::new(
        ip_of("x/a"),
        "203.0.113.10".parse().unwrap(),
        81,
        "TCP",
    ));
    assert!(!out.allowed && out.ingress.is_none());
}

#[test]
fn stacked_policies_union_and_allow_all_precedence() {
    let mut m = Model::new();
    m.policy(
        "x",
        "allow-81",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 81}]}]}),
    );
    m.policy(
        "x",
        "allow-80",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 80}]}]}),
    );
    check(&m, 80, "TCP", Table::new(true));
    check(&m, 81, "TCP", Table::new(true));
    // Deny all + allow all ingress: allowed.
    let mut m = Model::new();
    m.policy("x", "deny", json!({"podSelector": {}}));
    m.policy("x", "allow", json!({"podSelector": {}, "ingress": [{}]}));
    check(&m, 80, "TCP", Table::new(true));
    // Rule indexes: the second rule of a policy allows.
    let mut m = Model::new();
    m.policy(
        "x",
        "two-rules",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": 9999}]},
                        {"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]}),
    );
    let r = m
        .view()
        .evaluate(&Flow::new(ip_of("x/c"), ip_of("x/a"), 80, "TCP"));
    let ing = r.ingress.unwrap();
    assert_eq!(ing.allowed_by.len(), 1);
    assert_eq!(ing.allowed_by[0].rule, 1);
    assert!(
        ing.message.contains("x/two-rules ingress rule 1"),
        "{}",
        ing.message
    );
}

#[test]
fn egress_policies() {
    // Deny egress of x/a.
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-egress",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]}),
    );
    check(&m, 80, "TCP", Table::new(true).all_egress("x/a", false));
    // An egress section without policyTypes ALSO isolates ingress.
    let mut m = Model::new();
    m.policy(
        "x",
        "egress-to-y",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
    );
    let want = Table::new(true)
        .all_egress("x/a", false)
        .all_ingress("x/a", false)
        .peer("x/a", "y/a", true)
        .peer("x/a", "y/b", true)
        .peer("x/a", "y/c", true);
    check(&m, 80, "TCP", want);
    // An empty egress list with no policyTypes: only ingress isolation.
    let mut m = Model::new();
    m.policy(
        "x",
        "empty-egress",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "egress": []}),
    );
    check(&m, 80, "TCP", Table::new(true).all_ingress("x/a", false));
    // Client-side egress deny even if the server allows.
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-egress",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]}),
    );
    m.policy(
        "y",
        "allow-all",
        json!({"podSelector": {}, "ingress": [{}]}),
    );
    let r = m
        .view()
        .evaluate(&Flow::new(ip_of("x/a"), ip_of("y/b"), 80, "TCP"));
    assert!(!r.allowed);
    assert!(r.ingress.as_ref().unwrap().allowed);
    assert_eq!(r.egress.as_ref().unwrap().reason, Reason::NoRuleAllows);
}

#[test]
fn ingress_and_egress_together() {
    let mut m = Model::new();
    m.policy(
        "x",
        "both",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .all_egress("x/a", false)
        .peer("x/b", "x/a", true)
        .peer("x/a", "x/c", true);
    check(&m, 80, "TCP", want);
}

#[test]
fn ip_block_and_except_match_pod_addresses() {
    // Egress to y/b's address only.
    let mut m = Model::new();
    m.policy(
        "x",
        "to-cidr",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": format!("{}/32", ip_of("y/b"))}}]}]}),
    );
    let want = Table::new(true)
        .all_egress("x/a", false)
        .peer("x/a", "y/b", true);
    check(&m, 80, "TCP", want);
    // The pod CIDR except y/b.
    let mut m = Model::new();
    m.policy(
        "x",
        "except",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [format!("{}/32", ip_of("y/b"))]}}]}]}),
    );
    let except = Table::new(true).peer("x/a", "y/b", false);
    check(&m, 80, "TCP", except.clone());
    // An address excepted by one policy but allowed by another is allowed.
    m.policy(
        "x",
        "allow-yb",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": format!("{}/32", ip_of("y/b"))}}]}]}),
    );
    check(&m, 80, "TCP", Table::new(true));
    // Ingress by CIDR: the y namespace's pods (10.244.1.0/24).
    let mut m = Model::new();
    m.policy(
        "x",
        "from-cidr",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]}]}),
    );
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("y/a", "x/a", true)
        .peer("y/b", "x/a", true)
        .peer("y/c", "x/a", true);
    check(&m, 80, "TCP", want);
    // ipBlock allows external addresses; selectors never do.
    let v = m.view();
    let ext: Ipv4Addr = "10.244.1.200".parse().unwrap();
    assert!(v.evaluate(&Flow::new(ext, ip_of("x/a"), 80, "TCP")).allowed);
    let mut m = Model::new();
    m.policy(
        "x",
        "all-ns",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    );
    let r = m.view().evaluate(&Flow::new(
        "10.225.0.4".parse().unwrap(),
        ip_of("x/a"),
        80,
        "TCP",
    ));
    assert!(!r.allowed && r.egress.is_none());
}

#[test]
fn updates_of_policies_and_labels() {
    let mut m = Model::new();
    m.policy(
        "x",
        "from-b",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let base = Table::new(true)
        .all_ingress("x/a", false)
        .peer("x/b", "x/a", true);
    check(&m, 80, "TCP", base.clone());
    // x/c relabelled pod=b: now allowed.
    m.relabel_pod("x/c", json!({"pod": "b"}));
    check(&m, 80, "TCP", base.clone().peer("x/c", "x/a", true));
    m.relabel_pod("x/c", json!({"pod": "c"}));
    // The policy updated: from namespace labelled team=blue.
    m.policy(
        "x",
        "from-b",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]}),
    );
    check(&m, 80, "TCP", Table::new(true).all_ingress("x/a", false));
    // Namespace z gets the label: its pods are allowed.
    m.relabel_ns("z", json!({"ns": "z", "team": "blue"}));
    let want = Table::new(true)
        .all_ingress("x/a", false)
        .peer("z/a", "x/a", true)
        .peer("z/b", "x/a", true)
        .peer("z/c", "x/a", true);
    check(&m, 80, "TCP", want);
    // Deny ingress to an updated pod: x/b relabelled pod=a is now selected.
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-a",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]}),
    );
    m.relabel_pod("x/b", json!({"pod": "a"}));
    check(
        &m,
        80,
        "TCP",
        Table::new(true)
            .all_ingress("x/a", false)
            .all_ingress("x/b", false),
    );
    // Deny, then delete: back to everything.
    m.delete_policy("x", "deny-a");
    check(&m, 80, "TCP", Table::new(true));
}

#[test]
fn own_node_and_external_sources() {
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let v = m.view();
    // From x/a's own node (node-1): always allowed; from another node: denied.
    let r = v.evaluate(&Flow::new(node_ip(0), ip_of("x/a"), 80, "TCP"));
    assert!(r.allowed && r.egress.is_none());
    assert_eq!(r.ingress.as_ref().unwrap().reason, Reason::OwnNode);
    let r = v.evaluate(&Flow::new(node_ip(1), ip_of("x/a"), 80, "TCP"));
    assert!(!r.allowed);
    // Every address of the node counts (kubenet: its bridge's .1).
    let bridge: Ipv4Addr = "10.244.0.1".parse().unwrap();
    assert!(
        !v.evaluate(&Flow::new(bridge, ip_of("x/a"), 80, "TCP"))
            .allowed
    );
    let v2 = PolicyView::new(&m.state)
        .with_node_addresses([("node-1".to_string(), vec![node_ip(0), bridge])].into());
    let r = v2.evaluate(&Flow::new(bridge, ip_of("x/a"), 80, "TCP"));
    assert_eq!(r.ingress.unwrap().reason, Reason::OwnNode);
    // A pod can reach itself.
    let r = v.evaluate(&Flow::new(ip_of("x/a"), ip_of("x/a"), 80, "TCP"));
    assert!(r.allowed);
    assert_eq!(r.ingress.as_ref().unwrap().reason, Reason::SamePod);
    // Egress to the internet: denied by deny-all, allowed by 0.0.0.0/0.
    let inet: Ipv4Addr = "203.0.113.10".parse().unwrap();
    assert!(
        !v.evaluate(&Flow::new(ip_of("x/a"), inet, 443, "TCP"))
            .allowed
    );
    m.policy(
        "x",
        "internet",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}),
    );
    let r = m
        .view()
        .evaluate(&Flow::new(ip_of("x/a"), inet, 443, "TCP"));
    assert!(r.allowed, "{r:?}");
    assert_eq!(r.egress.unwrap().allowed_by[0].policy, "x/internet");
}

#[test]
fn policies_of_other_namespaces_do_not_apply_and_stored_defaults_agree() {
    let mut m = Model::new();
    m.policy(
        "y",
        "deny",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}}),
    );
    check(&m, 80, "TCP", Table::new(true).all_ingress("y/a", false));
    // The same policy with the API server's defaults written out.
    let mut np: NetworkPolicy =
        serde_json::from_value(json!({"apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy", "metadata": {"name": "e", "namespace": "x"},
        "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 80}]}]}}))
        .unwrap();
    assert_eq!(
        policy_types(&np),
        vec![Direction::Ingress, Direction::Egress]
    );
    np.set_defaults();
    assert_eq!(
        policy_types(&np),
        vec![Direction::Ingress, Direction::Egress]
    );
    assert_eq!(
        np.spec.egress.as_ref().unwrap()[0].ports[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
}

#[test]
fn host_network_and_finished_pods_are_not_selected() {
    let mut m = Model::new();
    let mut p = pod_json("x", "h", json!({"pod": "h"}));
    p["spec"]["hostNetwork"] = json!(true);
    p["status"]["podIP"] = json!(node_ip(0).to_string());
    m.put(Kind::Pod, p);
    let mut done = pod_json("x", "d", json!({"pod": "d"}));
    done["status"]["phase"] = json!("Succeeded");
    done["status"]["podIP"] = json!("10.244.0.99");
    m.put(Kind::Pod, done);
    let v = m.view();
    assert_eq!(v.pods().len(), 9);
    assert!(v.pod_by_ip(node_ip(0)).is_none());
    assert!(v.pod("x", "a").is_some());
}

#[test]
fn egress_by_namespace_and_to_a_pod_of_another_namespace() {
    // Deny egress of the whole namespace x (deny egress "for the whole ns").
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-egress-ns",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let mut want = Table::new(true);
    for p in PODS {
        want = want.all_egress(&format!("x/{p}"), false);
    }
    check(&m, 80, "TCP", want);
    // x/a may reach y/b only (podSelector AND namespaceSelector in `to`).
    let mut m = Model::new();
    m.policy(
        "x",
        "to-yb",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                "podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let want = Table::new(true)
        .all_egress("x/a", false)
        .peer("x/a", "y/b", true);
    check(&m, 80, "TCP", want);
    let r = m
        .view()
        .evaluate(&Flow::new(ip_of("x/a"), ip_of("y/b"), 80, "TCP"));
    assert_eq!(
        r.egress.unwrap().allowed_by,
        vec![RuleRef {
            policy: "x/to-yb".into(),
            direction: Direction::Egress,
            rule: 0
        }]
    );
    // Allow-all egress takes precedence over a deny-all egress.
    let mut m = Model::new();
    m.policy(
        "x",
        "deny-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    m.policy(
        "x",
        "allow-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
    );
    check(&m, 80, "TCP", Table::new(true));
}

#[test]
fn ingress_and_egress_are_independent_and_both_needed() {
    // x/a may only send to y; y/b only receives from x/a: x/a → y/b is the
    // one pair through both; x/a → y/c needs no ingress allow.
    let mut m = Model::new();
    m.policy(
        "x",
        "a-to-y",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
    );
    m.policy(
        "y",
        "b-from-xa",
        json!({"podSelector": {"matchLabels": {"pod": "b"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}},
                                   "podSelector": {"matchLabels": {"pod": "a"}}}]}]}),
    );
    let want = Table::new(true)
        .all_egress("x/a", false)
        .peer("x/a", "y/a", true)
        .peer("x/a", "y/c", true)
        .all_ingress("y/b", false)
        .peer("x/a", "y/b", true);
    check(&m, 80, "TCP", want);
    check(
        &m,
        81,
        "UDP",
        Table::new(true)
            .all_egress("x/a", false)
            .peer("x/a", "y/a", true)
            .peer("x/a", "y/c", true)
            .all_ingress("y/b", false)
            .peer("x/a", "y/b", true),
    );
}

#[test]
fn a_namespace_the_store_does_not_hold_has_its_name_label() {
    // Pods in a namespace without a stored Namespace (the lab's default)
    // still match kubernetes.io/metadata.name.
    let mut m = Model::new();
    let mut p = pod_json("x", "d", json!({"pod": "d"}));
    p["metadata"]["namespace"] = json!("default");
    p["status"]["podIP"] = json!("10.244.0.99");
    m.put(Kind::Pod, p);
    m.policy(
        "x",
        "from-default",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}]}]}),
    );
    let v = m.view();
    let src: Ipv4Addr = "10.244.0.99".parse().unwrap();
    assert!(v.evaluate(&Flow::new(src, ip_of("x/a"), 80, "TCP")).allowed);
    assert!(
        !v.evaluate(&Flow::new(ip_of("y/a"), ip_of("x/a"), 80, "TCP"))
            .allowed
    );
}
