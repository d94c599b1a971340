//! Cluster DNS in the lab, as CoreDNS runs on AKS: a Deployment
//! `kube-system/coredns` of two Pods (label `k8s-app=kube-dns`), each a lab
//! pod running `aksnet dns` against the lab's store, behind the Service
//! `kube-system/kube-dns` at the cluster's DNS service IP (53/UDP, 53/TCP,
//! and 9153/TCP, CoreDNS's metrics port, where the pods' probe servers
//! answer). The agents program that Service like any other. Every other
//! lab pod gets the resolver configuration the kubelet writes
//! (`nameserver`, `search NS.svc.DOMAIN svc.DOMAIN DOMAIN`, `options
//! ndots:5`) in `/etc/netns/<pod namespace>/resolv.conf`, which `ip netns
//! exec` (and `lab exec`) mounts over `/etc/resolv.conf`.
//!
//! Names outside the cluster domain go to the internet host, whose DNS
//! server holds a small public zone ([`public_records`]), so forwarding is
//! visible.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aksnet_core::k8s::apply::{plan_apply, ApplyContext, Expect, Input};
use aksnet_core::k8s::{Kind, Object};
use aksnet_store::{Compare, CompareOp, Txn, TxnOp};
use serde_json::json;

use crate::error::{LabError, Result};
use crate::process::{self, Spawn};
use crate::state::{LabDir, LabState, PodState};
use crate::topology::netns_path;

pub const NAMESPACE: &str = "kube-system";
pub const DEPLOYMENT: &str = "coredns";
pub const SERVICE: &str = "kube-dns";
/// The label CoreDNS's Pods and the kube-dns selector share.
pub const LABEL: (&str, &str) = ("k8s-app", "kube-dns");
pub const REPLICAS: u32 = 2;
pub const CLUSTER_DOMAIN: &str = "cluster.local";
pub const DNS_PORT: u16 = 53;
/// CoreDNS's Prometheus port on the kube-dns Service; the DNS pods' probe
/// servers answer there, so `lab check` can reach the Service by name.
pub const METRICS_PORT: u16 = 9153;
/// The public zones the internet host serves.
pub const PUBLIC_ZONES: [&str; 2] = ["example.com", "azmk8s.io"];
/// How long one name lookup of the lab's waits for its answer.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);
/// The DNS pods' namespaces are numbered from here on their node, apart
/// from the workload pods' (`pod-<node>-<j>` named as its namespace).
pub const DNS_POD_INDEX: u32 = 9000;
/// Where `ip netns exec` looks for a namespace's own `/etc` files.
pub const ETC_NETNS: &str = "/etc/netns";

/// Is `p` one of the cluster DNS pods?
pub fn is_dns_pod(p: &PodState) -> bool {
    is_dns_name(&p.namespace, &p.name)
}

/// Is the Pod `namespace/name` one of the cluster DNS pods?
pub fn is_dns_name(namespace: &str, name: &str) -> bool {
    namespace == NAMESPACE && name.starts_with(&format!("{DEPLOYMENT}-"))
}

/// The kube-dns Service and the coredns Deployment, as `aksnet apply`
/// takes them.
pub fn objects(state: &LabState) -> Result<Vec<Object>> {
    let labels = json!({ LABEL.0: LABEL.1 });
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{
                        "name": "coredns", "image": "aksnet dns",
                        "ports": [
                            {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": DNS_PORT, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
                        ]
                    }]
                }
            }
        }
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {
            "selector": labels,
            "clusterIP": state.network.dns_service_ip.to_string(),
            "ports": [
                {"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP", "targetPort": DNS_PORT},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT}
            ]
        }
    });
    [(Kind::Deployment, deployment), (Kind::Service, service)]
        .into_iter()
        .map(|(k, v)| {
            Object::from_value(k, v)
                .map_err(|e| LabError::Invalid(format!("the cluster DNS objects: {e}")))
        })
        .collect()
}

/// Applies the cluster DNS objects to the lab's store (as `aksnet apply`
/// does: the k8s code plans, one transaction writes) and lets the lab's
/// kubelet start the DNS pods. The caller holds the lab's lock.
pub fn install(dir: &LabDir, state: &mut LabState) -> Result<()> {
    let store = crate::store::open(dir)?;
    let inputs: Vec<Input> = objects(state)?
        .into_iter()
        .map(|object| Input {
            object,
            source: "the lab's cluster DNS".into(),
        })
        .collect();
    let mut done = false;
    for attempt in 0..16u64 {
        let k8s = crate::kubelet::objects(dir)?;
        let ctx = ApplyContext {
            now: aksnet_core::k8s::time::rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
            ),
            seed: u64::from(std::process::id()) ^ (attempt << 40),
        };
        let plan = plan_apply(&k8s, &state.network, &ctx, inputs.clone()).map_err(|errs| {
            LabError::Invalid(format!(
                "the cluster DNS objects are refused: {}",
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        if plan.is_noop() {
            done = true;
            break;
        }
        let compare = |key: &str, e: Expect| match e {
            Expect::Absent => Compare::absent(key),
            Expect::Exists => Compare::exists(key),
            Expect::ModRevision(r) => Compare::mod_revision(key, CompareOp::Equal, r),
        };
        let mut compares: Vec<Compare> = plan
            .writes
            .iter()
            .map(|w| compare(&w.key, w.expect))
            .collect();
        compares.extend(plan.checks.iter().map(|(k, e)| compare(k, *e)));
        let ops = plan.writes.iter().map(|w| match &w.value {
            Some(v) => TxnOp::put(w.key.clone(), v.clone()),
            None => TxnOp::delete(w.key.clone()),
        });
        if store
            .txn(Txn::new().when(compares).and_then(ops))?
            .succeeded
        {
            done = true;
            break;
        }
    }
    if !done {
        return Err(LabError::Invalid(
            "the store kept changing while the lab wrote its cluster DNS objects".into(),
        ));
    }
    crate::kubelet::sync_locked(dir, state)?;
    Ok(())
}

/// How long `lab up` waits for the cluster DNS to answer from every node.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until every node gets an answer for the kube-dns Service's own
/// name from the DNS service IP: the DNS pods serve and every node's agent
/// has programmed the Service. Returns whether that happened in time.
pub fn wait_ready(state: &LabState, timeout: Duration) -> bool {
    let start = std::time::Instant::now();
    let server = SocketAddr::new(state.network.dns_service_ip.into(), DNS_PORT);
    let name = format!("{SERVICE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}");
    let mut waiting: Vec<PathBuf> = state
        .nodes
        .iter()
        .map(|n| netns_path(&state.names().node(n.index)))
        .collect();
    while !waiting.is_empty() {
        waiting.retain(|ns| {
            let found = crate::netns::run_in(ns, || {
                aksnet_dns::client::lookup_a_blocking(server, &name, Duration::from_millis(300))
            });
            !matches!(found, Ok(Ok(aksnet_dns::client::Lookup::Found(_))))
        });
        if waiting.is_empty() {
            break;
        }
        if start.elapsed() > timeout {
            tracing::warn!(
                "the cluster DNS does not answer from {} within {timeout:?}",
                waiting
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// `aksnet dns` for one DNS pod: on the pod's port 53, from the lab's
/// store, forwarding to the internet host (CoreDNS's upstream on AKS is
/// the node's resolver, Azure DNS; here the lab's public DNS).
pub fn dns_args(dir: &LabDir, state: &LabState, p: &PodState) -> Result<Vec<String>> {
    let mut args = vec!["dns".to_string()];
    args.extend(dir.store_args()?);
    args.extend([
        // Serves in the pod; reaches the store from where the lab runs (an
        // etcd on the host's loopback is not reachable from a pod).
        "--netns".into(),
        netns_path(&state.names().pod(p.node_index, p.index))
            .display()
            .to_string(),
        "--listen".into(),
        format!("0.0.0.0:{DNS_PORT}"),
        "--upstream".into(),
        format!("{}:{DNS_PORT}", state.addressing.internet_ip),
        "--cluster-domain".into(),
        CLUSTER_DOMAIN.into(),
        // What AKS's CoreDNS runs.
        "--pods".into(),
        "insecure".into(),
    ]);
    Ok(args)
}

/// Starts `aksnet dns` inside the DNS pod `p`.
pub fn start_server(dir: &LabDir, state: &LabState, p: &PodState) -> Result<u32> {
    process::spawn_detached(Spawn {
        program: &state.exe,
        args: dns_args(dir, state, p)?,
        netns: None,
        log: dir
            .log_dir()
            .join(format!("dns-{}.log", p.id().replace('/', "_"))),
        env: vec![("AKSNET_LOG".into(), "info".into())],
    })
}

/// Whether `pid` is still the `aksnet dns` the lab started in pod `p`: an
/// `aksnet dns` process inside that pod's namespace.
pub fn is_ours(state: &LabState, p: &PodState, pid: u32) -> bool {
    let ns = crate::netns::inode(&netns_path(&state.names().pod(p.node_index, p.index)));
    process::alive(pid)
        && process::cmdline(pid).get(1).map(String::as_str) == Some("dns")
        && ns.is_some()
        && crate::netns::inode(&PathBuf::from(format!("/proc/{pid}/ns/net"))) == ns
}

/// Stops the DNS pod's server if it is still ours.
pub fn stop_server(state: &LabState, p: &PodState) {
    if let Some(pid) = p.dns_pid {
        if is_ours(state, p, pid) {
            process::stop_pid(pid, Duration::from_secs(1));
        } else {
            process::reap(pid);
        }
    }
}

/// The resolver configuration of a pod of Kubernetes namespace `ns`, as
/// the kubelet writes it for `dnsPolicy: ClusterFirst`.
pub fn resolv_conf(state: &LabState, ns: &str) -> String {
    format!(
        "# written by aksnet lab (the kubelet's ClusterFirst resolv.conf)\n\
         search {ns}.svc.{d} svc.{d} {d}\n\
         nameserver {}\n\
         options ndots:5\n",
        state.network.dns_service_ip,
        d = CLUSTER_DOMAIN
    )
}

/// `/etc/netns/<namespace>/resolv.conf`.
pub fn resolv_path(netns_name: &str) -> PathBuf {
    Path::new(ETC_NETNS).join(netns_name).join("resolv.conf")
}

/// Writes the pod's resolver configuration (not for the DNS pods, whose
/// `dnsPolicy: Default` is the node's, and lab nodes have none).
pub fn write_resolv_conf(state: &LabState, p: &PodState) -> Result<()> {
    if is_dns_pod(p) {
        return Ok(());
    }
    let path = resolv_path(&state.names().pod(p.node_index, p.index));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| LabError::io(d, e))?;
    }
    std::fs::write(&path, resolv_conf(state, &p.namespace)).map_err(|e| LabError::io(&path, e))
}

/// Removes `/etc/netns/<namespace>` of a lab namespace (nothing else).
pub fn remove_etc(netns_name: &str) {
    let d = Path::new(ETC_NETNS).join(netns_name);
    if d.exists() {
        if let Err(e) = std::fs::remove_dir_all(&d) {
            tracing::warn!("{}: {e}", d.display());
        }
    }
}

/// Every `/etc/netns/<name>` whose name is one of this lab's namespaces
/// (what `lab down` removes, also for a crashed lab).
pub fn lab_etc_dirs(names: &crate::topology::Names) -> Vec<String> {
    std::fs::read_dir(ETC_NETNS)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| names.role_of(n).is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// The internet host's public zone: `example.com` and `www.example.com`
/// (the internet host itself), and the API server's FQDN, as AKS names
/// its public endpoint (`<dns prefix>.hcp.<region>.azmk8s.io`).
pub fn public_records(state: &LabState) -> Vec<(String, Ipv4Addr)> {
    let a = &state.addressing;
    vec![
        ("example.com".into(), a.internet_ip),
        ("www.example.com".into(), a.internet_ip),
        (apiserver_fqdn(state), a.apiserver_ip),
    ]
}

/// `<lab>-dns.hcp.lab.azmk8s.io`.
pub fn apiserver_fqdn(state: &LabState) -> String {
    format!("{}-dns.hcp.lab.azmk8s.io", state.name)
}

/// Starts the internet host's DNS server (`aksnet lab public-dns`).
pub fn start_public_dns(dir: &LabDir, state: &LabState) -> Result<u32> {
    process::spawn_detached(Spawn {
        program: &state.exe,
        args: vec![
            "lab".into(),
            "public-dns".into(),
            "--lab-dir".into(),
            dir.marker(),
            "--listen".into(),
            SocketAddr::new(state.addressing.internet_ip.into(), DNS_PORT).to_string(),
        ],
        netns: Some(netns_path(&state.names().internet())),
        log: dir.log_dir().join("public-dns.log"),
        env: vec![],
    })
}

/// A pod's resolver configuration, read back (what name lookups from it use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<Ipv4Addr>,
    pub search: Vec<String>,
    pub ndots: usize,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf {
            nameservers: vec![],
            search: vec![],
            ndots: 1,
        };
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("nameserver") => c
                    .nameservers
                    .extend(w.next().and_then(|a| a.parse::<Ipv4Addr>().ok())),
                Some("search") => c.search = w.map(str::to_string).collect(),
                Some("options") => {
                    for o in w {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            c.ndots = n;
                        }
                    }
                }
                _ => {}
            }
        }
        c
    }

    /// The names tried for `name`, in glibc's order: as given first when
    /// it has at least `ndots` dots (or ends with one), else the search
    /// list first.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let with_search = self.search.iter().map(|s| format!("{name}.{s}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string())
                .chain(with_search)
                .collect()
        } else {
            with_search
                .chain(std::iter::once(name.to_string()))
                .collect()
        }
    }
}

/// Resolves `name` from inside the namespace `netns_name` with its
/// `/etc/netns` resolver configuration, as the pod's own resolver would:
/// `Ok(Some(ip, fqdn))`, `Ok(None)` when no candidate has an address.
pub fn resolve_from(netns_name: &str, name: &str) -> Result<Option<(Ipv4Addr, String)>> {
    let path = resolv_path(netns_name);
    let text = std::fs::read_to_string(&path).map_err(|e| LabError::io(&path, e))?;
    let conf = ResolvConf::parse(&text);
    let server = conf
        .nameservers
        .first()
        .copied()
        .ok_or_else(|| LabError::Invalid(format!("{} names no nameserver", path.display())))?;
    let to = SocketAddr::new(server.into(), DNS_PORT);
    let found = crate::netns::run_in(&netns_path(netns_name), || {
        for c in conf.candidates(name) {
            // As glibc's resolver: a query without an answer is sent again
            // once (a datagram lost, e.g. in a conntrack race on the DNAT).
            let ask = || aksnet_dns::client::lookup_a_blocking(to, &c, LOOKUP_TIMEOUT);
            match ask().or_else(|_| ask()) {
                Ok(aksnet_dns::client::Lookup::Found(ips)) => return Ok(Some((ips[0], c))),
                Ok(_) => continue,
                Err(e) => return Err(LabError::Invalid(format!("asking {to} for {c}: {e}"))),
            }
        }
        Ok(None)
    })?;
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::sample_state;

    #[test]
    fn resolv_conf_as_the_kubelet_writes_it() {
        let st = sample_state("kubenet", None, 1, 1);
        let text = resolv_conf(&st, "shop");
        assert!(text.contains("search shop.svc.cluster.local svc.cluster.local cluster.local\n"));
        assert!(text.contains("nameserver 10.0.0.10\n"));
        assert!(text.contains("options ndots:5\n"));
        let c = ResolvConf::parse(&text);
        assert_eq!(c.nameservers, vec![Ipv4Addr::new(10, 0, 0, 10)]);
        assert_eq!(c.ndots, 5);
        assert_eq!(
            c.candidates("web"),
            [
                "web.shop.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web"
            ]
        );
        assert_eq!(c.candidates("web.y")[0], "web.y.shop.svc.cluster.local");
        assert_eq!(
            c.candidates("web.y.svc.cluster.local.")[..],
            ["web.y.svc.cluster.local"]
        );
        assert_eq!(c.candidates("a.b.c.d.e.f")[0], "a.b.c.d.e.f");
        assert_eq!(
            c.candidates("a.b.c.d.e")[0],
            "a.b.c.d.e.shop.svc.cluster.local"
        );
    }

    #[test]
    fn the_dns_objects_apply_at_the_dns_service_ip() {
        use aksnet_core::k8s::K8sState;
        let st = sample_state("azure", None, 1, 1);
        let objs = objects(&st).unwrap();
        let inputs = objs
            .into_iter()
            .map(|object| Input {
                object,
                source: "t".into(),
            })
            .collect();
        let plan = plan_apply(
            &K8sState::default(),
            &st.network,
            &ApplyContext {
                now: "2026-01-01T00:00:00Z".into(),
                seed: 1,
            },
            inputs,
        )
        .unwrap();
        let svc = plan
            .outcomes
            .iter()
            .find_map(|(_, _, o)| match o {
                Object::Service(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(svc.cluster_ipv4(), Some(st.network.dns_service_ip));
        assert_eq!(svc.spec.ports.len(), 3);
    }
}
