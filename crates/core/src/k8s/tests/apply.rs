//! Applying: allocation, defaults, re-apply, namespaces, immutability.

use super::*;
use crate::k8s::apply::{Action, Expect};
use crate::k8s::delete::plan_delete;
use crate::k8s::object::{Object, ObjectId};
use crate::k8s::store::K8sState;
use crate::k8s::Kind;

const WEB: &str = "
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
";

#[test]
fn services_get_cluster_ips_and_node_ports_with_the_servers_defaults() {
    let mut st = K8sState::default();
    let plan = apply(&mut st, WEB).unwrap();
    assert_eq!(plan.outcomes[0].1, Action::Created);
    let s = svc(&st, "default", "web");
    let ip = s.cluster_ipv4().unwrap();
    assert!(net().service_cidr.contains(&ip) && ip != net().dns_service_ip);
    assert_eq!(s.spec.cluster_ips, [ip.to_string()]);
    assert_eq!(s.spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(s.spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(s.spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(s.spec.ip_families, ["IPv4"]);
    let np: Vec<i64> = s.spec.ports.iter().map(|p| p.node_port.unwrap()).collect();
    assert!(np.iter().all(|p| (30000..=32767).contains(p)));
    assert_eq!(np[1], np[2], "TCP and UDP 53 share one NodePort");
    assert_ne!(np[0], np[1]);
    assert_eq!(
        s.spec.ports[1].target_port,
        Some(crate::k8s::meta::IntOrString::Int(53))
    );
    assert_eq!(st.node_ports.len(), 2);
    assert_eq!(st.cluster_ips.len(), 1);
    assert!(s.metadata.uid.is_some() && s.metadata.creation_timestamp.is_some());

    // The same manifest again changes nothing; the allocations stay.
    let again = apply(&mut st, WEB).unwrap();
    assert_eq!(again.outcomes[0].1, Action::Unchanged);
    assert!(again.is_noop());
    assert_eq!(svc(&st, "default", "web").cluster_ipv4(), Some(ip));

    // A changed port keeps the other NodePorts and frees nothing else.
    let changed = WEB.replace("port: 80,", "port: 8080,");
    let p = apply(&mut st, &changed).unwrap();
    assert_eq!(p.outcomes[0].1, Action::Configured);
    let s2 = svc(&st, "default", "web");
    assert_eq!(s2.spec.ports[1].node_port, Some(np[1]));
    assert_eq!(s2.metadata.generation, Some(2));
    assert_eq!(s2.cluster_ipv4(), Some(ip));

    // Back to ClusterIP: the NodePorts are given back.
    let cip = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
    apply(&mut st, cip).unwrap();
    assert!(st.node_ports.is_empty());
    assert_eq!(svc(&st, "default", "web").cluster_ipv4(), Some(ip));

    // Deleting gives back the ClusterIP.
    let d = plan_delete(&st, &[ObjectId::new(Kind::Service, "default", "web")]).unwrap();
    assert_eq!(d.writes.len(), 2);
    assert!(d
        .writes
        .iter()
        .all(|w| w.value.is_none() && matches!(w.expect, Expect::ModRevision(_))));
}

#[test]
fn requested_cluster_ips_and_node_ports_are_checked() {
    let mut st = K8sState::default();
    apply(
        &mut st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  type: NodePort\n  clusterIP: 10.0.0.20\n  ports: [{port: 80, nodePort: 30080}]\n",
    )
    .unwrap();
    let e = errors(
        &st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  type: NodePort\n  clusterIP: 10.0.0.20\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("Service default/b"), "{e:?}");
    assert!(e[0].contains("spec.clusterIP: Invalid value: \"10.0.0.20\": failed to allocate IP 10.0.0.20: provided IP is already allocated (to Service default/a)"), "{e:?}");
    // The clusterIP error stops the Service there; the nodePort alone:
    let e = errors(
        &st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    assert!(
        e[0].contains(
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        ),
        "{e:?}"
    );
    let e = errors(
        &st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 40000}]\n",
    );
    assert!(e[0].contains("spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"), "{e:?}");
    let e = errors(
        &st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec:\n  clusterIP: 10.1.0.5\n  ports: [{port: 80}]\n",
    );
    assert!(
        e[0].contains("spec.clusterIP: Invalid value: \"10.1.0.5\"")
            && e[0].contains("10.0.0.0/16"),
        "{e:?}"
    );
    for bad in ["10.0.0.0", "10.0.255.255"] {
        let e = errors(
            &st,
            &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: c}}\nspec:\n  clusterIP: {bad}\n  ports: [{{port: 80}}]\n"),
        );
        assert!(e[0].contains("not in the valid range"), "{bad}: {e:?}");
    }
    // The DNS address only when asked for.
    let p = apply(
        &mut st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\nspec:\n  clusterIP: 10.0.0.10\n  selector: {k8s-app: kube-dns}\n  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53}]\n",
    )
    .unwrap();
    assert_eq!(p.outcomes[0].1, Action::Created);
    // clusterIP is immutable.
    let e = errors(
        &st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  type: NodePort\n  clusterIP: 10.0.0.21\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    assert!(
        e[0].contains("spec.clusterIP: Invalid value: \"10.0.0.21\": field is immutable"),
        "{e:?}"
    );
    // Two Services of one apply asking for one NodePort: the second is refused.
    let e = errors(
        &st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 31000}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: y}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 31000}]\n",
    );
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("Service default/y") && e[0].contains("(to Service default/x)"),
        "{e:?}"
    );
}

#[test]
fn one_bad_object_fails_the_whole_apply() {
    let st = K8sState::default();
    let res = plan_apply(
        &st,
        &net(),
        &ctx(1),
        objects(&format!("{WEB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: bad}}\nspec:\n  ports: [{{port: 0}}]\n")),
    );
    let e = res.unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].object, "Service default/bad");
    assert_eq!(e[0].errors[0].field, "spec.ports[0].port");
    assert_eq!(e[0].source.as_deref(), Some("t.yaml, document 2"));
}

#[test]
fn load_balancers_get_health_check_node_ports_with_local_policy() {
    let mut st = K8sState::default();
    apply(
        &mut st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {app: web}\n  ports: [{port: 80}]\nstatus:\n  loadBalancer:\n    ingress: [{ip: 203.0.113.10}]\n",
    )
    .unwrap();
    let s = svc(&st, "default", "lb");
    let hc = s.spec.health_check_node_port.unwrap();
    assert!((30000..=32767).contains(&hc));
    assert_ne!(Some(hc), s.spec.ports[0].node_port);
    assert_eq!(st.node_ports.len(), 2);
    assert_eq!(
        s.ingress_ips(),
        ["203.0.113.10".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    // Re-applied without status, the hand-set ingress stays; switching to
    // Cluster frees the health check port.
    apply(
        &mut st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    )
    .unwrap();
    let s = svc(&st, "default", "lb");
    assert_eq!(s.spec.health_check_node_port, None);
    assert_eq!(st.node_ports.len(), 1);
    assert_eq!(s.ingress_ips().len(), 1);
    // allocateLoadBalancerNodePorts: false
    apply(
        &mut st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: lb2}\nspec:\n  type: LoadBalancer\n  allocateLoadBalancerNodePorts: false\n  ports: [{port: 80}]\n",
    )
    .unwrap();
    assert_eq!(svc(&st, "default", "lb2").spec.ports[0].node_port, None);
}

#[test]
fn namespaces_are_labelled_and_must_exist() {
    let mut st = K8sState::default();
    let e = errors(&st, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: [{name: c, image: nginx}]}\n");
    assert!(
        e[0].contains("metadata.namespace: Invalid value: \"shop\": namespace \"shop\" not found"),
        "{e:?}"
    );
    // Namespace after the Pod in the same apply is fine.
    let p = apply(
        &mut st,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop, labels: {app: a}}\nspec: {containers: [{name: c, image: nginx}]}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: t}}\n",
    )
    .unwrap();
    assert_eq!(
        p.outcomes[0].0.kind,
        Kind::Pod,
        "outcomes keep the input order"
    );
    let ns = st.get(&ObjectId::new(Kind::Namespace, "", "shop")).unwrap();
    assert_eq!(ns.meta().labels["kubernetes.io/metadata.name"], "shop");
    assert_eq!(ns.meta().labels["team"], "t");
    // A user cannot set the name label to another value.
    apply(&mut st, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {kubernetes.io/metadata.name: other}}\n").unwrap();
    let ns = st.get(&ObjectId::new(Kind::Namespace, "", "shop")).unwrap();
    assert_eq!(ns.meta().labels["kubernetes.io/metadata.name"], "shop");
    assert!(
        !ns.meta().labels.contains_key("team"),
        "labels are replaced as applied"
    );
    // A Pod in an existing namespace makes the transaction check it exists.
    let p = plan_apply(
        &st,
        &net(),
        &ctx(2),
        objects("apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: shop}\nspec: {containers: [{name: c, image: nginx}]}\n"),
    )
    .unwrap();
    assert_eq!(
        p.checks,
        [("/aksnet/k8s/namespaces/shop".to_string(), Expect::Exists)]
    );
    // kube-system exists without being stored; it cannot be deleted.
    assert!(errors(
        &st,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: kube-system}\nspec: {}\n"
    )
    .iter()
    .all(|e| !e.contains("not found")));
    assert!(plan_delete(&st, &[ObjectId::new(Kind::Namespace, "", "kube-system")]).is_err());
    // Deleting a namespace deletes what is in it, and frees its Services' allocations.
    apply(&mut st, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {type: NodePort, ports: [{port: 80}]}\n").unwrap();
    let d = plan_delete(&st, &[ObjectId::new(Kind::Namespace, "", "shop")]).unwrap();
    assert_eq!(d.deleted.len(), 3, "{:?}", d.deleted);
    let keys: Vec<&str> = d.writes.iter().map(|w| w.key.as_str()).collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("/aksnet/k8s/ipaddresses/")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("/aksnet/k8s/nodeports/")),
        "{keys:?}"
    );
    assert!(d.writes.iter().all(|w| w.value.is_none()));
}

#[test]
fn pods_and_deployments() {
    let mut st = K8sState::default();
    let e = errors(&st, "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers:\n  - name: c\n    ports: [{containerPort: 0, name: http}, {containerPort: 81, name: http}]\n");
    let all = e.join("\n");
    for want in [
        "metadata.name: Invalid value: \"Bad_Name\"",
        "spec.containers[0].image: Required value",
        "spec.containers[0].ports[0].containerPort: Invalid value: 0",
        "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
    // Port names are unique per container, not per pod (upstream).
    let two = "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers:\n  - {name: a, image: x, ports: [{name: http, containerPort: 80}]}\n  - {name: b, image: x, ports: [{name: http, containerPort: 81}]}\n";
    assert!(plan_apply(&st, &net(), &ctx(1), objects(two)).is_ok());
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\nspec:\n  nodeName: node-1\n  containers: [{name: c, image: nginx, ports: [{containerPort: 8080, name: http}]}]\nstatus: {podIP: 10.244.0.5}\n";
    apply(&mut st, pod).unwrap();
    // Labels change in place; the status stays when the manifest has none.
    let relabel = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: api}}\nspec:\n  containers: [{name: c, image: nginx:2, ports: [{containerPort: 8080, name: http}]}]\n";
    let p = apply(&mut st, relabel).unwrap();
    assert_eq!(p.outcomes[0].1, Action::Configured);
    let stored = st
        .get(&ObjectId::new(Kind::Pod, "default", "p"))
        .and_then(Object::as_pod)
        .unwrap();
    assert_eq!(stored.metadata.labels["app"], "api");
    assert_eq!(stored.pod_ipv4(), Some("10.244.0.5".parse().unwrap()));
    assert_eq!(stored.spec.node_name.as_deref(), Some("node-1"));
    let e = errors(&st, &relabel.replace("8080", "9090"));
    assert!(
        e[0].contains("spec: Forbidden: pod updates may not change fields"),
        "{e:?}"
    );

    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: nginx}]}\n";
    apply(&mut st, dep).unwrap();
    let p = apply(&mut st, &dep.replace("replicas: 3", "replicas: 5")).unwrap();
    assert_eq!(p.outcomes[0].1, Action::Configured);
    match st
        .get(&ObjectId::new(Kind::Deployment, "default", "web"))
        .unwrap()
    {
        Object::Deployment(d) => {
            assert_eq!(d.replicas(), 5);
            assert_eq!(d.metadata.generation, Some(2));
        }
        o => panic!("{o:?}"),
    }
    let e = errors(
        &st,
        &dep.replace("matchLabels: {app: web}", "matchLabels: {app: other}"),
    );
    assert!(e[0].contains("spec.template.metadata.labels: Invalid value: \"app=web\": `selector` does not match template `labels`"), "{e:?}");
    let e = errors(
        &st,
        &dep.replace(
            "matchLabels: {app: web}",
            "matchLabels: {app: web}, matchExpressions: [{key: app, operator: Exists}]",
        ),
    );
    assert!(
        e[0].contains("spec.selector") && e[0].contains("field is immutable"),
        "{e:?}"
    );
    let e = errors(
        &st,
        &dep.replace("  selector: {matchLabels: {app: web}}\n", ""),
    );
    assert!(e[0].contains("spec.selector: Required value"), "{e:?}");
    let e = errors(&st, &dep.replace("{matchLabels: {app: web}}", "{}"));
    assert!(
        e[0].contains("empty selector is invalid for deployment"),
        "{e:?}"
    );
}

#[test]
fn round_trip_keeps_unknown_fields() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  ownerReferences: []\nspec:\n  strategy: {type: Recreate}\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      volumes: [{name: v, emptyDir: {}}]\n      containers:\n      - name: c\n        image: nginx\n        env: [{name: A, value: b}]\n        resources: {limits: {cpu: 100m}}\n        ports: [{containerPort: 80, name: http}]\n";
    let mut st = K8sState::default();
    apply(&mut st, yaml).unwrap();
    let v = st
        .get(&ObjectId::new(Kind::Deployment, "default", "web"))
        .unwrap()
        .to_value();
    assert_eq!(v["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(v["spec"]["template"]["spec"]["volumes"][0]["name"], "v");
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "b"
    );
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "100m"
    );
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    assert_eq!(v["metadata"]["ownerReferences"], serde_json::json!([]));
    assert_eq!(v["spec"]["replicas"], 1);
}

mod invariants {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::k8s::store::Allocation;

    fn manifest(i: usize, variant: u8) -> String {
        let spec = match variant {
            0 => "ports: [{port: 80}]",
            1 => "type: NodePort, ports: [{name: a, port: 80}, {name: b, port: 81, protocol: UDP}, {name: c, port: 81}]",
            2 => "type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 443}]",
            3 => "type: LoadBalancer, ports: [{port: 443}, {name: x, port: 8443}]",
            4 => "clusterIP: None, selector: {app: x}",
            _ => "type: ExternalName, externalName: db.example.com",
        };
        let spec = if variant == 3 {
            spec.replace("{port: 443}", "{name: w, port: 443}")
        } else {
            spec.to_string()
        };
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{{spec}}}\n")
    }

    /// Every Service holds exactly the allocation keys its spec names, and
    /// every allocation key names a Service that holds it.
    fn check(st: &K8sState) {
        let mut ips: BTreeMap<std::net::Ipv4Addr, Allocation> = BTreeMap::new();
        let mut ports: BTreeMap<u16, Allocation> = BTreeMap::new();
        for o in st.of_kind(Kind::Service, None) {
            let s = o.as_service().unwrap();
            let owner = Allocation {
                namespace: s.metadata.namespace.clone().unwrap(),
                service: s.metadata.name.clone(),
            };
            if let Some(ip) = s.cluster_ipv4() {
                assert!(ips.insert(ip, owner.clone()).is_none(), "{ip} held twice");
            }
            let mut mine: Vec<u16> = s
                .spec
                .ports
                .iter()
                .filter_map(|p| p.node_port)
                .map(|p| p as u16)
                .collect();
            mine.extend(s.spec.health_check_node_port.map(|p| p as u16));
            mine.sort();
            mine.dedup();
            for p in mine {
                assert!(
                    ports.insert(p, owner.clone()).is_none(),
                    "NodePort {p} held twice"
                );
            }
        }
        let stored_ips: BTreeMap<_, _> = st
            .cluster_ips
            .iter()
            .map(|(k, v)| (*k, v.value.clone().unwrap()))
            .collect();
        let stored_ports: BTreeMap<_, _> = st
            .node_ports
            .iter()
            .map(|(k, v)| (*k, v.value.clone().unwrap()))
            .collect();
        assert_eq!(stored_ips, ips);
        assert_eq!(stored_ports, ports);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn allocation_keys_always_match_the_services(
            ops in proptest::collection::vec((0..6usize, 0..6u8, any::<bool>()), 1..40)
        ) {
            let mut st = K8sState::default();
            let mut net = net();
            net.service_cidr = "10.0.0.0/29".parse().unwrap();
            net.dns_service_ip = "10.0.0.3".parse().unwrap();
            for (n, (i, variant, delete)) in ops.into_iter().enumerate() {
                if delete {
                    let id = ObjectId::new(Kind::Service, "default", &format!("s{i}"));
                    let plan = plan_delete(&st, &[id]).unwrap();
                    let as_apply = Plan { writes: plan.writes, ..Default::default() };
                    commit(&mut st, &as_apply);
                } else {
                    // A full CIDR is a legitimate refusal; the state must not change then.
                    if let Ok(plan) = plan_apply(&st, &net, &ctx(n as u64), objects(&manifest(i, variant))) {
                        commit(&mut st, &plan);
                    }
                }
                check(&st);
            }
        }
    }
}
