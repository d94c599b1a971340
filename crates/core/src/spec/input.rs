//! Raw design inputs (az-style flags, an ARM/Bicep file) and their resolution
//! into a [`ClusterNetwork`].
//!
//! Every value remembers where it came from, so an unusable value is reported
//! as "--pod-cidr: ..." or "cluster.json: properties.networkProfile.podCidr:
//! ..." — the user sees which flag or field to change.

use std::fmt;

use crate::cidr::{self, Ipv4Net};
use crate::finding::Finding;

use ipnet::Ipv6Net;

use super::{
    defaults, ClusterNetwork, Ipv6Design, MaxSurge, NamedSubnet, NetworkPlugin, NodePool, Outbound,
    PoolSubnet,
};

/// A value with the flag or file field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: impl Into<String>) -> Self {
        Self {
            value,
            source: source.into(),
        }
    }
}

/// An input that cannot be used at all (exit status 2): the design cannot
/// even be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The flag or file field at fault.
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A subnet a pool names by resource ID (`vnetSubnetID`, `podSubnetID`),
/// with its range when the inputs hold the subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetRef {
    /// The resource ID (or name) as the file gives it.
    pub id: String,
    /// The field that names it.
    pub source: String,
    /// The subnet's range, from a VNet or subnet of the inputs.
    pub cidr: Option<Sourced<String>>,
    /// The subnet has a route table (`userDefinedRouting` needs one).
    pub route_table: bool,
}

/// A subnet of a VNet of the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownSubnet {
    pub vnet: String,
    pub name: String,
    pub prefixes: Vec<Sourced<String>>,
    pub route_table: bool,
    /// The range is an expression that cannot be evaluated: an error only
    /// if a pool uses the subnet.
    pub range_error: Option<InputError>,
}

/// One agent pool as read from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolInput {
    pub name: String,
    pub count: Option<Sourced<u32>>,
    pub max_pods: Option<Sourced<u32>>,
    pub max_surge: Option<Sourced<String>>,
    /// `System` or `User`.
    pub mode: Option<Sourced<String>>,
    /// The pool's node subnet (`vnetSubnetID`).
    pub subnet: Option<SubnetRef>,
    /// The pool's pod subnet (`podSubnetID`: Azure CNI dynamic allocation).
    pub pod_subnet: Option<SubnetRef>,
    /// `podIPAllocationMode`: `DynamicIndividual` (default) or `StaticBlock`.
    pub pod_ip_allocation_mode: Option<Sourced<String>>,
}

/// A file value that could not be read; the flag named `covered_by`
/// supplies it instead, and then the error no longer matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub covered_by: Option<&'static str>,
    pub error: InputError,
}

/// Outbound settings (`outboundType`, `loadBalancerProfile`,
/// `natGatewayProfile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundInput {
    pub outbound_type: Option<Sourced<String>>,
    /// `loadBalancerProfile.managedOutboundIPs.count`.
    pub lb_managed_ips: Option<Sourced<u32>>,
    /// Outbound public IPs and prefixes given by ID.
    pub lb_own_ips: Option<Sourced<u32>>,
    pub lb_allocated_ports: Option<Sourced<u32>>,
    pub nat_managed_ips: Option<Sourced<u32>>,
    pub nat_idle_timeout: Option<Sourced<u32>>,
}

/// Stands in a `network-plugin-defaulted` note for what AKS picks, which
/// depends on the Kubernetes version a flag may still change; [`SpecInput::resolve`]
/// fills it in.
pub(crate) const PLUGIN_DEFAULT: &str = "\u{0}plugin-default";

/// Everything a user can say about a design, unparsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecInput {
    pub network_plugin: Option<Sourced<String>>,
    pub network_plugin_mode: Option<Sourced<String>>,
    pub vnet_cidrs: Vec<Sourced<String>>,
    pub subnet_cidr: Option<Sourced<String>>,
    pub pod_subnet_cidr: Option<Sourced<String>>,
    pub pod_cidr: Option<Sourced<String>>,
    pub service_cidr: Option<Sourced<String>>,
    pub dns_service_ip: Option<Sourced<String>>,
    /// Applies to every pool (flags override each pool's own value).
    pub node_count: Option<Sourced<u32>>,
    pub max_pods: Option<Sourced<u32>>,
    pub max_surge: Option<Sourced<String>>,
    pub route_table_limit: Option<Sourced<u32>>,
    pub pools: Vec<PoolInput>,
    pub network_policy: Option<Sourced<String>>,
    pub network_dataplane: Option<Sourced<String>>,
    pub outbound: OutboundInput,
    pub authorized_ip_ranges: Vec<Sourced<String>>,
    /// `apiServerAccessProfile.enablePrivateCluster` (`--enable-private-cluster`).
    pub private_cluster: Option<Sourced<bool>>,
    /// `networkProfile.loadBalancerSku`: standard (AKS's default) or basic.
    pub load_balancer_sku: Option<Sourced<String>>,
    pub kubernetes_version: Option<Sourced<String>>,
    /// `ipFamilies`: IPv4, IPv6 or both.
    pub ip_families: Vec<Sourced<String>>,
    /// IPv6 ranges of a dual-stack design.
    pub pod_cidr_v6: Option<Sourced<String>>,
    pub service_cidr_v6: Option<Sourced<String>>,
    pub vnet_cidrs_v6: Vec<Sourced<String>>,
    /// Every subnet of the inputs' VNets (the service CIDR must not overlap
    /// any of them).
    pub known_subnets: Vec<KnownSubnet>,
    /// File values that could not be read (see [`Pending`]).
    pub pending: Vec<Pending>,
    /// What reading the files had to say (warnings).
    pub notes: Vec<Finding>,
}

/// A resolved design plus what resolution had to ignore (planner warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub network: ClusterNetwork,
    pub notes: Vec<Finding>,
}

impl SpecInput {
    /// `self` (from a file) with every value given in `flags` taking precedence.
    /// A file value that could not be read stops mattering once its flag
    /// is given.
    pub fn overridden_by(self, flags: SpecInput) -> SpecInput {
        let given = |flag: &str| -> bool {
            match flag {
                "--network-plugin" => flags.network_plugin.is_some(),
                "--network-plugin-mode" => {
                    flags.network_plugin_mode.is_some() || flags.network_plugin.is_some()
                }
                "--vnet-cidr" => !flags.vnet_cidrs.is_empty() || flags.subnet_cidr.is_some(),
                "--subnet-cidr" => flags.subnet_cidr.is_some(),
                "--pod-subnet-cidr" => flags.pod_subnet_cidr.is_some(),
                "--pod-cidr" => flags.pod_cidr.is_some(),
                "--service-cidr" => flags.service_cidr.is_some(),
                "--dns-service-ip" => flags.dns_service_ip.is_some(),
                "--node-count" => flags.node_count.is_some(),
                "--max-pods" => flags.max_pods.is_some(),
                "--max-surge" => flags.max_surge.is_some(),
                _ => false,
            }
        };
        let mut pending: Vec<Pending> = self
            .pending
            .into_iter()
            .filter(|p| !p.covered_by.is_some_and(given))
            .collect();
        pending.extend(flags.pending);
        let mut notes = self.notes;
        if flags.network_plugin.is_some() {
            notes.retain(|n| n.code != "network-plugin-defaulted");
        }
        notes.extend(flags.notes);
        let mut pools = if flags.pools.is_empty() {
            self.pools
        } else {
            flags.pools
        };
        // --subnet-cidr and --pod-subnet-cidr apply to every pool, as
        // --node-count does.
        for p in &mut pools {
            if flags.subnet_cidr.is_some() {
                p.subnet = None;
            }
            if flags.pod_subnet_cidr.is_some() && p.pod_subnet.is_some() {
                p.pod_subnet = None;
            }
        }
        let pick =
            |a: Vec<Sourced<String>>, b: Vec<Sourced<String>>| if a.is_empty() { b } else { a };
        let plugin_flag = flags.network_plugin.is_some();
        SpecInput {
            network_plugin: flags.network_plugin.or(self.network_plugin),
            network_plugin_mode: if plugin_flag {
                flags.network_plugin_mode
            } else {
                flags.network_plugin_mode.or(self.network_plugin_mode)
            },
            vnet_cidrs: if !flags.vnet_cidrs.is_empty() {
                flags.vnet_cidrs
            } else if flags.subnet_cidr.is_some() {
                Vec::new()
            } else {
                self.vnet_cidrs
            },
            subnet_cidr: flags.subnet_cidr.or(self.subnet_cidr),
            pod_subnet_cidr: flags.pod_subnet_cidr.or(self.pod_subnet_cidr),
            pod_cidr: flags.pod_cidr.or(self.pod_cidr),
            service_cidr: flags.service_cidr.or(self.service_cidr),
            dns_service_ip: flags.dns_service_ip.or(self.dns_service_ip),
            node_count: flags.node_count.or(self.node_count),
            max_pods: flags.max_pods.or(self.max_pods),
            max_surge: flags.max_surge.or(self.max_surge),
            route_table_limit: flags.route_table_limit.or(self.route_table_limit),
            pools,
            network_policy: flags.network_policy.or(self.network_policy),
            network_dataplane: flags.network_dataplane.or(self.network_dataplane),
            outbound: OutboundInput {
                outbound_type: flags.outbound.outbound_type.or(self.outbound.outbound_type),
                lb_managed_ips: flags
                    .outbound
                    .lb_managed_ips
                    .or(self.outbound.lb_managed_ips),
                lb_own_ips: flags.outbound.lb_own_ips.or(self.outbound.lb_own_ips),
                lb_allocated_ports: flags
                    .outbound
                    .lb_allocated_ports
                    .or(self.outbound.lb_allocated_ports),
                nat_managed_ips: flags
                    .outbound
                    .nat_managed_ips
                    .or(self.outbound.nat_managed_ips),
                nat_idle_timeout: flags
                    .outbound
                    .nat_idle_timeout
                    .or(self.outbound.nat_idle_timeout),
            },
            authorized_ip_ranges: pick(flags.authorized_ip_ranges, self.authorized_ip_ranges),
            private_cluster: flags.private_cluster.or(self.private_cluster),
            load_balancer_sku: flags.load_balancer_sku.or(self.load_balancer_sku),
            kubernetes_version: flags.kubernetes_version.or(self.kubernetes_version),
            ip_families: pick(flags.ip_families, self.ip_families),
            pod_cidr_v6: flags.pod_cidr_v6.or(self.pod_cidr_v6),
            service_cidr_v6: flags.service_cidr_v6.or(self.service_cidr_v6),
            vnet_cidrs_v6: pick(flags.vnet_cidrs_v6, self.vnet_cidrs_v6),
            known_subnets: self.known_subnets,
            pending,
            notes,
        }
    }

    /// The model named by `--network-plugin` and `--network-plugin-mode`
    /// (overlay when neither is given, as on AKS today).
    pub fn network_plugin(&self) -> Result<NetworkPlugin, InputError> {
        let mode = match &self.network_plugin_mode {
            None => None,
            Some(m) if m.value.trim().is_empty() => None,
            Some(m) if m.value.trim().eq_ignore_ascii_case("overlay") => Some(m),
            Some(m) => {
                return Err(InputError::new(
                    &m.source,
                    format!(
                        "'{}' is not a network plugin mode; the only mode is overlay",
                        m.value
                    ),
                ))
            }
        };
        let Some(plugin) = &self.network_plugin else {
            // AKS picks by Kubernetes version (spec/version.rs).
            return Ok(super::version::default_plugin(self.version()).0);
        };
        let name = plugin.value.trim().to_ascii_lowercase();
        match (name.as_str(), mode) {
            ("azure", Some(_)) | ("overlay", _) => Ok(NetworkPlugin::Overlay),
            ("azure", None) => Ok(NetworkPlugin::Azure),
            ("kubenet", None) => Ok(NetworkPlugin::Kubenet),
            ("kubenet", Some(m)) => Err(InputError::new(
                &m.source,
                "overlay mode belongs to Azure CNI; use --network-plugin azure --network-plugin-mode overlay, or drop the mode for kubenet",
            )),
            ("none", _) => Err(InputError::new(
                &plugin.source,
                "'none' (bring your own CNI) is not an AKS network model aksnet can plan; use kubenet, azure or overlay",
            )),
            _ => Err(InputError::new(
                &plugin.source,
                format!(
                    "'{}' is not a network plugin; use kubenet, azure, or azure with --network-plugin-mode overlay",
                    plugin.value
                ),
            )),
        }
    }

    fn version(&self) -> Option<&str> {
        self.kubernetes_version.as_ref().map(|v| v.value.as_str())
    }

    /// Resolves the design for `plugin`. In `compare` mode, inputs that only
    /// make sense for another model are dropped with a warning instead of
    /// making the design invalid.
    pub fn resolve(&self, plugin: NetworkPlugin, compare: bool) -> Result<Resolved, InputError> {
        // A file value that could not be read, and no flag supplies it.
        if let Some(p) = self.pending.first() {
            return Err(p.error.clone());
        }
        let mut notes = self.notes.clone();
        // What AKS picks for a cluster without a plugin, said with the
        // version it depends on (a flag-only design with a version too).
        if self.network_plugin.is_none() {
            let (_, why) = super::version::default_plugin(self.version());
            let mut said = false;
            for n in notes
                .iter_mut()
                .filter(|n| n.code == "network-plugin-defaulted")
            {
                n.message = n.message.replace(PLUGIN_DEFAULT, &why);
                said = true;
            }
            if !said && !compare {
                if let Some(v) = &self.kubernetes_version {
                    notes.push(Finding::new(
                        "network-plugin-defaulted",
                        format!("{}: no --network-plugin; {why}", v.source),
                    ));
                }
            }
        }
        let net = |v: &Option<Sourced<String>>, default: &str, flag: &str| {
            parse_net(v.as_ref(), default, flag)
        };

        // Each pool's own subnets, when the file names them.
        let mut pools_in: Vec<PoolInput> = self.pools.clone();
        let implicit = pools_in.is_empty();
        if implicit {
            pools_in.push(PoolInput {
                name: defaults::POOL_NAME.to_string(),
                ..PoolInput::default()
            });
        }
        let pool_subnet = |r: &Option<SubnetRef>,
                           what: &str,
                           flag: &str,
                           notes: &mut Vec<Finding>,
                           pool: &str|
         -> Result<Option<PoolSubnet>, InputError> {
            let Some(r) = r else { return Ok(None) };
            let cidr = match &r.cidr {
                Some(c) => Some(parse_net(Some(c), "", flag)?),
                None => {
                    notes.push(Finding::new(
                        "subnet-range-unknown",
                        format!(
                            "pool {pool}: its {what} {} ({}) is not in the inputs, so its range and the capacity on it are unknown; give the file that deploys its VNet with another --file, or its range with {flag}",
                            r.id, r.source
                        ),
                    ));
                    None
                }
            };
            Ok(Some(PoolSubnet {
                id: r.id.clone(),
                cidr,
                route_table: r.route_table,
            }))
        };
        let mut own_subnets = Vec::new();
        let mut own_pod_subnets = Vec::new();
        for p in &pools_in {
            own_subnets.push(pool_subnet(
                &p.subnet,
                "node subnet",
                "--subnet-cidr",
                &mut notes,
                &p.name,
            )?);
            own_pod_subnets.push(pool_subnet(
                &p.pod_subnet,
                "pod subnet",
                "--pod-subnet-cidr",
                &mut notes,
                &p.name,
            )?);
        }

        // The cluster's subnet: the flag, or the first pool's known one.
        let first_known = own_subnets.iter().flatten().find_map(|s| s.cidr);
        let subnet_cidr = match (&self.subnet_cidr, first_known) {
            (Some(v), _) => parse_net(Some(v), "", "--subnet-cidr")?,
            (None, Some(c)) => c,
            (None, None) => parse_net(None, defaults::SUBNET_CIDR, "--subnet-cidr")?,
        };
        let any_unknown_subnet = own_subnets.iter().flatten().any(|s| s.cidr.is_none());
        let mut vnet_known = true;
        let vnet_cidrs = if self.vnet_cidrs.is_empty() {
            if self.subnet_cidr.is_some() || first_known.is_some() {
                // A subnet without its VNet: the VNet is at least the subnet.
                let mut v: Vec<Ipv4Net> = Vec::new();
                for c in std::iter::once(subnet_cidr)
                    .chain(own_subnets.iter().flatten().filter_map(|s| s.cidr))
                {
                    if !v.iter().any(|x| cidr::contains_net(x, &c)) {
                        v.push(c);
                    }
                }
                v
            } else {
                if any_unknown_subnet {
                    vnet_known = false;
                }
                vec![parse_net(None, defaults::VNET_CIDR, "--vnet-cidr")?]
            }
        } else {
            self.vnet_cidrs
                .iter()
                .map(|v| parse_net(Some(v), "", "--vnet-cidr"))
                .collect::<Result<_, _>>()?
        };

        let mut pod_subnet_cidr = match &self.pod_subnet_cidr {
            Some(v) => Some(parse_net(Some(v), "", "--pod-subnet-cidr")?),
            None => own_pod_subnets.iter().flatten().find_map(|s| s.cidr),
        };
        let mut pools_have_pod_subnet = own_pod_subnets.iter().any(Option::is_some);
        if compare
            && plugin != NetworkPlugin::Azure
            && (pod_subnet_cidr.is_some() || pools_have_pod_subnet)
        {
            let what = match (&self.pod_subnet_cidr, pod_subnet_cidr) {
                (Some(src), Some(p)) => format!("{} {p}", src.source),
                _ => "the pools' pod subnets".to_string(),
            };
            notes.push(Finding::new(
                "pod-subnet-ignored",
                format!("{what} is ignored for {plugin}: only Azure CNI takes pod addresses from a pod subnet"),
            ));
            pod_subnet_cidr = None;
            pools_have_pod_subnet = false;
            own_pod_subnets.fill(None);
        }
        let dynamic =
            plugin == NetworkPlugin::Azure && (pod_subnet_cidr.is_some() || pools_have_pod_subnet);

        let pod_cidr = match (&self.pod_cidr, plugin.uses_pod_cidr()) {
            (Some(v), _) => Some(parse_net(Some(v), "", "--pod-cidr")?),
            (None, true) => Some(parse_net(None, defaults::POD_CIDR, "--pod-cidr")?),
            (None, false) => None,
        };
        let service_cidr = net(&self.service_cidr, defaults::SERVICE_CIDR, "--service-cidr")?;
        let dns_service_ip = match &self.dns_service_ip {
            Some(v) => {
                cidr::parse_ipv4(&v.value).map_err(|e| InputError::new(&v.source, e.to_string()))?
            }
            None => {
                let d = cidr::parse_ipv4(defaults::DNS_SERVICE_IP)
                    .map_err(|e| InputError::new("--dns-service-ip", e.to_string()))?;
                // A service CIDR without a DNS IP: AKS's default 10.0.0.10
                // only fits the default service CIDR.
                if self.service_cidr.is_some() && !cidr::contains_addr(&service_cidr, d) {
                    if let Some(a) = cidr::nth_addr(&service_cidr, 10) {
                        notes.push(Finding::new(
                            "dns-service-ip-defaulted",
                            format!("no DNS service IP is given for service CIDR {service_cidr}; planned with {a}, its .10 address; give it with --dns-service-ip"),
                        ));
                        a
                    } else {
                        d
                    }
                } else {
                    d
                }
            }
        };
        // Authorized IP ranges must at least be addresses or CIDRs: one
        // that is not cannot be planned with (the planner's rules judge
        // the rest: how many, conflicts).
        for r in &self.authorized_ip_ranges {
            let v = r.value.trim();
            if cidr::parse_cidr(v).is_err() && cidr::parse_ipv4(v).is_err() {
                return Err(InputError::new(
                    &r.source,
                    format!("authorized IP range '{v}' is not an IPv4 CIDR or address (e.g. 20.30.40.0/24 or 20.30.40.50)"),
                ));
            }
        }
        let route_table_limit = self
            .route_table_limit
            .as_ref()
            .map_or(defaults::ROUTE_TABLE_LIMIT, |v| v.value);

        let top_surge = self.max_surge.as_ref().map(parse_surge).transpose()?;
        let mut node_pools = Vec::with_capacity(pools_in.len());
        for (i, p) in pools_in.iter().enumerate() {
            let default_count = if implicit {
                defaults::NODE_COUNT
            } else {
                defaults::API_POOL_COUNT
            };
            let count = self
                .node_count
                .as_ref()
                .or(p.count.as_ref())
                .map_or(default_count, |v| v.value);
            let max_pods = self
                .max_pods
                .as_ref()
                .or(p.max_pods.as_ref())
                .map_or(plugin.default_max_pods(dynamic), |v| v.value);
            let max_surge = match (top_surge, &p.max_surge) {
                (Some(s), _) => s,
                (None, Some(s)) => parse_surge(s)?,
                (None, None) => MaxSurge::default(),
            };
            node_pools.push(NodePool {
                name: p.name.clone(),
                count,
                max_pods,
                max_surge,
                mode: p.mode.as_ref().map(|m| m.value.clone()),
                subnet: own_subnets[i].clone(),
                pod_subnet: own_pod_subnets[i].clone(),
                pod_ip_allocation_mode: p.pod_ip_allocation_mode.as_ref().map(|m| m.value.clone()),
            });
        }

        // Other subnets of the VNet(s): the service CIDR must avoid them.
        let used: Vec<Ipv4Net> = std::iter::once(subnet_cidr)
            .chain(pod_subnet_cidr)
            .chain(
                node_pools
                    .iter()
                    .filter_map(|p| p.subnet.as_ref().and_then(|s| s.cidr)),
            )
            .chain(
                node_pools
                    .iter()
                    .filter_map(|p| p.pod_subnet.as_ref().and_then(|s| s.cidr)),
            )
            .collect();
        let mut other_subnets = Vec::new();
        for ks in &self.known_subnets {
            for pfx in ks.prefixes.iter().filter(|p| !p.value.contains(':')) {
                if let Ok(c) = cidr::parse_cidr(&pfx.value) {
                    if !used.contains(&c) {
                        other_subnets.push(NamedSubnet {
                            name: format!("{}/{}", ks.vnet, ks.name),
                            cidr: c,
                        });
                    }
                }
            }
        }

        let v6 = |v: &Option<Sourced<String>>| -> Result<Option<Ipv6Net>, InputError> {
            v.as_ref()
                .map(|s| {
                    s.value.trim().parse::<Ipv6Net>().map_err(|e| {
                        InputError::new(
                            &s.source,
                            format!("'{}' is not an IPv6 CIDR: {e}", s.value),
                        )
                    })
                })
                .transpose()
        };
        // A dual-stack design without IPv6 ranges gets AKS's IPv6 defaults:
        // both families are planned, never the IPv4 half alone.
        let dual = self
            .ip_families
            .iter()
            .any(|f| f.value.trim().eq_ignore_ascii_case("IPv6"));
        let family_default = |v: &Option<Sourced<String>>, d: &str, what: &str| {
            v.clone().or_else(|| {
                (dual && plugin != NetworkPlugin::Azure).then(|| {
                    Sourced::new(d.to_string(), format!("{what} (AKS's dual-stack default)"))
                })
            })
        };
        let pod_cidr_v6 = family_default(&self.pod_cidr_v6, defaults::POD_CIDR_V6, "IPv6 pod CIDR");
        let service_cidr_v6 = family_default(
            &self.service_cidr_v6,
            defaults::SERVICE_CIDR_V6,
            "IPv6 service CIDR",
        );
        let ipv6 = {
            let d = Ipv6Design {
                vnet_cidrs: self
                    .vnet_cidrs_v6
                    .iter()
                    .map(|s| {
                        s.value.trim().parse::<Ipv6Net>().map_err(|e| {
                            InputError::new(
                                &s.source,
                                format!("'{}' is not an IPv6 CIDR: {e}", s.value),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                pod_cidr: v6(&pod_cidr_v6)?,
                service_cidr: v6(&service_cidr_v6)?,
            };
            (d != Ipv6Design::default()).then_some(d)
        };
        let text = |v: &Option<Sourced<String>>| v.as_ref().map(|s| s.value.trim().to_string());
        let o = &self.outbound;
        let outbound = Outbound {
            outbound_type: text(&o.outbound_type),
            lb_managed_ips: o.lb_managed_ips.as_ref().map(|v| v.value),
            lb_own_ips: o.lb_own_ips.as_ref().map(|v| v.value),
            lb_allocated_ports: o.lb_allocated_ports.as_ref().map(|v| v.value),
            nat_managed_ips: o.nat_managed_ips.as_ref().map(|v| v.value),
            nat_idle_timeout: o.nat_idle_timeout.as_ref().map(|v| v.value),
        };

        Ok(Resolved {
            network: ClusterNetwork {
                network_plugin: plugin,
                vnet_cidrs,
                subnet_cidr,
                pod_subnet_cidr,
                pod_cidr,
                service_cidr,
                dns_service_ip,
                node_pools,
                route_table_limit,
                vnet_known,
                byo_subnet: self.subnet_cidr.is_some() || own_subnets.iter().any(Option::is_some),
                other_subnets,
                network_policy: text(&self.network_policy),
                network_dataplane: text(&self.network_dataplane),
                outbound,
                authorized_ip_ranges: self
                    .authorized_ip_ranges
                    .iter()
                    .map(|s| s.value.trim().to_string())
                    .collect(),
                private_cluster: self.private_cluster.as_ref().is_some_and(|v| v.value),
                load_balancer_sku: text(&self.load_balancer_sku),
                kubernetes_version: text(&self.kubernetes_version),
                ip_families: self
                    .ip_families
                    .iter()
                    .map(|s| s.value.trim().to_string())
                    .collect(),
                ipv6,
            },
            notes,
        })
    }
}

fn parse_net(
    v: Option<&Sourced<String>>,
    default: &str,
    flag: &str,
) -> Result<Ipv4Net, InputError> {
    match v {
        Some(v) => {
            cidr::parse_cidr(&v.value).map_err(|e| InputError::new(&v.source, e.to_string()))
        }
        None => cidr::parse_cidr(default).map_err(|e| InputError::new(flag, e.to_string())),
    }
}

fn parse_surge(v: &Sourced<String>) -> Result<MaxSurge, InputError> {
    v.value
        .parse()
        .map_err(|e: super::MaxSurgeError| InputError::new(&v.source, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(v: &str, f: &str) -> Option<Sourced<String>> {
        Some(Sourced::new(v.to_string(), f))
    }

    #[test]
    fn model_selection_follows_az() {
        let mut i = SpecInput::default();
        assert_eq!(i.network_plugin().unwrap(), NetworkPlugin::Overlay);
        i.network_plugin = flag("azure", "--network-plugin");
        assert_eq!(i.network_plugin().unwrap(), NetworkPlugin::Azure);
        i.network_plugin_mode = flag("Overlay", "--network-plugin-mode");
        assert_eq!(i.network_plugin().unwrap(), NetworkPlugin::Overlay);
        i.network_plugin = flag("kubenet", "--network-plugin");
        let e = i.network_plugin().unwrap_err();
        assert_eq!(e.field, "--network-plugin-mode");
        i.network_plugin_mode = flag("bridge", "--network-plugin-mode");
        assert!(i.network_plugin().unwrap_err().message.contains("'bridge'"));
        i.network_plugin_mode = None;
        i.network_plugin = flag("cilium", "--network-plugin");
        assert!(i.network_plugin().unwrap_err().message.contains("'cilium'"));
    }

    #[test]
    fn defaults_are_aks_defaults() {
        let r = SpecInput::default()
            .resolve(NetworkPlugin::Overlay, false)
            .unwrap();
        let n = r.network;
        assert_eq!(n.vnet_cidrs[0].to_string(), "10.224.0.0/12");
        assert_eq!(n.subnet_cidr.to_string(), "10.224.0.0/16");
        assert_eq!(n.pod_cidr.unwrap().to_string(), "10.244.0.0/16");
        assert_eq!(n.service_cidr.to_string(), "10.0.0.0/16");
        assert_eq!(n.dns_service_ip.to_string(), "10.0.0.10");
        assert_eq!(n.node_pools[0].count, 3);
        assert_eq!(n.node_pools[0].max_pods, 250);
        assert_eq!(n.node_pools[0].max_surge, MaxSurge::Count(1));
        assert_eq!(n.route_table_limit, 400);
        let azure = SpecInput::default()
            .resolve(NetworkPlugin::Azure, false)
            .unwrap();
        assert_eq!(azure.network.pod_cidr, None);
        assert_eq!(azure.network.node_pools[0].max_pods, 30);
    }

    #[test]
    fn unparsable_values_name_their_flag() {
        let i = SpecInput {
            pod_cidr: flag("10.244.0.0/33", "--pod-cidr"),
            ..SpecInput::default()
        };
        let e = i.resolve(NetworkPlugin::Kubenet, false).unwrap_err();
        assert_eq!(e.field, "--pod-cidr");
        assert!(e.to_string().contains("prefix length '33'"), "{e}");
        let i = SpecInput {
            max_surge: flag("lots", "--max-surge"),
            ..SpecInput::default()
        };
        assert_eq!(
            i.resolve(NetworkPlugin::Kubenet, false).unwrap_err().field,
            "--max-surge"
        );
        let i = SpecInput {
            dns_service_ip: flag("10.0.0.300", "--dns-service-ip"),
            ..SpecInput::default()
        };
        assert_eq!(
            i.resolve(NetworkPlugin::Kubenet, false).unwrap_err().field,
            "--dns-service-ip"
        );
    }

    #[test]
    fn subnet_alone_implies_its_vnet() {
        let i = SpecInput {
            subnet_cidr: flag("192.168.0.0/24", "--subnet-cidr"),
            ..SpecInput::default()
        };
        let n = i.resolve(NetworkPlugin::Kubenet, false).unwrap().network;
        assert_eq!(n.vnet_cidrs, vec![n.subnet_cidr]);
    }

    #[test]
    fn flags_override_file_and_every_pool() {
        let file = SpecInput {
            pod_cidr: flag("10.10.0.0/16", "f: podCidr"),
            pools: vec![
                PoolInput {
                    name: "a".into(),
                    count: Some(Sourced::new(5, "f")),
                    max_pods: Some(Sourced::new(40, "f")),
                    ..PoolInput::default()
                },
                PoolInput {
                    name: "b".into(),
                    count: Some(Sourced::new(7, "f")),
                    max_surge: flag("50%", "f"),
                    ..PoolInput::default()
                },
            ],
            ..SpecInput::default()
        };
        let flags = SpecInput {
            pod_cidr: flag("10.20.0.0/16", "--pod-cidr"),
            max_pods: Some(Sourced::new(60, "--max-pods")),
            ..SpecInput::default()
        };
        let n = file
            .overridden_by(flags)
            .resolve(NetworkPlugin::Kubenet, false)
            .unwrap()
            .network;
        assert_eq!(n.pod_cidr.unwrap().to_string(), "10.20.0.0/16");
        assert_eq!(n.node_pools.len(), 2);
        assert!(n.node_pools.iter().all(|p| p.max_pods == 60));
        assert_eq!(n.node_pools[1].max_surge, MaxSurge::Percent(50));
        assert_eq!(n.node_count(), 12);
        assert_eq!(n.surge_nodes(), 1 + 4);
    }

    #[test]
    fn compare_drops_the_pod_subnet_for_other_models() {
        let i = SpecInput {
            pod_subnet_cidr: flag("10.225.0.0/16", "--pod-subnet-cidr"),
            ..SpecInput::default()
        };
        let k = i.resolve(NetworkPlugin::Kubenet, true).unwrap();
        assert_eq!(k.network.pod_subnet_cidr, None);
        assert_eq!(k.notes[0].code, "pod-subnet-ignored");
        let a = i.resolve(NetworkPlugin::Azure, true).unwrap();
        assert!(a.network.is_dynamic());
        assert_eq!(a.network.node_pools[0].max_pods, 250);
        // Outside compare mode the planner gets to reject it.
        let k = i.resolve(NetworkPlugin::Kubenet, false).unwrap();
        assert!(k.network.pod_subnet_cidr.is_some());
    }
}
