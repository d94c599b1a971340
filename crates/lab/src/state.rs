//! The lab directory (`/run/aksnet/lab/<name>/`): the state file, the
//! embedded store, each node's conflist and IPAM directory, logs. The state
//! file records every namespace and process the lab made, so `lab down` can
//! remove them by name and PID.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use aksnet_core::spec::ClusterNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::nsg::NsgRule;
use crate::topology::{self, Addressing, Names};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    pub node: String,
    pub node_index: u32,
    pub index: u32,
    pub container_id: String,
    pub ip: Option<Ipv4Addr>,
    pub probe_pid: Option<u32>,
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

    pub fn pod(&self, name: &str) -> Option<&PodState> {
        self.pods.iter().find(|p| p.name == name)
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
        if let Some(n) = self.node(target) {
            return Ok(names.node(n.index));
        }
        match target {
            "vm" => Ok(names.vm()),
            "internet" => Ok(names.internet()),
            "fabric" => Ok(names.fabric()),
            _ => Err(LabError::UnknownTarget {
                lab: self.name.clone(),
                target: target.to_string(),
                hint: format!(
                    "a pod ({}), a node ({}), vm, internet or fabric",
                    sample(self.pods.iter().map(|p| p.name.as_str())),
                    sample(self.nodes.iter().map(|n| n.name.as_str()))
                ),
            }),
        }
    }
}

fn sample<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    match v.len() {
        0 => "none now".into(),
        1..=3 => v.join(", "),
        n => format!("{}, … {} in all", v[..2].join(", "), n),
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

    pub fn store_url(&self) -> String {
        format!("sqlite:{}", self.store_path().display())
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
    _file: File,
}

impl Lock {
    // Until the one file-lock helper (aksnet-linux, on nix) replaces it.
    #[allow(unsafe_code, reason = "flock(2) on a descriptor this function owns")]
    pub fn take(path: &Path) -> Result<Self> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| LabError::io(path, e))?;
        // SAFETY: flock on an open descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(LabError::io(path, std::io::Error::last_os_error()));
        }
        Ok(Self { _file: file })
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
                    node: topology::node_name(i),
                    node_index: i,
                    index: j,
                    container_id: format!("c{i}{j}"),
                    ip: Some(ip.parse().unwrap()),
                    probe_pid: None,
                });
            }
        }
        st
    }
}
