//! Validation rules of Services, NetworkPolicies and EndpointSlices.

use super::*;
use crate::k8s::object::{Object, ObjectId};
use crate::k8s::store::K8sState;
use crate::k8s::validate::validate;
use crate::k8s::Kind;

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
