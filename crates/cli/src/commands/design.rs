//! The design flags shared by `plan`, `cluster init` and `lab up`, so every
//! command that builds a network reads a design the same way the planner does.

use std::path::{Path, PathBuf};

use aksnet_core::spec::{self, InputError, Sourced, SpecInput};
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct DesignArgs {
    /// Network model: kubenet or azure (overlay when omitted, as on AKS).
    #[arg(long, value_name = "kubenet|azure")]
    pub network_plugin: Option<String>,
    /// With --network-plugin azure: overlay gives Azure CNI Overlay.
    #[arg(long, value_name = "overlay")]
    pub network_plugin_mode: Option<String>,
    /// VNet address space (repeatable). Default 10.224.0.0/12, or the subnet
    /// itself when only --subnet-cidr is given.
    #[arg(long = "vnet-cidr", value_name = "CIDR")]
    pub vnet_cidrs: Vec<String>,
    /// Node subnet. Default 10.224.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub subnet_cidr: Option<String>,
    /// Azure CNI dynamic IP allocation: the pods' own subnet (batches of 16 per node).
    #[arg(long, value_name = "CIDR")]
    pub pod_subnet_cidr: Option<String>,
    /// Kubenet/overlay pod range, one /24 per node. Default 10.244.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub pod_cidr: Option<String>,
    /// Kubernetes service range. Default 10.0.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub service_cidr: Option<String>,
    /// Cluster DNS service address, inside the service CIDR. Default 10.0.0.10.
    #[arg(long, value_name = "IP")]
    pub dns_service_ip: Option<String>,
    /// Nodes (in every pool). Default 3 (for `lab up`: its --nodes).
    #[arg(long, value_name = "N")]
    pub node_count: Option<u32>,
    /// Max pods per node (every pool). Default: kubenet 110, azure 30 (110 with a pod subnet), overlay 250.
    #[arg(long, value_name = "N")]
    pub max_pods: Option<u32>,
    /// Extra nodes during an upgrade: a count or a percentage such as 33%. Default 1.
    #[arg(long, value_name = "N|P%")]
    pub max_surge: Option<String>,
    /// Routes the kubenet route table may hold. Default 400.
    #[arg(long, value_name = "N")]
    pub route_table_limit: Option<u32>,
    /// ARM/Bicep managedClusters resource, its properties, or a networkProfile (JSON or YAML). Flags override it.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl DesignArgs {
    /// The inputs: the file's values (if any) overridden by the flags.
    pub fn to_input(&self) -> Result<SpecInput, InputError> {
        let s = |v: &Option<String>, flag: &str| v.clone().map(|v| Sourced::new(v, flag));
        let n = |v: Option<u32>, flag: &str| v.map(|v| Sourced::new(v, flag));
        let flags = SpecInput {
            network_plugin: s(&self.network_plugin, "--network-plugin"),
            network_plugin_mode: s(&self.network_plugin_mode, "--network-plugin-mode"),
            vnet_cidrs: self
                .vnet_cidrs
                .iter()
                .map(|v| Sourced::new(v.clone(), "--vnet-cidr"))
                .collect(),
            subnet_cidr: s(&self.subnet_cidr, "--subnet-cidr"),
            pod_subnet_cidr: s(&self.pod_subnet_cidr, "--pod-subnet-cidr"),
            pod_cidr: s(&self.pod_cidr, "--pod-cidr"),
            service_cidr: s(&self.service_cidr, "--service-cidr"),
            dns_service_ip: s(&self.dns_service_ip, "--dns-service-ip"),
            node_count: n(self.node_count, "--node-count"),
            max_pods: n(self.max_pods, "--max-pods"),
            max_surge: s(&self.max_surge, "--max-surge"),
            route_table_limit: n(self.route_table_limit, "--route-table-limit"),
            pools: Vec::new(),
        };
        match &self.file {
            Some(path) => Ok(read_file(path)?.overridden_by(flags)),
            None => Ok(flags),
        }
    }
}

fn read_file(path: &Path) -> Result<SpecInput, InputError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(&label, format!("cannot read the file: {e}")))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    spec::from_text(&text, is_json, &label)
}
