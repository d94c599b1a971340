//! EndpointSlices derived from Pods, and applied slices.

use std::collections::BTreeSet;

use super::*;
use crate::k8s::endpoints::{all_slices, derive, service_slices};
use crate::k8s::store::K8sState;

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
fn backends_per_port_as_kube_proxy_picks_them() {
    use crate::k8s::endpoints::backends;
    let mut st = K8sState::default();
    apply(
        &mut st,
        &[
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP, targetPort: dns}]\n".to_string(),
            pod_yaml("a", "app: web", Some("10.244.0.5"), Some(true), ""),
            pod_yaml("b", "app: web", Some("10.244.1.5"), Some(false), ""),
        ]
        .join("---\n"),
    )
    .unwrap();
    // A hand-made slice listing a again and another address.
    apply(
        &mut st,
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: extra, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: [10.244.0.5]}, {addresses: [10.225.0.9], conditions: {ready: true}}]\nports: [{name: http, port: 8080}]\n",
    )
    .unwrap();
    let s = svc(&st, "default", "web").clone();
    let b = backends(&s, &service_slices(&st, &s));
    assert_eq!(b.len(), 2);
    let http: Vec<String> = b[0]
        .1
        .iter()
        .map(|x| format!("{}:{}", x.ip, x.port))
        .collect();
    assert_eq!(
        http,
        ["10.225.0.9:8080", "10.244.0.5:8080"],
        "b is not ready; a counts once"
    );
    let dns: Vec<String> = b[1]
        .1
        .iter()
        .map(|x| format!("{}:{}", x.ip, x.port))
        .collect();
    assert_eq!(dns, ["10.244.0.5:5353"]);
    assert_eq!(b[0].1[1].node.as_deref(), Some("node-1"));

    // Nothing ready: serving, terminating endpoints keep the Service up.
    let mut st = K8sState::default();
    let mut term = pod_yaml("t", "app: web", Some("10.244.2.5"), Some(true), "");
    term = term.replace(
        "metadata: {name: t,",
        "metadata: {deletionTimestamp: '2026-12-02T13:00:00Z', name: t,",
    );
    apply(
        &mut st,
        &[
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n".to_string(),
            term,
            pod_yaml("u", "app: web", Some("10.244.3.5"), Some(false), ""),
        ]
        .join("---\n"),
    )
    .unwrap();
    let s = svc(&st, "default", "web").clone();
    let b = backends(&s, &service_slices(&st, &s));
    let ips: Vec<String> = b[0].1.iter().map(|x| x.ip.to_string()).collect();
    assert_eq!(ips, ["10.244.2.5"]);
    assert!(b[0].1[0].terminating && !b[0].1[0].ready);
}
