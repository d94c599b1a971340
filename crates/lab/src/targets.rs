//! `lab probe FROM TO`: what FROM and TO name, resolved against the lab's
//! state and the Kubernetes objects of its store (pure), and the probes
//! run from FROM's namespace, one JSON-shaped row per probe.
//!
//! FROM: a pod (`NAMESPACE/NAME`, or `NAME` in `default`), a node
//! (`node-1`), `vm`, `internet`. TO: the same, or `svc/NAMESPACE/NAME`
//! (its ClusterIP and first port), `nodeport/NAMESPACE/NAME@NODE` (the
//! node's IP and the first port's `nodePort`), `lb/NAMESPACE/NAME` (its
//! first `status.loadBalancer.ingress` IP and first port), or an IPv4
//! address. `--port` replaces the port TO implies (for `svc/…` also one the
//! Service does not declare); `--protocol` the protocol.

use std::net::Ipv4Addr;
use std::time::Duration;

use aksnet_core::k8s::{K8sState, Kind, Object, ObjectId, Service};
use serde::Serialize;

use crate::check::classify;
use crate::probe::{self, Listen, Outcome, Protocol, PROBE_PORT};
use crate::state::{pod_ref, LabState, PodState};
use crate::topology::netns_path;

/// Input `lab probe` cannot use (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// Where probes start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The namespace's name (`aksnet-lab-NAME-…`).
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// Where probes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub address: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

/// One probe's result: the `lab probe --output json` line, exactly these
/// fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub from: String,
    pub to: String,
    pub address: String,
    pub port: u16,
    pub protocol: String,
    pub reachable: bool,
    pub refused: bool,
    pub answered_by: Option<String>,
    pub source_ip_seen: Option<String>,
    pub source_seen: Option<String>,
    pub elapsed_ms: f64,
}

fn pod_of<'a>(state: &'a LabState, reference: &str) -> Result<&'a PodState, Unusable> {
    state
        .require_pod(reference)
        .map_err(|e| Unusable(e.to_string()))
}

/// FROM.
pub fn source(state: &LabState, from: &str) -> Result<Source, Unusable> {
    let names = state.names();
    if from.contains('/') || state.pod(from).is_some() {
        let p = pod_of(state, from)?;
        let ip =
            p.ip.ok_or_else(|| Unusable(format!("pod {} has no address", p.id())))?;
        return Ok(Source {
            netns: names.pod(p.node_index, p.index),
            ip,
        });
    }
    if let Some(n) = state.node(from) {
        return Ok(Source {
            netns: names.node(n.index),
            ip: n.ip,
        });
    }
    match from {
        "vm" => Ok(Source {
            netns: names.vm(),
            ip: state.addressing.vm_ip,
        }),
        "internet" => Ok(Source {
            netns: names.internet(),
            ip: state.addressing.internet_ip,
        }),
        _ if state.pods.iter().any(|p| p.name == from) => Err(pod_of(state, from)
            .err()
            .unwrap_or_else(|| Unusable(format!("no pod {from}")))),
        _ => Err(Unusable(format!(
            "FROM '{from}' is not a pod (NAMESPACE/NAME, or NAME in default), a node ({}), vm or internet",
            state
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn service<'a>(k8s: &'a K8sState, form: &str, nsname: &str) -> Result<&'a Service, Unusable> {
    let (ns, name) = nsname.split_once('/').ok_or_else(|| {
        Unusable(format!(
            "'{form}/{nsname}': write {form}/NAMESPACE/NAME (e.g. {form}/default/web)"
        ))
    })?;
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return Err(Unusable(format!(
            "'{form}/{nsname}': write {form}/NAMESPACE/NAME (e.g. {form}/default/web)"
        )));
    }
    let id = ObjectId::new(Kind::Service, ns, name);
    match k8s.objects.get(&id).map(|s| &s.value) {
        Some(Object::Service(s)) => Ok(s),
        _ => Err(Unusable(format!(
            "no Service {ns}/{name} in the lab's store (`aksnet get svc -n {ns} --lab LAB` lists them)"
        ))),
    }
}

/// The Service's first port (or the one of `protocol`), as (port, protocol, nodePort).
fn first_port(svc: &Service, protocol: Option<Protocol>) -> Option<(u16, Protocol, Option<u16>)> {
    svc.spec
        .ports
        .iter()
        .filter_map(|p| {
            Some((
                u16::try_from(p.port).ok()?,
                Protocol::from_k8s(p.protocol.as_deref())?,
                p.node_port.and_then(|n| u16::try_from(n).ok()),
            ))
        })
        .find(|(_, proto, _)| protocol.is_none_or(|want| want == *proto))
}

/// The protocol of the Service's first port numbered `port`.
fn declared_protocol(svc: &Service, port: u16) -> Option<Protocol> {
    svc.spec
        .ports
        .iter()
        .find(|p| p.port == i64::from(port))
        .and_then(|p| Protocol::from_k8s(p.protocol.as_deref()))
}

/// A pod's first container port (or its first of `protocol`).
fn pod_port(p: &PodState, protocol: Option<Protocol>) -> Option<Listen> {
    p.ports
        .iter()
        .find(|l| protocol.is_none_or(|want| want == l.protocol))
        .cloned()
}

/// TO, with `--port` and `--protocol` when given.
pub fn destination(
    state: &LabState,
    k8s: &K8sState,
    to: &str,
    port: Option<u16>,
    protocol: Option<Protocol>,
) -> Result<Destination, Unusable> {
    let dest = |address: Ipv4Addr, implied: u16, implied_proto: Protocol| Destination {
        address,
        port: port.unwrap_or(implied),
        protocol: protocol.unwrap_or(implied_proto),
    };
    let (form, rest) = to.split_once('/').unwrap_or(("", to));
    match form {
        "svc" if rest.contains('/') => {
            let svc = service(k8s, form, rest)?;
            let ip = svc.cluster_ipv4().ok_or_else(|| {
                Unusable(format!(
                    "Service {rest} has no ClusterIP ({}); probe its pods instead",
                    if svc.is_headless() {
                        "headless"
                    } else {
                        "ExternalName"
                    }
                ))
            })?;
            let declared = port
                .filter(|_| protocol.is_none())
                .and_then(|want| Some((want, declared_protocol(svc, want)?, None)));
            let (p, proto) = match declared.or_else(|| first_port(svc, protocol)) {
                Some((p, proto, _)) => (p, proto),
                None if port.is_some() => (0, Protocol::Tcp),
                None => {
                    return Err(Unusable(format!(
                        "Service {rest} declares no port{}; give --port",
                        protocol.map(|p| format!(" of {p}")).unwrap_or_default()
                    )))
                }
            };
            return Ok(dest(ip, p, proto));
        }
        "nodeport" if rest.contains('/') => {
            let (svc_ref, node) = rest.split_once('@').ok_or_else(|| {
                Unusable(format!(
                    "'{to}': write nodeport/NAMESPACE/NAME@NODE (e.g. nodeport/default/web@node-1)"
                ))
            })?;
            let svc = service(k8s, form, svc_ref)?;
            let n = state
                .require_node(node)
                .map_err(|e| Unusable(e.to_string()))?;
            let np = first_port(svc, protocol).and_then(|(_, proto, np)| Some((np?, proto)));
            let (p, proto) = match np {
                Some(x) => x,
                None if port.is_some() => (0, Protocol::Tcp),
                None => {
                    return Err(Unusable(format!(
                        "Service {svc_ref} has no nodePort (type {}); it is not reachable on a node's address",
                        svc.service_type().as_str()
                    )))
                }
            };
            return Ok(dest(n.ip, p, proto));
        }
        "lb" if rest.contains('/') => {
            let svc = service(k8s, form, rest)?;
            let ip = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.iter().find_map(|i| i.ip.as_deref()?.parse().ok()))
                .ok_or_else(|| {
                    Unusable(format!(
                        "Service {rest} has no load-balancer ingress IP (status.loadBalancer.ingress is empty)"
                    ))
                })?;
            let (p, proto) = match first_port(svc, protocol) {
                Some((p, proto, _)) => (p, proto),
                None if port.is_some() => (0, Protocol::Tcp),
                None => {
                    return Err(Unusable(format!(
                        "Service {rest} declares no port; give --port"
                    )))
                }
            };
            return Ok(dest(ip, p, proto));
        }
        _ => {}
    }
    if let Ok(ip) = to.parse::<Ipv4Addr>() {
        // The port its owner serves: a pod's first container port, a
        // Service's first port, else the lab's probe port.
        if let Some(p) = state.pods.iter().find(|p| p.ip == Some(ip)) {
            let l = pod_port(p, protocol).unwrap_or_else(|| Listen::new(PROBE_PORT, Protocol::Tcp));
            return Ok(dest(ip, l.port, l.protocol));
        }
        let svc = k8s.objects.values().find_map(|s| match &s.value {
            Object::Service(svc) if svc.cluster_ipv4() == Some(ip) => Some(svc),
            _ => None,
        });
        if let Some(s) = svc {
            // `--port` of a port the Service declares: that port's protocol.
            if let (Some(want), None) = (port, protocol) {
                if let Some(proto) = declared_protocol(s, want) {
                    return Ok(dest(ip, want, proto));
                }
            }
        }
        if let Some((p, proto, _)) = svc.and_then(|s| first_port(s, protocol)) {
            return Ok(dest(ip, p, proto));
        }
        if ip == state.addressing.apiserver_ip {
            return Ok(dest(
                ip,
                crate::topology::APISERVER_PORT_NUMBER,
                Protocol::Tcp,
            ));
        }
        return Ok(dest(ip, PROBE_PORT, Protocol::Tcp));
    }
    if to.contains('/') || state.pod(to).is_some() {
        let (ns, name) = pod_ref(to);
        if to.matches('/').count() > 1 || ns.is_empty() || name.is_empty() {
            return Err(Unusable(format!(
                "TO '{to}' is not a pod (NAMESPACE/NAME), svc/NAMESPACE/NAME, nodeport/NAMESPACE/NAME@NODE, lb/NAMESPACE/NAME or an IP address"
            )));
        }
        let p = pod_of(state, to)?;
        let ip =
            p.ip.ok_or_else(|| Unusable(format!("pod {} has no address", p.id())))?;
        let l = pod_port(p, protocol).unwrap_or_else(|| Listen::new(PROBE_PORT, Protocol::Tcp));
        return Ok(dest(ip, l.port, l.protocol));
    }
    if to == "apiserver" {
        return Ok(dest(
            state.addressing.apiserver_ip,
            crate::topology::APISERVER_PORT_NUMBER,
            Protocol::Tcp,
        ));
    }
    let s = source(state, to).map_err(|_| {
        Unusable(format!(
            "TO '{to}' is not a pod (NAMESPACE/NAME, or NAME in default), a node, vm, internet, apiserver, svc/NAMESPACE/NAME, nodeport/NAMESPACE/NAME@NODE, lb/NAMESPACE/NAME, an IPv4 address, or a name FROM resolves (FROM a pod)"
        ))
    })?;
    Ok(dest(s.ip, PROBE_PORT, Protocol::Tcp))
}

/// Whether `to` may be a DNS name (`web`, `web.shop`, `example.com`).
pub fn looks_like_name(to: &str) -> bool {
    !to.is_empty()
        && to.len() <= 253
        && to.parse::<Ipv4Addr>().is_err()
        && to.split('.').enumerate().all(|(i, l)| {
            (!l.is_empty() || i > 0 && to.ends_with('.'))
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// TO as a name FROM resolves, the way its resolver would (its
/// `/etc/netns/…/resolv.conf`: the cluster DNS and the search list), then
/// as the address it resolved to: `None` when FROM has no resolver
/// configuration (a node, the VM, the internet host) or TO is no name.
pub fn by_name(
    state: &LabState,
    k8s: &K8sState,
    src: &Source,
    to: &str,
    port: Option<u16>,
    protocol: Option<Protocol>,
) -> Option<Result<Destination, Unusable>> {
    if !looks_like_name(to) || !crate::cluster_dns::resolv_path(&src.netns).exists() {
        return None;
    }
    Some(match crate::cluster_dns::resolve_from(&src.netns, to) {
        Ok(Some((ip, _))) => destination(state, k8s, &ip.to_string(), port, protocol),
        Ok(None) => Err(Unusable(format!(
            "'{to}' does not resolve from there: no name of its search list has an address (NXDOMAIN or NODATA)"
        ))),
        Err(e) => Err(Unusable(format!("resolving '{to}': {e}"))),
    })
}

/// Whose address the destination saw: `pod`, `node`, `vm`, `public` or
/// `other`.
/// `lab probe`'s `source_seen`: one of `pod`, `node`, `vm`, `public` or
/// `other` (its JSON contract); the internet host's address is `other`
/// there, though `lab check` names it.
pub fn seen(state: &LabState, ip: Ipv4Addr) -> &'static str {
    match classify(state, ip) {
        None | Some(crate::expect::Seen::Internet) => "other",
        Some(s) => s.as_str(),
    }
}

/// The row of one outcome.
pub fn row(state: &LabState, from: &str, to: &str, d: &Destination, o: &Outcome) -> Row {
    Row {
        from: from.to_string(),
        to: to.to_string(),
        address: d.address.to_string(),
        port: d.port,
        protocol: d.protocol.as_str().to_string(),
        reachable: o.reachable,
        refused: o.refused,
        answered_by: o.label.clone().filter(|_| o.reachable),
        source_ip_seen: o.source.filter(|_| o.reachable).map(|s| s.to_string()),
        source_seen: o
            .source
            .filter(|_| o.reachable)
            .map(|s| seen(state, s).to_string()),
        elapsed_ms: (o.elapsed.as_secs_f64() * 1e6).round() / 1e3,
    }
}

/// Runs `count` probes from `src` to `d`, one after the other.
pub fn run(
    src: &Source,
    d: &Destination,
    count: u32,
    timeout: Duration,
) -> crate::error::Result<Vec<Outcome>> {
    probe::run_sequence(
        &netns_path(&src.netns),
        d.address,
        d.port,
        d.protocol,
        count,
        timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::sample_state;
    use aksnet_core::k8s::store::Stored;
    use serde_json::json;

    fn k8s(objs: &[serde_json::Value]) -> K8sState {
        let mut st = K8sState::default();
        for v in objs {
            let o = Object::from_value(Kind::Service, v.clone()).unwrap();
            st.objects.insert(
                o.id(),
                Stored {
                    value: o,
                    mod_revision: 1,
                },
            );
        }
        st
    }

    fn svcs() -> K8sState {
        k8s(&[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.0.12.7",
                    "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "10.224.0.200"}]}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain", "namespace": "default"},
                "spec": {"clusterIP": "10.0.0.20", "ports": [{"port": 8080}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hl", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        ])
    }

    fn d(address: &str, port: u16, protocol: Protocol) -> Destination {
        Destination {
            address: address.parse().unwrap(),
            port,
            protocol,
        }
    }

    #[test]
    fn sources() {
        let mut st = sample_state("kubenet", None, 2, 1);
        st.pods[1].namespace = "shop".into();
        let s = source(&st, "pod-1-1").unwrap();
        assert_eq!(s.netns, "aksnet-lab-t-pod-1-1");
        assert_eq!(source(&st, "default/pod-1-1").unwrap(), s);
        assert_eq!(
            source(&st, "shop/pod-2-1").unwrap().netns,
            "aksnet-lab-t-pod-2-1"
        );
        let e = source(&st, "pod-2-1").unwrap_err().0;
        assert!(e.contains("shop/pod-2-1"), "names where it is: {e}");
        assert_eq!(source(&st, "node-2").unwrap().ip, st.nodes[1].ip);
        assert_eq!(source(&st, "vm").unwrap().netns, "aksnet-lab-t-vm");
        assert_eq!(
            source(&st, "internet").unwrap().ip,
            st.addressing.internet_ip
        );
        assert!(source(&st, "node-9").is_err());
        assert!(source(&st, "svc/default/web").is_err());
    }

    #[test]
    fn destinations() {
        let mut st = sample_state("kubenet", None, 2, 1);
        st.pods[0].ports = vec![
            Listen::new(53, Protocol::Udp),
            Listen::new(8080, Protocol::Tcp),
        ];
        let k = svcs();
        let to = |s: &str| destination(&st, &k, s, None, None);
        let ip0 = st.pods[0].ip.unwrap().to_string();
        assert_eq!(to("pod-1-1").unwrap(), d(&ip0, 53, Protocol::Udp));
        assert_eq!(
            destination(&st, &k, "default/pod-1-1", None, Some(Protocol::Tcp)).unwrap(),
            d(&ip0, 8080, Protocol::Tcp)
        );
        assert_eq!(to(&ip0).unwrap(), d(&ip0, 53, Protocol::Udp));
        assert_eq!(to("pod-2-1").unwrap().port, 80, "a lab-up pod serves 80");
        assert_eq!(
            to("node-1").unwrap(),
            d("10.224.0.4", PROBE_PORT, Protocol::Tcp)
        );
        assert_eq!(
            to("svc/shop/web").unwrap(),
            d("10.0.12.7", 80, Protocol::Tcp)
        );
        assert_eq!(
            destination(&st, &k, "svc/shop/web", None, Some(Protocol::Udp)).unwrap(),
            d("10.0.12.7", 53, Protocol::Udp)
        );
        assert_eq!(
            destination(&st, &k, "svc/shop/web", Some(53), None).unwrap(),
            d("10.0.12.7", 53, Protocol::Udp),
            "--port of a declared port takes its protocol"
        );
        assert_eq!(
            destination(&st, &k, "10.0.12.7", Some(53), None).unwrap(),
            d("10.0.12.7", 53, Protocol::Udp)
        );
        assert_eq!(
            to("apiserver").unwrap(),
            d("203.0.113.200", 443, Protocol::Tcp)
        );
        assert!(
            looks_like_name("web")
                && looks_like_name("web.shop")
                && looks_like_name("example.com.")
        );
        assert!(
            !looks_like_name("10.0.0.1") && !looks_like_name("a/b") && !looks_like_name("a..b")
        );
        assert_eq!(
            destination(&st, &k, "svc/shop/web", Some(9999), None).unwrap(),
            d("10.0.12.7", 9999, Protocol::Tcp),
            "--port probes a port the Service does not declare"
        );
        assert_eq!(
            to("nodeport/shop/web@node-2").unwrap(),
            d("10.224.0.5", 30080, Protocol::Tcp)
        );
        assert_eq!(
            to("lb/shop/web").unwrap(),
            d("10.224.0.200", 80, Protocol::Tcp)
        );
        assert_eq!(
            to("10.0.0.20").unwrap(),
            d("10.0.0.20", 8080, Protocol::Tcp)
        );
        assert_eq!(
            to("192.0.2.1").unwrap(),
            d("192.0.2.1", PROBE_PORT, Protocol::Tcp)
        );
        for bad in [
            "svc/shop/nope",
            "svc/default/hl",
            "nodeport/default/plain@node-1",
            "nodeport/shop/web",
            "nodeport/shop/web@node-9",
            "lb/default/plain",
            "a/b/c",
            "nope",
            "shop/nope",
            "10.0.0.300",
        ] {
            let e = to(bad);
            assert!(e.is_err(), "{bad}: {e:?}");
        }
    }

    #[test]
    fn rows_have_exactly_the_contract_fields() {
        let st = sample_state("kubenet", None, 2, 1);
        let dst = d("10.244.1.2", 80, Protocol::Tcp);
        let ok = Outcome {
            reachable: true,
            refused: false,
            source: Some(st.nodes[0].ip),
            label: Some("default/pod-2-1".into()),
            error: None,
            elapsed: Duration::from_micros(1234),
        };
        let v = serde_json::to_value(row(&st, "pod-1-1", "pod-2-1", &dst, &ok)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "from",
            "to",
            "address",
            "port",
            "protocol",
            "reachable",
            "refused",
            "answered_by",
            "source_ip_seen",
            "source_seen",
            "elapsed_ms",
        ];
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(v["source_seen"], "node");
        assert_eq!(v["answered_by"], "default/pod-2-1");
        assert_eq!(v["elapsed_ms"], 1.234);
        assert_eq!(v["protocol"], "tcp");
        let other = Outcome {
            source: Some("198.51.100.1".parse().unwrap()),
            ..ok.clone()
        };
        assert_eq!(
            serde_json::to_value(row(&st, "a", "b", &dst, &other)).unwrap()["source_seen"],
            "other"
        );
        let refused = Outcome {
            refused: true,
            ..Outcome::failed("Connection refused")
        };
        let v = serde_json::to_value(row(&st, "a", "b", &dst, &refused)).unwrap();
        assert_eq!(v["reachable"], false);
        assert_eq!(v["refused"], true);
        assert!(
            v["answered_by"].is_null()
                && v["source_ip_seen"].is_null()
                && v["source_seen"].is_null()
        );
        assert!(v["elapsed_ms"].is_f64());
    }
}
