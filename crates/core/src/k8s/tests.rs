//! The kinds' semantics end to end: manifests in, validation errors or a
//! plan out, endpoints derived from Pods.

use std::collections::BTreeSet;

use super::apply::{plan_apply, plan_delete, Action, ApplyContext, Expect, Input, Plan};
use super::documents::{parse, read, Parsed};
use super::endpoints::{all_slices, derive, service_slices};
use super::errors::ObjectError;
use super::object::{Object, ObjectId};
use super::store::K8sState;
use super::validate::validate;
use super::Kind;
use crate::spec::{ClusterNetwork, NetworkPlugin, NodePool};

fn net() -> ClusterNetwork {
    ClusterNetwork {
        network_plugin: NetworkPlugin::Kubenet,
        vnet_cidrs: vec!["10.224.0.0/12".parse().unwrap()],
        subnet_cidr: "10.224.0.0/16".parse().unwrap(),
        pod_subnet_cidr: None,
        pod_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: "10.0.0.0/16".parse().unwrap(),
        dns_service_ip: "10.0.0.10".parse().unwrap(),
        node_pools: vec![NodePool {
            name: "nodepool1".into(),
            count: 3,
            max_pods: 110,
            max_surge: Default::default(),
        }],
        route_table_limit: 400,
    }
}

fn objects(yaml: &str) -> Vec<Input> {
    parse("t.yaml", yaml)
        .unwrap()
        .into_iter()
        .map(|d| match read(d).unwrap() {
            Parsed::Object { object, source } => Input {
                object: *object,
                source,
            },
            Parsed::Ignored(i) => panic!("ignored {i:?}"),
        })
        .collect()
}

fn ctx(seed: u64) -> ApplyContext {
    ApplyContext {
        now: "2026-12-02T13:00:00Z".into(),
        seed,
    }
}

/// Applies to a state the way a store would: every write lands at a new
/// revision.
fn commit(state: &mut K8sState, plan: &Plan) {
    let rev = state
        .objects
        .values()
        .map(|s| s.mod_revision)
        .chain(state.cluster_ips.values().map(|s| s.mod_revision))
        .max()
        .unwrap_or(1)
        + 1;
    for w in &plan.writes {
        match &w.value {
            Some(v) => state.insert(&w.key, v, rev),
            None => {
                let k = super::store::parse_key(&w.key).unwrap();
                match k {
                    super::store::KeyKind::Object(id) => {
                        state.objects.remove(&id);
                    }
                    super::store::KeyKind::ClusterIp(ip) => {
                        state.cluster_ips.remove(&ip);
                    }
                    super::store::KeyKind::NodePort(p) => {
                        state.node_ports.remove(&p);
                    }
                }
            }
        }
    }
}

fn apply(state: &mut K8sState, yaml: &str) -> Result<Plan, Vec<ObjectError>> {
    let plan = plan_apply(
        state,
        &net(),
        &ctx(state.objects.len() as u64 + 1),
        objects(yaml),
    )?;
    commit(state, &plan);
    Ok(plan)
}

fn errors(state: &K8sState, yaml: &str) -> Vec<String> {
    match plan_apply(state, &net(), &ctx(1), objects(yaml)) {
        Ok(p) => panic!("accepted: {:?}", p.outcomes),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn svc<'a>(state: &'a K8sState, ns: &str, name: &str) -> &'a super::Service {
    state
        .get(&ObjectId::new(Kind::Service, ns, name))
        .and_then(Object::as_service)
        .unwrap()
}

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
        Some(super::meta::IntOrString::Int(53))
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
fn service_validation_follows_upstream() {
    let v = |spec: &str| -> Vec<String> {
        let o = objects(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec:\n{spec}"
        ));
        let mut obj = o.into_iter().next().unwrap().object;
        if let Object::Service(s) = &mut obj {
            s.metadata.namespace = Some("default".into());
            s.set_defaults();
        }
        validate(&obj).iter().map(|e| e.to_string()).collect()
    };
    let has = |errs: Vec<String>, want: &str| {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:#?}"
        );
    };
    has(
        v("  ports: [{port: 80, nodePort: 30001}]\n"),
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    );
    has(
        v("  ports: [{port: 80}, {port: 81}]\n"),
        "spec.ports[0].name: Required value",
    );
    has(
        v("  ports: [{name: a, port: 80}, {name: a, port: 81}]\n"),
        "spec.ports[1].name: Duplicate value: \"a\"",
    );
    has(
        v("  ports: [{name: a, port: 80}, {name: b, port: 80}]\n"),
        "spec.ports[1]: Duplicate value",
    );
    has(
        v("  ports: [{port: 65536}]\n"),
        "spec.ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive",
    );
    has(
        v("  ports: [{port: 80, protocol: ICMP}]\n"),
        "spec.ports[0].protocol: Unsupported value: \"ICMP\"",
    );
    has(
        v("  ports: [{port: 80, targetPort: Http_Port}]\n"),
        "spec.ports[0].targetPort: Invalid value: \"Http_Port\"",
    );
    has(
        v("  ports: [{port: 80, targetPort: 0x10000}]\n"),
        "spec.ports[0].targetPort: Invalid value: 65536",
    );
    has(
        v("  type: Nodeport\n  ports: [{port: 80}]\n"),
        "spec.type: Unsupported value: \"Nodeport\"",
    );
    has(v("  ports: []\n"), "spec.ports: Required value");
    assert!(
        v("  clusterIP: None\n").is_empty(),
        "a headless Service may have no ports"
    );
    has(
        v("  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n"),
        "may not be set to 'None' for NodePort services",
    );
    has(v("  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n"), "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services");
    has(
        v("  type: LoadBalancer\n  externalTrafficPolicy: Sometimes\n  ports: [{port: 80}]\n"),
        "spec.externalTrafficPolicy: Unsupported value",
    );
    has(v("  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n  ports: [{port: 80}]\n"), "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0");
    has(v("  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\n  ports: [{port: 80}]\n"), "timeoutSeconds: Invalid value: 86401");
    has(
        v("  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10}}\n  ports: [{port: 80}]\n"),
        "spec.sessionAffinityConfig: Forbidden: must not be set when `sessionAffinity` is None",
    );
    has(
        v("  sessionAffinity: Sticky\n  ports: [{port: 80}]\n"),
        "spec.sessionAffinity: Unsupported value: \"Sticky\"",
    );
    has(
        v("  loadBalancerSourceRanges: [10.0.0.0/8]\n  ports: [{port: 80}]\n"),
        "spec.loadBalancerSourceRanges: Forbidden",
    );
    has(v("  type: LoadBalancer\n  loadBalancerSourceRanges: [10.0.0.0/33]\n  ports: [{port: 80}]\n"), "spec.loadBalancerSourceRanges[0]: Invalid value");
    has(
        v("  type: LoadBalancer\n  healthCheckNodePort: 30100\n  ports: [{port: 80}]\n"),
        "spec.healthCheckNodePort: Invalid value: 30100: may only be set when",
    );
    has(
        v("  selector: {app: 'bad value'}\n  ports: [{port: 80}]\n"),
        "spec.selector[app]: Invalid value: \"bad value\"",
    );
    has(
        v("  clusterIPs: [10.0.0.5, fd00::5]\n  ports: [{port: 80}]\n"),
        "spec.clusterIPs: Invalid value",
    );
    has(
        v("  ipFamilyPolicy: RequireDualStack\n  ports: [{port: 80}]\n"),
        "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\"",
    );
    has(
        v("  type: ExternalName\n"),
        "spec.externalName: Required value",
    );
    assert!(v("  type: ExternalName\n  externalName: db.example.com.\n").is_empty());
    let ok = v("  type: LoadBalancer\n  externalTrafficPolicy: Local\n  sessionAffinity: ClientIP\n  loadBalancerIP: 203.0.113.7\n  loadBalancerSourceRanges: [198.51.100.0/24]\n  ports: [{name: http, port: 80, targetPort: http}]\n");
    assert!(ok.is_empty(), "{ok:#?}");
    // Service names are DNS-1035 labels (start with a letter).
    let o = objects("apiVersion: v1\nkind: Service\nmetadata: {name: 1web, namespace: default}\nspec: {ports: [{port: 80}]}\n");
    let e = validate(&o[0].object);
    assert_eq!(e[0].field, "metadata.name", "{e:?}");
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
    // Deleting a namespace deletes what is in it.
    let d = plan_delete(&st, &[ObjectId::new(Kind::Namespace, "", "shop")]).unwrap();
    assert_eq!(d.deleted.len(), 2, "{:?}", d.deleted);
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
fn network_policy_validation() {
    let v = |spec: &str| -> Vec<String> {
        let o = objects(&format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np, namespace: default}}\nspec:\n{spec}"));
        validate(&o[0].object)
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    let has = |errs: Vec<String>, want: &str| {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:#?}"
        );
    };
    has(v("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]\n"), "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`");
    has(
        v("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]\n"),
        "must be a strict subset",
    );
    has(
        v("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16}, podSelector: {}}]}]\n"),
        "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
    );
    has(
        v("  ingress: [{from: [{}]}]\n"),
        "spec.ingress[0].from[0]: Required value: must specify a peer",
    );
    has(
        v("  egress: [{to: [{ipBlock: {cidr: 10.0.0/8}}]}]\n"),
        "spec.egress[0].to[0].ipBlock.cidr: Invalid value",
    );
    has(v("  ingress: [{ports: [{port: 80, endPort: 79}]}]\n"), "spec.ingress[0].ports[0].endPort: Invalid value: 79: must be greater than or equal to `port`");
    has(v("  ingress: [{ports: [{port: http, endPort: 90}]}]\n"), "spec.ingress[0].ports[0].endPort: Forbidden: may not be specified when `port` is non-numeric");
    has(
        v("  ingress: [{ports: [{endPort: 90}]}]\n"),
        "spec.ingress[0].ports[0].port: Required value",
    );
    has(
        v("  ingress: [{ports: [{protocol: ICMP}]}]\n"),
        "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\"",
    );
    has(
        v("  podSelector: {matchExpressions: [{key: app, operator: In}]}\n"),
        "spec.podSelector.matchExpressions[0].values: Required value",
    );
    has(
        v("  policyTypes: [Ingress, Sideways]\n"),
        "spec.policyTypes[1]: Unsupported value: \"Sideways\"",
    );
    assert!(v("  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}, podSelector: {matchLabels: {app: a}}}], ports: [{port: 80, endPort: 90, protocol: SCTP}]}]\n").is_empty());
    // policyTypes defaulting: Ingress always, Egress only with egress rules.
    let mut st = K8sState::default();
    apply(&mut st, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: e}\nspec:\n  egress: [{ports: [{port: 53}]}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d}\nspec: {}\n").unwrap();
    let get = |n: &str| match st
        .get(&ObjectId::new(Kind::NetworkPolicy, "default", n))
        .unwrap()
    {
        Object::NetworkPolicy(p) => p.clone(),
        o => panic!("{o:?}"),
    };
    assert_eq!(get("e").spec.policy_types, ["Ingress", "Egress"]);
    assert_eq!(get("d").spec.policy_types, ["Ingress"]);
    assert_eq!(
        get("e").spec.egress.unwrap()[0].ports[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
}

#[test]
fn endpoint_slice_validation() {
    let v = |body: &str| -> Vec<String> {
        let o = objects(&format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s, namespace: default}}\n{body}"));
        validate(&o[0].object)
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    let has = |errs: Vec<String>, want: &str| {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:#?}"
        );
    };
    has(v("endpoints: []\n"), "addressType: Required value");
    has(v("addressType: IPv5\n"), "addressType: Unsupported value");
    has(
        v("addressType: IPv4\nendpoints: [{addresses: []}]\n"),
        "endpoints[0].addresses: Required value",
    );
    has(
        v("addressType: IPv4\nendpoints: [{addresses: [fd00::1]}]\n"),
        "endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
    );
    has(
        v("addressType: IPv4\nendpoints: [{addresses: [127.0.0.1]}]\n"),
        "loopback",
    );
    has(
        v("addressType: IPv4\nports: [{name: a, port: 1}, {name: a, port: 2}]\n"),
        "ports[1].name: Duplicate value",
    );
    let o = objects("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, namespace: default, labels: {endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}}\naddressType: IPv4\n");
    let e: Vec<String> = validate(&o[0].object)
        .iter()
        .map(|e| e.to_string())
        .collect();
    has(
        e,
        "metadata.labels[endpointslice.kubernetes.io/managed-by]: Invalid value",
    );
    assert!(v("addressType: IPv4\nendpoints: [{addresses: [10.224.0.9], conditions: {ready: true}}]\nports: [{name: http, port: 8080}]\n").is_empty());
}

fn pod_yaml(
    name: &str,
    labels: &str,
    ip: Option<&str>,
    ready: Option<bool>,
    extra_status: &str,
) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  nodeName: node-1\n  containers: [{{name: c, image: x, ports: [{{name: http, containerPort: 8080}}, {{name: dns, containerPort: 5353, protocol: UDP}}]}}]\n"
    );
    let mut status = String::new();
    if let Some(ip) = ip {
        status.push_str(&format!("  podIP: {ip}\n"));
    }
    if let Some(r) = ready {
        status.push_str(&format!(
            "  conditions: [{{type: Ready, status: \"{}\"}}]\n",
            if r { "True" } else { "False" }
        ));
    }
    status.push_str(extra_status);
    if !status.is_empty() {
        s.push_str("status:\n");
        s.push_str(&status);
    }
    s
}

#[test]
fn endpoints_are_derived_from_ready_pods() {
    let mut st = K8sState::default();
    let mut docs = vec![
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {team: t}}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP, targetPort: dns}, {name: raw, port: 9000, targetPort: 9001}]\n".to_string(),
        pod_yaml("a", "app: web", Some("10.244.0.5"), Some(true), ""),
        pod_yaml("b", "app: web", Some("10.244.1.5"), Some(false), ""),
        pod_yaml("c", "app: web", None, Some(true), ""),
        pod_yaml("d", "app: web, x: y", Some("10.244.2.5"), None, "  phase: Running\n"),
        pod_yaml("e", "app: other", Some("10.244.3.5"), Some(true), ""),
        pod_yaml("f", "app: web", Some("10.244.4.5"), Some(true), "  phase: Succeeded\n"),
    ];
    let mut term = pod_yaml("g", "app: web", Some("10.244.5.5"), Some(true), "");
    term = term.replace(
        "metadata: {name: g,",
        "metadata: {deletionTimestamp: '2026-12-02T13:00:00Z', name: g,",
    );
    docs.push(term);
    apply(&mut st, &docs.join("---\n")).unwrap();
    let s = svc(&st, "default", "web").clone();
    let slices = service_slices(&st, &s);
    assert_eq!(slices.len(), 1, "{slices:#?}");
    let sl = &slices[0];
    assert_eq!(sl.metadata.labels["kubernetes.io/service-name"], "web");
    assert_eq!(
        sl.metadata.labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        sl.metadata.labels["team"], "t",
        "the Service's labels are copied"
    );
    assert!(sl.metadata.name.starts_with("web-"));
    let ports: Vec<(String, String, i64)> = sl
        .ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap(),
                p.protocol.clone().unwrap(),
                p.port.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("http".into(), "TCP".into(), 8080),
            ("dns".into(), "UDP".into(), 5353),
            ("raw".into(), "TCP".into(), 9001)
        ]
    );
    let eps: Vec<(String, bool, bool, bool)> = sl
        .endpoints
        .iter()
        .map(|e| {
            (
                e.target_ref.as_ref().unwrap().name.clone().unwrap(),
                e.conditions.is_ready(),
                e.conditions.is_serving(),
                e.conditions.is_terminating(),
            )
        })
        .collect();
    assert_eq!(
        eps,
        [
            ("a".into(), true, true, false),
            ("b".into(), false, false, false),
            ("d".into(), true, true, false),
            ("g".into(), false, true, true),
        ],
        "no IP (c), another label (e) and a finished pod (f) are left out"
    );
    assert_eq!(sl.endpoints[0].node_name.as_deref(), Some("node-1"));
    assert_eq!(sl.endpoints[0].addresses, ["10.244.0.5"]);

    // A named targetPort a Pod lacks puts that Pod in a slice of its own ports.
    let odd = "apiVersion: v1\nkind: Pod\nmetadata: {name: h, labels: {app: web}}\nspec:\n  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8081}]}]\nstatus: {podIP: 10.244.6.5}\n";
    apply(&mut st, odd).unwrap();
    let slices = service_slices(&st, &s);
    assert_eq!(slices.len(), 2);
    let h = slices
        .iter()
        .find(|s| s.endpoints.iter().any(|e| e.addresses == ["10.244.6.5"]))
        .unwrap();
    assert_eq!(h.ports.len(), 2, "no dns port on h: {:?}", h.ports);
    assert_eq!(h.ports[0].port, Some(8081));
    // Names are stable across reads.
    assert_eq!(
        service_slices(&st, &s)
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect::<BTreeSet<_>>(),
        slices
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn services_without_selector_use_applied_slices() {
    let mut st = K8sState::default();
    apply(
        &mut st,
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {ports: [{port: 5432}]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: lonely}\nspec: {selector: {app: none}, ports: [{port: 80}]}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ext-1, labels: {kubernetes.io/service-name: ext}}\naddressType: IPv4\nendpoints: [{addresses: [10.225.0.4]}]\nports: [{port: 5432}]\n",
    )
    .unwrap();
    let ext = svc(&st, "default", "ext").clone();
    let s = service_slices(&st, &ext);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].metadata.name, "ext-1");
    assert!(derive(&ext, std::iter::empty()).is_empty());
    // A selector with no Pod yields one empty slice.
    let lonely = svc(&st, "default", "lonely").clone();
    let s = service_slices(&st, &lonely);
    assert_eq!(s.len(), 1);
    assert!(s[0].endpoints.is_empty());
    assert_eq!(all_slices(&st, None).len(), 2);
    assert_eq!(all_slices(&st, Some("other")).len(), 0);
}

#[test]
fn more_than_a_hundred_endpoints_split_into_slices() {
    let mut st = K8sState::default();
    let mut docs = vec!["apiVersion: v1\nkind: Service\nmetadata: {name: big}\nspec: {selector: {app: big}, ports: [{port: 80}]}\n".to_string()];
    for i in 0..150 {
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, labels: {{app: big}}}}\nspec: {{containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: 10.244.{}.{}}}\n",
            i / 200,
            i % 200 + 2
        ));
    }
    apply(&mut st, &docs.join("---\n")).unwrap();
    let big = svc(&st, "default", "big").clone();
    let s = service_slices(&st, &big);
    assert_eq!(
        s.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(),
        [100, 50]
    );
    assert_ne!(s[0].metadata.name, s[1].metadata.name);
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
