//! `aksnet get` tables, column for column as kubectl prints them (plain
//! columns three spaces apart), so they read like the tool users know.

use aksnet_core::k8s::service::ServiceType;
use aksnet_core::k8s::time::{age, parse_rfc3339};
use aksnet_core::k8s::{K8sState, Kind, Object};

/// Left-aligned columns separated by three spaces.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn age_of(o: &Object, now: i64) -> String {
    o.meta()
        .creation_timestamp
        .as_deref()
        .and_then(parse_rfc3339)
        .map(|t| age(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// The table for objects of one kind; `all_namespaces` adds the NAMESPACE
/// column; `prefix` goes before each name (`service/` in `get all`).
pub fn table(
    kind: Kind,
    objs: &[Object],
    state: &K8sState,
    all_namespaces: bool,
    now: i64,
    prefix: &str,
) -> String {
    let header: Vec<&str> = match kind {
        Kind::Namespace => vec!["NAME", "STATUS", "AGE"],
        Kind::Pod => vec!["NAME", "READY", "STATUS", "IP", "NODE", "AGE"],
        Kind::Deployment => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::Service => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        Kind::EndpointSlice => vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        Kind::NetworkPolicy => vec!["NAME", "POD-SELECTOR", "AGE"],
    };
    let rows: Vec<Vec<String>> = objs
        .iter()
        .map(|o| {
            let mut r = row(o, state, now);
            r[0] = format!("{prefix}{}", r[0]);
            if all_namespaces && kind.namespaced() {
                r.insert(0, o.namespace().to_string());
            }
            r
        })
        .collect();
    let mut header = header;
    if all_namespaces && kind.namespaced() {
        header.insert(0, "NAMESPACE");
    }
    columns(&header, &rows)
}

fn row(o: &Object, state: &K8sState, now: i64) -> Vec<String> {
    let name = o.name().to_string();
    match o {
        Object::Namespace(n) => {
            let phase = n
                .status
                .as_ref()
                .and_then(|s| s.get("phase"))
                .and_then(|p| p.as_str())
                .unwrap_or("Active");
            vec![name, phase.into(), age_of(o, now)]
        }
        Object::Pod(p) => {
            let r = p.readiness();
            let n = p.spec.containers.len();
            let status = if r.terminating {
                "Terminating".to_string()
            } else {
                p.phase().map(str::to_string).unwrap_or_else(|| {
                    if p.pod_ipv4().is_some() {
                        "Running"
                    } else {
                        "Pending"
                    }
                    .into()
                })
            };
            vec![
                name,
                format!("{}/{n}", if r.ready { n } else { 0 }),
                status,
                p.pod_ipv4()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "<none>".into()),
                p.spec.node_name.clone().unwrap_or_else(|| "<none>".into()),
                age_of(o, now),
            ]
        }
        Object::Deployment(d) => {
            let sel = d.spec.selector.clone().unwrap_or_default();
            let pods: Vec<_> = state
                .of_kind(Kind::Pod, Some(o.namespace()))
                .filter_map(Object::as_pod)
                .filter(|p| !sel.is_empty() && sel.matches(&p.metadata.labels))
                .collect();
            let ready = pods.iter().filter(|p| p.readiness().ready).count();
            vec![
                name,
                format!("{ready}/{}", d.replicas()),
                pods.len().to_string(),
                ready.to_string(),
                age_of(o, now),
            ]
        }
        Object::Service(s) => {
            let ty = s.service_type();
            let cip = match ty {
                ServiceType::ExternalName => "<none>".to_string(),
                _ => s.spec.cluster_ip.clone().unwrap_or_else(|| "<none>".into()),
            };
            let mut ext: Vec<String> = s.ingress_ips().iter().map(|i| i.to_string()).collect();
            ext.extend(s.spec.external_ips.iter().cloned());
            let ext = match ty {
                ServiceType::ExternalName => s.spec.external_name.clone().unwrap_or_default(),
                ServiceType::LoadBalancer if ext.is_empty() => "<pending>".into(),
                _ => ext.join(","),
            };
            let ports = s
                .spec
                .ports
                .iter()
                .map(|p| match p.node_port {
                    Some(np) => format!("{}:{np}/{}", p.port, p.protocol()),
                    None => format!("{}/{}", p.port, p.protocol()),
                })
                .collect::<Vec<_>>()
                .join(",");
            vec![
                name,
                ty.as_str().into(),
                cip,
                or_none(ext),
                or_none(ports),
                age_of(o, now),
            ]
        }
        Object::EndpointSlice(s) => {
            let ports: Vec<String> = s
                .ports
                .iter()
                .map(|p| {
                    p.port
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "<unset>".into())
                })
                .collect();
            let addrs: Vec<&str> = s
                .endpoints
                .iter()
                .flat_map(|e| e.addresses.iter().map(String::as_str))
                .collect();
            let eps = match addrs.len() {
                0 => "<unset>".to_string(),
                1..=3 => addrs.join(","),
                n => format!("{} + {} more...", addrs[..3].join(","), n - 3),
            };
            let ports = if ports.is_empty() {
                "<unset>".into()
            } else {
                ports.join(",")
            };
            vec![name, s.address_type.clone(), ports, eps, age_of(o, now)]
        }
        Object::NetworkPolicy(n) => {
            let sel = n.spec.pod_selector.to_string();
            vec![name, sel, age_of(o, now)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_like_kubectl() {
        let t = columns(
            &["NAME", "TYPE"],
            &[
                vec!["web".into(), "ClusterIP".into()],
                vec!["database".into(), "NodePort".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME       TYPE\nweb        ClusterIP\ndatabase   NodePort\n"
        );
    }
}
