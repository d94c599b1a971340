//! The lab directory (`/run/aksnet/lab/<name>/`): the state file, the
//! embedded store, each node's conflist and IPAM directory, logs. The state
//! file records every namespace and process the lab made, so `lab down` can
//! remove them by name and PID.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aksnet_core::spec::ClusterNetwork;
use aksnet_linux::flock::{self, FileLock, LockError, Wait};
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::nsg::NsgRule;
use crate::probe::Listen;
use crate::topology::{self, Addressing, Names};
use aksnet_core::k8s::namespace::DEFAULT_NAMESPACE;

/// Where labs live unless `AKSNET_LAB_ROOT` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/aksnet/lab";

pub fn root() -> PathBuf {
    std::env::var_os("AKSNET_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Building,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub index: u32,
    pub ip: Ipv4Addr,
    pub agent_pid: Option<u32>,
    pub probe_pid: Option<u32>,
}

/// A lab pod: a namespace set up by CNI ADD with a probe server in it, and
/// the Pod object in the store it runs for (`namespace`/`name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    /// The Pod's namespace (the pods `lab up` makes are in `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub node: String,
    pub node_index: u32,
    pub index: u32,
    pub container_id: String,
    pub ip: Option<Ipv4Addr>,
    pub probe_pid: Option<u32>,
    /// The container ports its probe server listens on (besides the lab's
    /// probe port).
    #[serde(default = "default_ports")]
    pub ports: Vec<Listen>,
    /// `metadata.uid` of its Pod in the store, once recorded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The `aksnet dns` process of a cluster DNS pod (`kube-system/coredns-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_pid: Option<u32>,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

fn default_ports() -> Vec<Listen> {
    vec![Listen::default_pod_port()]
}

impl PodState {
    /// `NAMESPACE/NAME`: how the probe server answers and `answered_by`
    /// names it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `NAME` in `default`, else `NAMESPACE/NAME` (what every lab command
    /// accepts).
    pub fn display(&self) -> String {
        if self.namespace == DEFAULT_NAMESPACE {
            self.name.clone()
        } else {
            self.id()
        }
    }

    /// Whether `reference` (`NAMESPACE/NAME`, or `NAME` in `default`) names it.
    pub fn is(&self, reference: &str) -> bool {
        let (ns, name) = pod_ref(reference);
        self.namespace == ns && self.name == name
    }
}

/// `NAMESPACE/NAME`, or `NAME` in `default`.
pub fn pod_ref(reference: &str) -> (&str, &str) {
    reference
        .split_once('/')
        .unwrap_or((DEFAULT_NAMESPACE, reference))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    pub name: String,
    pub network: ClusterNetwork,
    pub addressing: Addressing,
    /// The `aksnet` binary that started the lab's processes.
    pub exe: PathBuf,
    /// Where `aksnet-cni`, `aksnet-ipam`, `aksnet-portmap` are.
    pub cni_bin_dir: PathBuf,
    pub phase: Phase,
    pub controller_pid: Option<u32>,
    pub vm_probe_pid: Option<u32>,
    pub internet_probe_pid: Option<u32>,
    /// The internet host's DNS server (the public zone the cluster DNS
    /// forwards to).
    #[serde(default)]
    pub internet_dns_pid: Option<u32>,
    /// The probe server standing in for the API server.
    #[serde(default)]
    pub apiserver_probe_pid: Option<u32>,
    pub nodes: Vec<NodeState>,
    pub pods: Vec<PodState>,
    #[serde(default)]
    pub nsg: Vec<NsgRule>,
    /// The index the next node gets (indexes are never reused).
    pub next_node: u32,
}

impl LabState {
    /// A lab with no node yet, still building.
    pub fn new(
        name: &str,
        network: ClusterNetwork,
        addressing: Addressing,
        exe: PathBuf,
        cni_bin_dir: PathBuf,
    ) -> Self {
        Self {
            version: 1,
            name: name.to_string(),
            network,
            addressing,
            exe,
            cni_bin_dir,
            phase: Phase::Building,
            controller_pid: None,
            vm_probe_pid: None,
            internet_probe_pid: None,
            internet_dns_pid: None,
            apiserver_probe_pid: None,
            nodes: vec![],
            pods: vec![],
            nsg: vec![],
            next_node: 1,
        }
    }

    pub fn names(&self) -> Names {
        Names::new(&self.name)
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node named `name`, or an error that lists the lab's nodes.
    pub fn require_node(&self, name: &str) -> Result<&NodeState> {
        self.node(name).ok_or_else(|| LabError::UnknownTarget {
            lab: self.name.clone(),
            target: name.to_string(),
            hint: format!(
                "a node of the lab ({})",
                self.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The pod `reference` names (`NAMESPACE/NAME`, or `NAME` in `default`).
    pub fn pod(&self, reference: &str) -> Option<&PodState> {
        self.pods.iter().find(|p| p.is(reference))
    }

    /// The pod `reference` names, or an error that says which pods there are
    /// (and where a pod of that name is, when it is in another namespace).
    pub fn require_pod(&self, reference: &str) -> Result<&PodState> {
        self.pod(reference)
            .ok_or_else(|| self.unknown_pod(reference))
    }

    fn unknown_pod(&self, reference: &str) -> LabError {
        let (_, name) = pod_ref(reference);
        let elsewhere: Vec<String> = self
            .pods
            .iter()
            .filter(|p| p.name == name)
            .map(PodState::id)
            .collect();
        let hint = if elsewhere.is_empty() {
            format!(
                "a pod of the lab as NAMESPACE/NAME, or NAME in default ({})",
                sample(self.pods.iter().map(PodState::display))
            )
        } else {
            format!("{} (name the namespace)", elsewhere.join(" or "))
        };
        LabError::UnknownTarget {
            lab: self.name.clone(),
            target: reference.to_string(),
            hint,
        }
    }

    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodState> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }

    /// The namespace of a target: a pod, a node, `vm`, `internet` or `fabric`.
    pub fn target_netns(&self, target: &str) -> Result<String> {
        let names = self.names();
        if let Some(p) = self.pod(target) {
            return Ok(names.pod(p.node_index, p.index));
        }
        if target.contains('/') {
            return Err(self.unknown_pod(target));
        }
        if let Some(n) = self.node(target) {
            return Ok(names.node(n.index));
        }
        match target {
            "vm" => Ok(names.vm()),
            "internet" => Ok(names.internet()),
            "apiserver" => Ok(names.apiserver()),
            "fabric" => Ok(names.fabric()),
            _ if self.pods.iter().any(|p| p.name == target) => Err(self.unknown_pod(target)),
            _ => Err(LabError::UnknownTarget {
                lab: self.name.clone(),
                target: target.to_string(),
                hint: format!(
                    "a pod ({}), a node ({}), vm, internet, apiserver or fabric",
                    sample(self.pods.iter().map(PodState::display)),
                    sample(self.nodes.iter().map(|n| n.name.clone()))
                ),
            }),
        }
    }
}

fn sample(it: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = it.collect();
    match v.len() {
        0 => "none now".into(),
        1..=3 => v.join(", "),
        n => format!("{}, … {} in all", v[..2].join(", "), n),
    }
}

/// The cluster store of a lab, as its processes are told about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_key: Option<PathBuf>,
}

impl StoreConfig {
    pub fn tls(&self) -> aksnet_store::EtcdTls {
        aksnet_store::EtcdTls {
            ca: self.etcd_ca.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
        }
    }

    /// `--store URL [--etcd-ca F] [--etcd-cert F] [--etcd-key F]`.
    pub fn args(&self) -> Vec<String> {
        let mut v = vec!["--store".to_string(), self.url.clone()];
        for (flag, f) in [
            ("--etcd-ca", &self.etcd_ca),
            ("--etcd-cert", &self.etcd_cert),
            ("--etcd-key", &self.etcd_key),
        ] {
            if let Some(f) = f {
                v.push(flag.to_string());
                v.push(f.display().to_string());
            }
        }
        v
    }
}

/// One lab's directory.
#[derive(Debug, Clone)]
pub struct LabDir {
    pub name: String,
    pub path: PathBuf,
}

impl LabDir {
    pub fn new(name: &str) -> Result<Self> {
        topology::validate_name(name)?;
        Ok(Self {
            name: name.to_string(),
            path: root().join(name),
        })
    }

    pub fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn store_path(&self) -> PathBuf {
        self.path.join("cluster.db")
    }

    fn store_config_path(&self) -> PathBuf {
        self.path.join("store.json")
    }

    /// The lab's cluster store: `store.json` when `lab up --store` named
    /// one (e.g. a TLS etcd), else the SQLite file in the lab directory.
    /// An unreadable `store.json` is an error, never a silent fallback to
    /// another store.
    pub fn store_config(&self) -> Result<StoreConfig> {
        let p = self.store_config_path();
        match std::fs::read(&p) {
            Ok(t) => {
                serde_json::from_slice(&t).map_err(|source| LabError::State { path: p, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreConfig {
                url: format!("sqlite:{}", self.store_path().display()),
                ..StoreConfig::default()
            }),
            Err(e) => Err(LabError::io(&p, e)),
        }
    }

    /// True when `lab up --store` named a store outside the lab directory.
    pub fn has_external_store(&self) -> bool {
        self.store_config_path().exists()
    }

    /// Records the store `lab up` was given (none: the lab's own SQLite).
    pub fn save_store_config(&self, cfg: &StoreConfig) -> Result<()> {
        let p = self.store_config_path();
        let text = serde_json::to_vec_pretty(cfg).map_err(|source| LabError::State {
            path: p.clone(),
            source,
        })?;
        std::fs::write(&p, text).map_err(|e| LabError::io(&p, e))
    }

    pub fn store_url(&self) -> Result<String> {
        Ok(self.store_config()?.url)
    }

    /// `--store URL` and the TLS flags, for the lab's child processes.
    pub fn store_args(&self) -> Result<Vec<String>> {
        Ok(self.store_config()?.args())
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path.join("nodes").join(node)
    }

    pub fn conf_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("net.d")
    }

    pub fn ipam_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("ipam")
    }

    pub fn pod_dir(&self) -> PathBuf {
        self.path.join("pods")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.path.join("log")
    }

    /// The marker argument every process the lab starts itself carries.
    pub fn marker(&self) -> String {
        self.path.display().to_string()
    }

    pub fn exists(&self) -> bool {
        self.state_path().exists()
    }

    pub fn create(&self) -> Result<()> {
        for d in [self.path.clone(), self.pod_dir(), self.log_dir()] {
            std::fs::create_dir_all(&d).map_err(|e| LabError::io(&d, e))?;
        }
        Ok(())
    }

    pub fn load(&self) -> Result<LabState> {
        let p = self.state_path();
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::NoLab(self.name.clone(), self.path.clone()))
            }
            Err(e) => return Err(LabError::io(&p, e)),
        };
        serde_json::from_slice(&text).map_err(|source| LabError::State { path: p, source })
    }

    /// Writes the state atomically (temporary file, then rename).
    pub fn save(&self, state: &LabState) -> Result<()> {
        let p = self.state_path();
        let tmp = self.path.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(state).map_err(|source| LabError::State {
            path: p.clone(),
            source,
        })?;
        std::fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| LabError::io(&p, e))
    }

    /// Exclusive lock for commands that change the lab.
    pub fn lock(&self) -> Result<Lock> {
        // A command on a lab that does not exist says so, rather than
        // failing to create the lock file in a missing directory.
        if !self.path.is_dir() {
            return Err(LabError::NoLab(self.name.clone(), self.path.clone()));
        }
        Lock::take(&self.path.join("lock"))
    }
}

/// An exclusive `flock`, released when dropped.
pub struct Lock {
    _lock: FileLock,
}

impl Lock {
    /// Waits as long as it takes: another lab command is changing the lab.
    pub fn take(path: &Path) -> Result<Self> {
        match flock::lock_exclusive(path, Wait::Forever) {
            Ok(l) => Ok(Self { _lock: l }),
            Err(LockError::Open { source, .. } | LockError::Lock { source, .. }) => {
                Err(LabError::io(path, source))
            }
            Err(e) => Err(LabError::io(path, std::io::Error::other(e.to_string()))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aksnet_core::planner;
    use aksnet_core::spec::{Sourced, SpecInput};

    /// A lab state as `lab up` would record it, without any kernel.
    pub fn sample_state(plugin: &str, mode: Option<&str>, nodes: u32, pods: u32) -> LabState {
        let input = SpecInput {
            network_plugin: Some(Sourced::new(plugin.into(), "x")),
            network_plugin_mode: mode.map(|m| Sourced::new(m.into(), "x")),
            ..Default::default()
        };
        let network = planner::plan_input(&input).unwrap().network;
        let addressing = Addressing::plan(&network, None).unwrap();
        let azure = network.network_plugin == aksnet_core::spec::NetworkPlugin::Azure;
        let mut st = LabState {
            version: 1,
            name: "t".into(),
            network,
            addressing,
            exe: "/x/aksnet".into(),
            cni_bin_dir: "/x".into(),
            phase: Phase::Ready,
            controller_pid: None,
            vm_probe_pid: None,
            internet_probe_pid: None,
            internet_dns_pid: None,
            apiserver_probe_pid: None,
            nodes: vec![],
            pods: vec![],
            nsg: vec![],
            next_node: nodes + 1,
        };
        for i in 1..=nodes {
            st.nodes.push(NodeState {
                name: topology::node_name(i),
                index: i,
                ip: format!("10.224.0.{}", 3 + i).parse().unwrap(),
                agent_pid: None,
                probe_pid: None,
            });
            for j in 1..=pods {
                let ip = if azure {
                    format!("10.224.{i}.{j}")
                } else {
                    format!("10.244.{}.{}", i - 1, j + 1)
                };
                st.pods.push(PodState {
                    name: topology::pod_name(i, j),
                    namespace: "default".into(),
                    ports: default_ports(),
                    uid: None,
                    node: topology::node_name(i),
                    node_index: i,
                    index: j,
                    container_id: format!("c{i}{j}"),
                    ip: Some(ip.parse().unwrap()),
                    probe_pid: None,
                    dns_pid: None,
                });
            }
        }
        st
    }
}
