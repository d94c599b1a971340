//! The lab's errors: each names what is wrong and what would be right.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab name '{0}' is not usable: use 1 to 24 characters a-z, 0-9 and '-', starting and ending with a letter or digit")]
    BadName(String),
    #[error("no lab named '{0}' (no state in {1}); start one with `aksnet lab up --name {0}`")]
    NoLab(String, PathBuf),
    #[error("a lab named '{0}' already exists; remove it with `aksnet lab down --name {0}` or choose another --name")]
    Exists(String),
    #[error("lab '{0}' never finished building (its `lab up` was stopped before the lab was ready), so there is nothing to check; remove it with `aksnet lab down --name {0}` and build it again")]
    NotReady(String),
    #[error("the lab needs root (it creates network namespaces); run it as root")]
    NotRoot,
    #[error("{0}")]
    Design(String),
    #[error("'{target}' is not a target of lab '{lab}': use {hint}")]
    UnknownTarget {
        lab: String,
        target: String,
        hint: String,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: aksnet_linux::Error,
    },
    #[error("{path}: not valid lab state: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cluster store: {0}")]
    Store(#[from] aksnet_store::StoreError),
    #[error("cluster store: {0}")]
    Cluster(#[from] aksnet_cluster::ClusterError),
    #[error("{store} already holds another cluster network; remove the lab (`aksnet lab down`) or use another --name")]
    OtherNetwork { store: String },
    #[error("CNI {command} of {container} with plugin '{plugin}' failed: {msg}")]
    Cni {
        command: String,
        container: String,
        plugin: String,
        msg: String,
    },
    #[error("{what} did not happen within {secs} s{detail}")]
    Timeout {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl LabError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;
