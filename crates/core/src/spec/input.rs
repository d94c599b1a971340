//! Raw design inputs (az-style flags, an ARM/Bicep file) and their resolution
//! into a [`ClusterNetwork`].
//!
//! Every value remembers where it came from, so an unusable value is reported
//! as "--pod-cidr: ..." or "cluster.json: properties.networkProfile.podCidr:
//! ..." — the user sees which flag or field to change.

use std::fmt;

use crate::cidr::{self, Ipv4Net};
use crate::finding::Finding;

use super::{defaults, ClusterNetwork, MaxSurge, NetworkPlugin, NodePool};

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

/// One agent pool as read from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolInput {
    pub name: String,
    pub count: Option<Sourced<u32>>,
    pub max_pods: Option<Sourced<u32>>,
    pub max_surge: Option<Sourced<String>>,
    /// The pool names a `podSubnetID` (Azure CNI dynamic allocation).
    pub uses_pod_subnet: bool,
}

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
}

/// A resolved design plus what resolution had to ignore (planner warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub network: ClusterNetwork,
    pub notes: Vec<Finding>,
}

impl SpecInput {
    /// `self` (from a file) with every value given in `flags` taking precedence.
    pub fn overridden_by(self, flags: SpecInput) -> SpecInput {
        SpecInput {
            network_plugin: flags.network_plugin.or(self.network_plugin),
            network_plugin_mode: flags.network_plugin_mode.or(self.network_plugin_mode),
            vnet_cidrs: if flags.vnet_cidrs.is_empty() {
                self.vnet_cidrs
            } else {
                flags.vnet_cidrs
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
            pools: if flags.pools.is_empty() {
                self.pools
            } else {
                flags.pools
            },
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
            return Ok(NetworkPlugin::Overlay);
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

    /// Resolves the design for `plugin`. In `compare` mode, inputs that only
    /// make sense for another model are dropped with a warning instead of
    /// making the design invalid.
    pub fn resolve(&self, plugin: NetworkPlugin, compare: bool) -> Result<Resolved, InputError> {
        let mut notes = Vec::new();
        let net = |v: &Option<Sourced<String>>, default: &str, flag: &str| {
            parse_net(v.as_ref(), default, flag)
        };

        let subnet_cidr = net(&self.subnet_cidr, defaults::SUBNET_CIDR, "--subnet-cidr")?;
        let vnet_cidrs = if self.vnet_cidrs.is_empty() {
            // A given subnet without its VNet: the VNet is at least the subnet.
            if self.subnet_cidr.is_some() {
                vec![subnet_cidr]
            } else {
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
            None => None,
        };
        if compare && plugin != NetworkPlugin::Azure {
            if let (Some(p), Some(src)) = (pod_subnet_cidr.take(), &self.pod_subnet_cidr) {
                notes.push(Finding::new(
                    "pod-subnet-ignored",
                    format!(
                        "{} {p} is ignored for {plugin}: only Azure CNI takes pod addresses from a pod subnet",
                        src.source
                    ),
                ));
            }
        }
        let dynamic = plugin == NetworkPlugin::Azure && pod_subnet_cidr.is_some();
        if let Some(pool) = self.pools.iter().find(|p| p.uses_pod_subnet) {
            if pod_subnet_cidr.is_none() && plugin == NetworkPlugin::Azure {
                return Err(InputError::new(
                    format!("agent pool '{}'", pool.name),
                    "it names a podSubnetID, whose address range the file does not hold; give it with --pod-subnet-cidr",
                ));
            }
        }

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
            None => defaults::DNS_SERVICE_IP
                .parse()
                .expect("default DNS IP parses"),
        };
        let route_table_limit = self
            .route_table_limit
            .as_ref()
            .map_or(defaults::ROUTE_TABLE_LIMIT, |v| v.value);

        let top_surge = self.max_surge.as_ref().map(parse_surge).transpose()?;
        let pools_in: Vec<PoolInput> = if self.pools.is_empty() {
            vec![PoolInput {
                name: defaults::POOL_NAME.to_string(),
                ..PoolInput::default()
            }]
        } else {
            self.pools.clone()
        };
        let mut node_pools = Vec::with_capacity(pools_in.len());
        for p in &pools_in {
            let count = self
                .node_count
                .as_ref()
                .or(p.count.as_ref())
                .map_or(defaults::NODE_COUNT, |v| v.value);
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
            });
        }

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
        assert_eq!(a.network.node_pools[0].max_pods, 110);
        // Outside compare mode the planner gets to reject it.
        let k = i.resolve(NetworkPlugin::Kubenet, false).unwrap();
        assert!(k.network.pod_subnet_cidr.is_some());
    }
}
