//! The design flags shared by `plan`, `cluster init` and `lab up`, so every
//! command that builds a network reads a design the same way the planner does.

use std::path::{Path, PathBuf};

use std::io::Read;

use aksnet_core::spec::{
    self, document, Document, InputError, OutboundInput, Parameters, Sourced, SpecInput,
};
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
    /// Network policy engine: azure, calico, cilium or none.
    #[arg(long, value_name = "ENGINE")]
    pub network_policy: Option<String>,
    /// Network dataplane: azure or cilium (Azure CNI powered by Cilium).
    #[arg(long, value_name = "azure|cilium")]
    pub network_dataplane: Option<String>,
    /// Outbound type: loadBalancer, userDefinedRouting, managedNATGateway, userAssignedNATGateway, none.
    #[arg(long, value_name = "TYPE")]
    pub outbound_type: Option<String>,
    /// Load balancer managed outbound IPs. Default 1.
    #[arg(long, value_name = "N")]
    pub load_balancer_managed_outbound_ip_count: Option<u32>,
    /// SNAT ports per node (allocatedOutboundPorts); 0 = automatic by cluster size.
    #[arg(long, value_name = "N")]
    pub load_balancer_outbound_ports: Option<u32>,
    /// Managed NAT gateway outbound IPs.
    #[arg(long, value_name = "N")]
    pub nat_gateway_managed_outbound_ip_count: Option<u32>,
    /// API server authorized IP ranges, comma-separated CIDRs (at most 200; the cluster's outbound IP is always added).
    #[arg(long, value_name = "CIDR[,CIDR...]")]
    pub api_server_authorized_ip_ranges: Option<String>,
    /// Kubernetes version (MAJOR.MINOR[.PATCH]). With no plugin named, AKS uses kubenet before 1.30 and Azure CNI Overlay from 1.30.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// A private cluster (no public API server endpoint; authorized IP ranges do not apply).
    #[arg(long)]
    pub enable_private_cluster: bool,
    /// Load balancer SKU: standard (AKS's default) or basic.
    #[arg(long, value_name = "standard|basic")]
    pub load_balancer_sku: Option<String>,
    /// A design file (repeatable; `-` reads stdin): an ARM/Bicep template (nested deployments, languageVersion 2.0), a managedClusters resource or its properties, az aks show output, a networkProfile, or ASO/CAPZ YAML. Flags override the files.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Vec<PathBuf>,
    /// A deployment parameters file for the templates (.parameters.json, or compiled .bicepparam). Repeatable.
    #[arg(long = "parameters", value_name = "FILE")]
    pub parameters: Vec<PathBuf>,
    /// A template parameter (or CAPZ ${VAR}) value: NAME=VALUE. Repeatable; wins over --parameters.
    #[arg(long = "parameter", short = 'p', value_name = "NAME=VALUE")]
    pub parameter: Vec<String>,
}

impl DesignArgs {
    /// The inputs: the files' values (if any) overridden by the flags.
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
            network_policy: s(&self.network_policy, "--network-policy"),
            network_dataplane: s(&self.network_dataplane, "--network-dataplane"),
            outbound: OutboundInput {
                outbound_type: s(&self.outbound_type, "--outbound-type"),
                lb_managed_ips: n(
                    self.load_balancer_managed_outbound_ip_count,
                    "--load-balancer-managed-outbound-ip-count",
                ),
                lb_allocated_ports: n(
                    self.load_balancer_outbound_ports,
                    "--load-balancer-outbound-ports",
                ),
                nat_managed_ips: n(
                    self.nat_gateway_managed_outbound_ip_count,
                    "--nat-gateway-managed-outbound-ip-count",
                ),
                ..OutboundInput::default()
            },
            authorized_ip_ranges: self
                .api_server_authorized_ip_ranges
                .iter()
                .flat_map(|r| r.split(','))
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| Sourced::new(r.to_string(), "--api-server-authorized-ip-ranges"))
                .collect(),
            kubernetes_version: s(&self.kubernetes_version, "--kubernetes-version"),
            private_cluster: self
                .enable_private_cluster
                .then(|| Sourced::new(true, "--enable-private-cluster")),
            load_balancer_sku: s(&self.load_balancer_sku, "--load-balancer-sku"),
            ..SpecInput::default()
        };
        if self.file.is_empty() {
            if !self.parameter.is_empty() || !self.parameters.is_empty() {
                return Err(InputError::new(
                    "--parameter",
                    "template parameters need a template: give it with --file",
                ));
            }
            return Ok(flags);
        }
        let mut params = Parameters::default();
        for p in &self.parameters {
            let (label, docs) = read_docs(p)?;
            for d in &docs {
                params.add_file(d, &label)?;
            }
        }
        for p in &self.parameter {
            params.add_flag(p)?;
        }
        let mut docs = Vec::new();
        let mut stdin_used = false;
        for path in &self.file {
            if path.as_os_str() == "-" {
                if stdin_used {
                    return Err(InputError::new("--file -", "stdin can be read only once"));
                }
                stdin_used = true;
            }
            let (label, values) = read_docs(path)?;
            docs.extend(values.into_iter().map(|value| Document {
                value,
                label: label.clone(),
            }));
        }
        Ok(spec::from_documents(&docs, &params)?.overridden_by(flags))
    }
}

/// Reads a file (or stdin for `-`) into its documents.
fn read_docs(path: &Path) -> Result<(String, Vec<serde_json::Value>), InputError> {
    let stdin = path.as_os_str() == "-";
    let label = if stdin {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let mut bytes = Vec::new();
    let read = if stdin {
        // Bounded: one byte past the limit is enough to refuse.
        std::io::stdin()
            .lock()
            .take(document::MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|f| {
            f.take(document::MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map(|_| ())
        })
    };
    read.map_err(|e| InputError::new(&label, format!("cannot read the file: {e}")))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let docs = document::parse(&bytes, &label, is_json)?;
    Ok((label, docs))
}
