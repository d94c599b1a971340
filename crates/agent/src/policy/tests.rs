//! The rule set against the Fake, with the tracer. The upstream truth
//! tables over 81 pairs are in `tests/policy_model.rs`; these check the
//! pieces: ranges, sets, the dispatch, incremental updates, lockdown.

use super::*;
use aksnet_nft::{diff, trace, Fake, Final, Host, Packet};
use serde_json::json;

const NODE: &str = "node-1";
const FWD: &[Hook] = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];

fn pod(ns: &str, name: &str, ip: &str, node: &str, labels: &[(&str, &str)]) -> PodInfo {
    PodInfo {
        namespace: ns.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ip: ip.parse().unwrap(),
        node: Some(node.into()),
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: L4Proto::Tcp,
            port: 8080,
        }],
    }
}

fn np(v: serde_json::Value) -> NetworkPolicy {
    let mut p: NetworkPolicy = serde_json::from_value(v).unwrap();
    p.set_defaults();
    p
}

fn input(policies: Vec<NetworkPolicy>) -> PolicyInput {
    PolicyInput {
        node: NODE.into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        pods: vec![
            pod("x", "a", "10.244.0.10", NODE, &[("pod", "a")]),
            pod("x", "b", "10.244.1.11", "node-2", &[("pod", "b")]),
            pod("y", "a", "10.244.1.12", "node-2", &[("pod", "a")]),
        ],
        namespaces: BTreeMap::new(),
        policies,
    }
}

fn fake(i: &PolicyInput) -> Fake {
    let mut f = Fake::new();
    f.apply_batch(&diff::create(&desired(i).table)).unwrap();
    f
}

fn verdict(f: &Fake, p: &Packet) -> Final {
    let host = Host {
        local: vec!["10.224.0.4".parse().unwrap()],
        masquerade_to: None,
    };
    let t = trace(&f.ruleset(), &host, p, FWD);
    println!("{t}");
    t.verdict
}

#[test]
fn ranges_are_cidr_less_except_one_element_each() {
    let b = IpBlock {
        cidr: "10.0.0.0/8".into(),
        except: vec!["10.1.0.0/16".into()],
    };
    let r = merge(block_ranges(&b));
    let vals: Vec<String> = r
        .into_iter()
        .map(range_value)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(vals, vec!["10.0.0.0/16", "10.2.0.0-10.255.255.255"]);
    // An IPv6 block never matches IPv4 traffic; 0.0.0.0/0 is one prefix.
    assert!(block_ranges(&IpBlock {
        cidr: "fd00::/8".into(),
        except: vec![]
    })
    .is_empty());
    assert_eq!(range_value((0, u32::MAX)).to_string(), "0.0.0.0/0");
    assert_eq!(range_value((7, 7)).to_string(), "0.0.0.7");
    // A pod IP inside a block merges into it (no overlapping elements);
    // adjacent ranges join.
    assert_eq!(merge(vec![(5, 5), (0, 9), (10, 12)]), vec![(0, 12)]);
}

#[test]
fn an_unselected_pod_is_open_and_a_selected_one_is_isolated_per_direction() {
    let deny = np(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}}),
    );
    let f = fake(&input(vec![deny]));
    // Ingress to x/a from y/a: dropped; egress from x/a: open (Ingress only).
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 80)),
        Final::Drop
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.0.10", 40000, "10.244.1.12", 80)),
        Final::Accept
    );
    // From the node itself, and replies: allowed.
    assert_eq!(
        verdict(&f, &Packet::tcp("10.224.0.4", 40000, "10.244.0.10", 80)),
        Final::Accept
    );
    let reply = Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 80).state(CtState::Established);
    assert_eq!(verdict(&f, &reply), Final::Accept);
}

#[test]
fn egress_only_policies_also_isolate_ingress_and_ports_default_to_tcp() {
    let p = np(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "eg", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                 "egress": [{"ports": [{"port": 80}], "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}}),
    );
    assert_eq!(p.spec.policy_types, vec!["Ingress", "Egress"]);
    let f = fake(&input(vec![p]));
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.0.10", 40000, "10.244.1.12", 80)),
        Final::Accept
    );
    assert_eq!(
        verdict(&f, &Packet::udp("10.244.0.10", 40000, "10.244.1.12", 80)),
        Final::Drop,
        "TCP only"
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.0.10", 40000, "10.244.1.12", 81)),
        Final::Drop
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.0.10", 40000, "10.244.1.11", 80)),
        Final::Drop,
        "x/b is not in y"
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.11", 40000, "10.244.0.10", 80)),
        Final::Drop,
        "ingress isolated too"
    );
}

#[test]
fn named_ports_resolve_on_the_destination_pod_and_end_port_is_a_range() {
    let p = np(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "named", "namespace": "x"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}, {"port": 9000, "endPort": 9010, "protocol": "UDP"}]}]}}),
    );
    let f = fake(&input(vec![p]));
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 8080)),
        Final::Accept
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 80)),
        Final::Drop
    );
    assert_eq!(
        verdict(&f, &Packet::udp("10.244.1.12", 40000, "10.244.0.10", 8080)),
        Final::Drop,
        "named http is TCP"
    );
    assert_eq!(
        verdict(&f, &Packet::udp("10.244.1.12", 40000, "10.244.0.10", 9010)),
        Final::Accept
    );
    assert_eq!(
        verdict(&f, &Packet::udp("10.244.1.12", 40000, "10.244.0.10", 9011)),
        Final::Drop
    );
}

#[test]
fn a_label_change_moves_set_elements_only() {
    let allow = np(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "from-b", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}}),
    );
    let before = input(vec![allow.clone()]);
    let mut after = before.clone();
    after.pods[1].labels.insert("role".into(), "client".into());
    let (a, b) = (desired(&before).table, desired(&after).table);
    let batch = diff::diff(&a, &b);
    assert_eq!(batch.len(), 1, "one element added: {batch}");
    assert!(batch.to_string().contains("10.244.1.11"), "{batch}");
    let mut f = Fake::new();
    f.apply_batch(&diff::create(&a)).unwrap();
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.11", 40000, "10.244.0.10", 80)),
        Final::Drop
    );
    f.apply_batch(&batch).unwrap();
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.11", 40000, "10.244.0.10", 80)),
        Final::Accept
    );
}

#[test]
fn a_thousand_policies_are_one_jump_each_for_their_pod_and_lockdown_drops_all() {
    let mut i = input(vec![]);
    for n in 0..1000 {
        i.policies.push(np(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": format!("p{n}"), "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                     "ingress": [{"ports": [{"port": 10000 + n}], "from": [{"namespaceSelector": {}}]}]}})));
    }
    let c = desired(&i);
    assert_eq!(c.policies, 1000);
    assert_eq!(c.isolated_ingress, 1);
    let chain = &c.table.chains[&pod_chain("10.244.0.10".parse().unwrap(), Direction::Ingress)];
    assert_eq!(chain.rules.len(), 1001);
    let f = fake(&i);
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 10999)),
        Final::Accept
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 11000)),
        Final::Drop
    );
    let mut f = Fake::new();
    f.apply_batch(&diff::create(&lockdown(&i))).unwrap();
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 10999)),
        Final::Drop
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.224.0.4", 40000, "10.244.0.10", 10999)),
        Final::Accept
    );
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.0.10", 40000, "10.244.1.12", 1)),
        Final::Accept,
        "egress not isolated"
    );
}

#[test]
fn deleting_every_policy_is_a_batch_the_fake_accepts() {
    let deny = np(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "from-b", "namespace": "x"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}], "ports": [{"port": "http"}]}]}}),
    );
    let (a, b) = (
        desired(&input(vec![deny])).table,
        desired(&input(vec![])).table,
    );
    let batch = diff::diff(&a, &b);
    println!("{batch}");
    let mut f = Fake::new();
    f.apply_batch(&diff::create(&a)).unwrap();
    f.apply_batch(&batch).unwrap();
    assert_eq!(f.table(&table_id()).unwrap(), b);
    assert_eq!(
        verdict(&f, &Packet::tcp("10.244.1.12", 40000, "10.244.0.10", 80)),
        Final::Accept
    );
}
