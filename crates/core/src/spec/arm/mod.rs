//! Reads a design from an ARM/Bicep document (already parsed from JSON or
//! YAML): a whole ARM template, a `Microsoft.ContainerService/managedClusters`
//! resource, its `properties` (also what `az aks show` prints), or a bare
//! `networkProfile`.
//!
//! A managed cluster names its subnets by resource ID only, so their ranges
//! come from flags — or, in a whole template, from a `virtualNetworks`
//! resource whose subnet the pools reference by name.

pub mod expr;

use serde_json::{Map, Value};

use super::input::{InputError, PoolInput, Sourced, SpecInput};

/// Kept as an alias so callers can name the error of this module.
pub type ArmError = InputError;

const MANAGED_CLUSTERS: &str = "microsoft.containerservice/managedclusters";
const VIRTUAL_NETWORKS: &str = "microsoft.network/virtualnetworks";

/// Extracts a [`SpecInput`] from `doc`; `label` (usually the file name)
/// prefixes every source so errors say where the bad field is.
pub fn from_document(doc: &Value, label: &str) -> Result<SpecInput, ArmError> {
    let Some(root) = doc.as_object() else {
        return Err(InputError::new(
            label,
            "the document is not an object; give an ARM/Bicep managedClusters resource, its properties, or a networkProfile",
        ));
    };
    let mut vnets: Vec<(&Map<String, Value>, String)> = Vec::new();
    let (props, path) = if let Some(resources) = root.get("resources").and_then(Value::as_array) {
        // A whole template: find the cluster and any VNets beside it.
        let mut cluster = None;
        for (i, r) in resources.iter().enumerate() {
            let ty = r.get("type").and_then(Value::as_str).unwrap_or("");
            if ty.eq_ignore_ascii_case(MANAGED_CLUSTERS) && cluster.is_none() {
                cluster = Some((r, format!("resources[{i}]")));
            } else if ty.eq_ignore_ascii_case(VIRTUAL_NETWORKS) {
                if let Some(p) = r.get("properties").and_then(Value::as_object) {
                    vnets.push((p, format!("resources[{i}].properties")));
                }
            }
        }
        let Some((res, at)) = cluster else {
            return Err(InputError::new(
                label,
                "the template has no Microsoft.ContainerService/managedClusters resource",
            ));
        };
        properties_of(res, label, &at)?
    } else if root.contains_key("properties") {
        properties_of(doc, label, "")?
    } else {
        (root, String::new())
    };

    let field = |rel: &str| {
        let full = if path.is_empty() {
            rel.to_string()
        } else {
            format!("{path}.{rel}")
        };
        format!("{label}: {full}")
    };

    // `props` is either the cluster's properties or a bare networkProfile.
    let (profile, profile_path) = match props.get("networkProfile") {
        Some(Value::Object(p)) => (Some(p), "networkProfile".to_string()),
        Some(_) => {
            return Err(InputError::new(
                field("networkProfile"),
                "must be an object",
            ))
        }
        None if looks_like_network_profile(props) => (Some(props), String::new()),
        None => (None, String::new()),
    };
    let pools_json = match props.get("agentPoolProfiles") {
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            return Err(InputError::new(
                field("agentPoolProfiles"),
                "must be a list",
            ))
        }
        None => None,
    };
    if profile.is_none() && pools_json.is_none() {
        return Err(InputError::new(
            label,
            "found no networkProfile and no agentPoolProfiles; give a managedClusters resource, its properties, or a networkProfile",
        ));
    }

    let mut input = SpecInput::default();
    if let Some(np) = profile {
        let at = |k: &str| {
            if profile_path.is_empty() {
                field(k)
            } else {
                field(&format!("{profile_path}.{k}"))
            }
        };
        input.network_plugin = text(
            np,
            "networkPlugin",
            &at("networkPlugin"),
            "--network-plugin",
        )?;
        input.network_plugin_mode = text(
            np,
            "networkPluginMode",
            &at("networkPluginMode"),
            "--network-plugin-mode",
        )?;
        input.pod_cidr = text(np, "podCidr", &at("podCidr"), "--pod-cidr")?.or(first_ipv4(
            np,
            "podCidrs",
            &at("podCidrs"),
        )?);
        input.service_cidr = text(np, "serviceCidr", &at("serviceCidr"), "--service-cidr")?
            .or(first_ipv4(np, "serviceCidrs", &at("serviceCidrs"))?);
        input.dns_service_ip = text(np, "dnsServiceIP", &at("dnsServiceIP"), "--dns-service-ip")?;
    }

    let mut subnet_refs = Vec::new();
    let mut pod_subnet_refs = Vec::new();
    for (i, p) in pools_json.into_iter().flatten().enumerate() {
        let at = |k: &str| field(&format!("agentPoolProfiles[{i}].{k}"));
        let Some(p) = p.as_object() else {
            return Err(InputError::new(
                field(&format!("agentPoolProfiles[{i}]")),
                "must be an object",
            ));
        };
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("pool{}", i + 1), str::to_string);
        let autoscale = p.get("enableAutoScaling").and_then(Value::as_bool) == Some(true);
        // An autoscaled pool can grow to maxCount: plan for that.
        let count = if autoscale && p.contains_key("maxCount") {
            number(p, "maxCount", &at("maxCount"))?
        } else {
            number(p, "count", &at("count"))?
        };
        let max_pods = number(p, "maxPods", &at("maxPods"))?;
        let max_surge = match p.get("upgradeSettings") {
            Some(Value::Object(u)) => match u.get("maxSurge") {
                Some(Value::Number(n)) => {
                    Some(Sourced::new(n.to_string(), at("upgradeSettings.maxSurge")))
                }
                _ => text(
                    u,
                    "maxSurge",
                    &at("upgradeSettings.maxSurge"),
                    "--max-surge",
                )?,
            },
            _ => None,
        };
        let pod_subnet = p
            .get("podSubnetID")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(s) = p.get("vnetSubnetID").and_then(Value::as_str) {
            subnet_refs.push(s.to_string());
        }
        if let Some(s) = pod_subnet {
            pod_subnet_refs.push(s.to_string());
        }
        input.pools.push(PoolInput {
            name,
            count,
            max_pods,
            max_surge,
            uses_pod_subnet: pod_subnet.is_some(),
        });
    }

    // A template's VNet can give the VNet prefixes and the subnets' ranges.
    for (vnet, vpath) in vnets {
        let prefixes = vnet
            .get("addressSpace")
            .and_then(|a| a.get("addressPrefixes"))
            .and_then(Value::as_array);
        for (j, p) in prefixes.into_iter().flatten().enumerate() {
            if let Some(s) = p.as_str().filter(|s| !is_expression(s)) {
                let src = format!("{label}: {vpath}.addressSpace.addressPrefixes[{j}]");
                input.vnet_cidrs.push(Sourced::new(s.to_string(), src));
            }
        }
        let subnets = vnet.get("subnets").and_then(Value::as_array);
        for (j, s) in subnets.into_iter().flatten().enumerate() {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            let prefix = s
                .get("properties")
                .and_then(|p| p.get("addressPrefix"))
                .and_then(Value::as_str)
                .filter(|s| !is_expression(s));
            let (Some(prefix), false) = (prefix, name.is_empty()) else {
                continue;
            };
            let src = format!("{label}: {vpath}.subnets[{j}].properties.addressPrefix");
            let named = |refs: &[String]| refs.iter().any(|r| references_subnet(r, name));
            if input.subnet_cidr.is_none() && named(&subnet_refs) {
                input.subnet_cidr = Some(Sourced::new(prefix.to_string(), src));
            } else if input.pod_subnet_cidr.is_none() && named(&pod_subnet_refs) {
                input.pod_subnet_cidr = Some(Sourced::new(prefix.to_string(), src));
            }
        }
    }
    Ok(input)
}

fn properties_of<'a>(
    res: &'a Value,
    label: &str,
    at: &str,
) -> Result<(&'a Map<String, Value>, String), InputError> {
    let path = if at.is_empty() {
        "properties".to_string()
    } else {
        format!("{at}.properties")
    };
    match res.get("properties") {
        Some(Value::Object(p)) => Ok((p, path)),
        _ => Err(InputError::new(
            format!("{label}: {path}"),
            "must be an object",
        )),
    }
}

fn looks_like_network_profile(m: &Map<String, Value>) -> bool {
    [
        "networkPlugin",
        "networkPluginMode",
        "podCidr",
        "serviceCidr",
        "dnsServiceIP",
        "podCidrs",
        "serviceCidrs",
    ]
    .iter()
    .any(|k| m.contains_key(*k))
}

/// ARM template expressions (`[parameters('x')]`) cannot be evaluated here.
fn is_expression(s: &str) -> bool {
    let t = s.trim();
    t.starts_with('[') && t.ends_with(']') && !t.starts_with("[[")
}

fn references_subnet(reference: &str, name: &str) -> bool {
    reference.ends_with(&format!("/subnets/{name}"))
        || reference.contains(&format!("'{name}'"))
        || reference.contains(&format!("/subnets/{name}'"))
}

fn text(
    m: &Map<String, Value>,
    key: &str,
    source: &str,
    flag: &str,
) -> Result<Option<Sourced<String>>, InputError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_expression(s) => Err(InputError::new(
            source,
            format!(
                "'{s}' is an ARM expression aksnet cannot evaluate; pass the value with {flag}"
            ),
        )),
        Some(Value::String(s)) => Ok(Some(Sourced::new(s.clone(), source))),
        Some(other) => Err(InputError::new(
            source,
            format!("expected text, found {other}"),
        )),
    }
}

fn number(
    m: &Map<String, Value>,
    key: &str,
    source: &str,
) -> Result<Option<Sourced<u32>>, InputError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| Some(Sourced::new(n, source)))
            .ok_or_else(|| {
                InputError::new(
                    source,
                    format!("{n} is not a whole number from 0 to 4294967295"),
                )
            }),
        Some(Value::String(s)) if is_expression(s) => Err(InputError::new(
            source,
            format!(
                "'{s}' is an ARM expression aksnet cannot evaluate; pass the value with a flag"
            ),
        )),
        Some(other) => Err(InputError::new(
            source,
            format!("expected a number, found {other}"),
        )),
    }
}

fn first_ipv4(
    m: &Map<String, Value>,
    key: &str,
    source: &str,
) -> Result<Option<Sourced<String>>, InputError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(a.iter().enumerate().find_map(|(i, v)| {
            v.as_str()
                .filter(|s| !s.contains(':'))
                .map(|s| Sourced::new(s.to_string(), format!("{source}[{i}]")))
        })),
        Some(_) => Err(InputError::new(source, "must be a list of CIDRs")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::NetworkPlugin;
    use serde_json::json;

    #[test]
    fn reads_a_managed_cluster_resource() {
        let doc = json!({
            "type": "Microsoft.ContainerService/managedClusters",
            "apiVersion": "2024-05-01",
            "properties": {
                "networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay",
                    "podCidr": "192.168.0.0/16", "serviceCidr": "10.2.0.0/16", "dnsServiceIP": "10.2.0.10"},
                "agentPoolProfiles": [
                    {"name": "system", "count": 3, "maxPods": 110, "upgradeSettings": {"maxSurge": "33%"}},
                    {"name": "user", "count": 2, "enableAutoScaling": true, "maxCount": 20}
                ]
            }
        });
        let i = from_document(&doc, "c.json").unwrap();
        assert_eq!(i.network_plugin().unwrap(), NetworkPlugin::Overlay);
        assert_eq!(
            i.pod_cidr.as_ref().unwrap().source,
            "c.json: properties.networkProfile.podCidr"
        );
        let n = i.resolve(NetworkPlugin::Overlay, false).unwrap().network;
        assert_eq!(n.node_pools.len(), 2);
        assert_eq!(
            n.node_pools[1].count, 20,
            "autoscaled pools plan for maxCount"
        );
        assert_eq!(n.node_pools[1].max_pods, 250);
        assert_eq!(n.surge_nodes(), 1 + 1);
    }

    #[test]
    fn reads_properties_and_bare_profiles() {
        let props =
            json!({"networkProfile": {"networkPlugin": "kubenet"}, "agentPoolProfiles": []});
        assert_eq!(
            from_document(&props, "p")
                .unwrap()
                .network_plugin()
                .unwrap(),
            NetworkPlugin::Kubenet
        );
        let bare = json!({"networkPlugin": "azure", "serviceCidrs": ["fd00::/108", "10.9.0.0/16"]});
        let i = from_document(&bare, "b").unwrap();
        assert_eq!(i.network_plugin().unwrap(), NetworkPlugin::Azure);
        assert_eq!(i.service_cidr.unwrap().value, "10.9.0.0/16");
    }

    #[test]
    fn reads_a_template_with_its_vnet() {
        let doc = json!({"resources": [
            {"type": "Microsoft.Network/virtualNetworks", "name": "vnet",
             "properties": {"addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
               "subnets": [
                 {"name": "nodes", "properties": {"addressPrefix": "10.50.0.0/22"}},
                 {"name": "pods", "properties": {"addressPrefix": "10.50.64.0/18"}}]}},
            {"type": "Microsoft.ContainerService/managedClusters", "properties": {
                "networkProfile": {"networkPlugin": "azure"},
                "agentPoolProfiles": [{"name": "np", "count": 4,
                   "vnetSubnetID": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet', 'nodes')]",
                   "podSubnetID": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods"}]}}
        ]});
        let i = from_document(&doc, "t.json").unwrap();
        assert_eq!(i.vnet_cidrs[0].value, "10.50.0.0/16");
        assert_eq!(i.subnet_cidr.as_ref().unwrap().value, "10.50.0.0/22");
        assert_eq!(i.pod_subnet_cidr.as_ref().unwrap().value, "10.50.64.0/18");
        let n = i.resolve(NetworkPlugin::Azure, false).unwrap().network;
        assert!(n.is_dynamic());
    }

    #[test]
    fn pod_subnet_without_range_is_unusable() {
        let doc = json!({"agentPoolProfiles": [{"name": "np", "podSubnetID": "/x/subnets/pods"}],
                         "networkProfile": {"networkPlugin": "azure"}});
        let e = from_document(&doc, "f")
            .unwrap()
            .resolve(NetworkPlugin::Azure, false)
            .unwrap_err();
        assert!(e.to_string().contains("--pod-subnet-cidr"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let doc = json!({"properties": {"networkProfile": {"podCidr": "[parameters('podCidr')]"}}});
        let e = from_document(&doc, "f.json").unwrap_err();
        assert_eq!(e.field, "f.json: properties.networkProfile.podCidr");
        assert!(e.message.contains("--pod-cidr"));
        let doc = json!({"agentPoolProfiles": [{"count": -1}]});
        let e = from_document(&doc, "f").unwrap_err();
        assert_eq!(e.field, "f: agentPoolProfiles[0].count");
        assert!(from_document(&json!([1, 2]), "f").is_err());
        assert!(from_document(&json!({"foo": 1}), "f").is_err());
        assert!(from_document(&json!({"resources": []}), "f").is_err());
    }
}
