//! The Services table in a real kernel: nft accepts the whole rule set, and
//! its listing reads back equal to the rendering, so a restarted agent
//! adopts the table instead of rewriting it.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use aksnet_agent::services::{desired, PortInput, ServicesInput};
use aksnet_core::k8s::endpoints::Backend;
use aksnet_core::k8s::service::Service;
use aksnet_nft::{Driver, Family, Owner, Synced};

fn svc(name: &str, spec: serde_json::Value, ingress: &[&str]) -> Service {
    let mut s: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": ingress.iter().map(|i| serde_json::json!({"ip": i})).collect::<Vec<_>>()}},
    }))
    .unwrap();
    s.set_defaults();
    s
}

fn be(ip: &str, node: &str) -> Backend {
    Backend {
        ip: ip.parse().unwrap(),
        port: 8080,
        node: Some(node.into()),
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn input() -> ServicesInput {
    let services = vec![
        (
            svc(
                "web",
                serde_json::json!({"clusterIP": "10.0.0.20", "ports": [{"port": 80, "targetPort": 8080}]}),
                &[],
            ),
            vec![be("10.244.1.5", "node-2"), be("10.244.0.7", "node-1")],
        ),
        (
            svc(
                "sticky",
                serde_json::json!({"clusterIP": "10.0.0.21", "sessionAffinity": "ClientIP",
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "UDP"}]}),
                &[],
            ),
            vec![be("10.244.1.5", "node-2")],
        ),
        (
            svc(
                "lb",
                serde_json::json!({"type": "LoadBalancer", "clusterIP": "10.0.0.22",
                "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
                &["20.1.2.3"],
            ),
            vec![be("10.244.0.7", "node-1")],
        ),
        (
            svc(
                "empty",
                serde_json::json!({"type": "NodePort", "clusterIP": "10.0.0.23",
                "ports": [{"port": 80, "nodePort": 30081}]}),
                &[],
            ),
            vec![],
        ),
    ];
    ServicesInput {
        node: "node-1".into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        services: services
            .into_iter()
            .map(|(s, b)| {
                let ports = s
                    .spec
                    .ports
                    .iter()
                    .map(|p| PortInput {
                        namespace: "default".into(),
                        name: s.metadata.name.clone(),
                        port: p.clone(),
                        backends: b.clone(),
                    })
                    .collect();
                (s, ports)
            })
            .collect(),
    }
}

#[test]
fn the_services_table_is_accepted_and_adopted_after_a_restart() {
    if !aksnet_linux::testing::can_run("the Services kernel test", &["ip", "nft"]) {
        return;
    }
    let ns = common::Netns::new("svck");
    let mut d = aksnet_linux::nft::Nft::at(ns.path()).unwrap();
    let want = desired(&input());
    let mut owner = Owner::new(want.id());
    assert!(matches!(
        owner.sync(&mut d, &want).unwrap(),
        Synced::Applied(_)
    ));
    let listing = d.list(&want.id()).unwrap().unwrap();
    if !listing.matches(&want) {
        for r in &listing.rules {
            let rules = &want.chains[&r.chain].rules;
            if !rules
                .iter()
                .any(|w| aksnet_nft::listing::same_rule(Family::Ip, r, w))
            {
                eprintln!(
                    "LISTED {} {}",
                    r.chain,
                    serde_json::Value::Array(aksnet_nft::listing::normalize_stmts(
                        Family::Ip,
                        &r.expr
                    ))
                );
                for w in rules {
                    eprintln!(
                        "  WANT {}",
                        serde_json::Value::Array(aksnet_nft::listing::normalize_stmts(
                            Family::Ip,
                            &w.stmts
                                .iter()
                                .map(aksnet_nft::json::stmt)
                                .collect::<Vec<_>>()
                        ))
                    );
                }
            }
        }
        for s in &listing.sets {
            let same = s.set.as_ref().map(|x| x == &want.sets[&s.name]);
            if same != Some(true) {
                eprintln!(
                    "SET {} {:?}\n  LISTED {:?}\n  WANT {:?}",
                    s.name,
                    same,
                    s.set,
                    want.sets.get(&s.name)
                );
            }
        }
        panic!("the listing of the Services table differs from its rendering");
    }
    // A restarted agent adopts it, writing nothing.
    assert_eq!(
        Owner::new(want.id()).sync(&mut d, &want).unwrap(),
        Synced::Adopted
    );
}
