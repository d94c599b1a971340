//! Kubernetes YAML that describes AKS clusters: azure-service-operator
//! (`ManagedCluster`, `ManagedClustersAgentPool`, `VirtualNetwork`,
//! `VirtualNetworksSubnet`: `spec` mirrors the ARM properties) and
//! cluster-api-provider-azure's AKS flavour (`Cluster`,
//! `AzureManagedControlPlane`, `AzureManagedMachinePool`, `MachinePool`),
//! whose `${VAR:=default}` placeholders are read like template
//! parameters: `--parameter VAR=value` sets them.

use serde_json::{json, Map, Value};

use crate::finding::Finding;

use super::arm::lazy::Lazy;
use super::arm::read::Reader;
use super::arm::{subnet_of, Collected, Parameters, VnetInfo};
use super::input::{InputError, Pending, PoolInput, Sourced, SpecInput, SubnetRef};

/// CAPZ's defaults for an AzureManagedControlPlane without a
/// `virtualNetwork` (`azuremanagedcontrolplane_default.go`).
pub const CAPZ_VNET_CIDR: &str = "10.0.0.0/8";
pub const CAPZ_SUBNET_CIDR: &str = "10.240.0.0/16";

fn kind_of(v: &Value) -> (String, String) {
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api.split('/').next().unwrap_or("").to_ascii_lowercase();
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (group, kind)
}

fn name_of(v: &Value) -> Option<String> {
    v.get("spec")
        .and_then(|s| s.get("azureName"))
        .or_else(|| v.get("metadata").and_then(|m| m.get("name")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Reads one Kubernetes object into `c` (clusters, pools, VNets) and
/// `input` (CAPZ settings that live outside the cluster object).
pub(crate) fn collect(
    v: &Value,
    label: &str,
    params: &Parameters,
    declared: &mut Vec<String>,
    c: &mut Collected,
    input: &mut SpecInput,
) -> Result<(), InputError> {
    let (group, kind) = kind_of(v);
    if aso(v, &group, &kind, label, c, input) {
        return Ok(());
    }
    if group.starts_with("infrastructure.cluster.x-k8s.io") || group.starts_with("cluster.x-k8s.io")
    {
        // The placeholders are this file's parameters.
        collect_vars(v, declared);
        let v = substitute(v, params);
        return capz(&v, &kind, label, c, input);
    }
    c.notes.push(Finding::new(
        "document-ignored",
        format!("{label}: {kind} ({group}) says nothing about the cluster network; ignored"),
    ));
    Ok(())
}

/// An azure-service-operator object (`containerservice.azure.com`,
/// `network.azure.com`); false when `v` is not one.
fn aso(
    v: &Value,
    group: &str,
    kind: &str,
    label: &str,
    c: &mut Collected,
    input: &mut SpecInput,
) -> bool {
    let spec = Lazy::concrete(v.clone(), label, "")
        .get("spec")
        .ok()
        .flatten();
    let name = name_of(v);
    if group.ends_with("containerservice.azure.com") {
        let Some(spec) = spec else { return true };
        match kind {
            "ManagedCluster" => {
                let src = format!(
                    "{label}: ManagedCluster {}",
                    name.clone().unwrap_or_default()
                );
                c.clusters.push((spec, name, src));
            }
            "ManagedClustersAgentPool" => {
                let owner = v
                    .pointer("/spec/owner/name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                c.pools.push((owner, name, spec));
            }
            _ => {}
        }
        return true;
    }
    if group.ends_with("network.azure.com") {
        let Some(spec) = spec else { return true };
        let mut r = Reader { input };
        match kind {
            "VirtualNetwork" => {
                let mut info = super::arm::vnet_of(&mut r, name.as_deref().unwrap_or(""), &spec);
                // ASO subnets are separate objects; inline ones too.
                info.subnets.retain(|s| !s.prefixes.is_empty());
                c.vnets.push(info);
            }
            "VirtualNetworksSubnet" => {
                let owner = v
                    .pointer("/spec/owner/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let _ = subnet_of(&mut r, name.as_deref().unwrap_or(""), &owner, &spec);
                c.subnets.push((owner, name.unwrap_or_default(), spec));
            }
            _ => {}
        }
        return true;
    }
    false
}

/// `${VAR}`, `${VAR:=d}`, `${VAR:-d}`, `${VAR=d}`, `${VAR-d}` in `s`.
/// Unset variables without a default are left as `${VAR}` and reported
/// when their field is read.
fn subst_text(s: &str, params: &Parameters) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        // Nested `${A:=${B}}`: find the matching brace.
        let mut depth = 1;
        let mut end = None;
        for (j, ch) in after.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            out.push_str(&rest[i..]);
            return out;
        };
        let body = &after[..end];
        let (var, default) = match body.find([':', '=', '-']) {
            Some(k) => {
                let d = body[k..]
                    .trim_start_matches(':')
                    .trim_start_matches(['=', '-']);
                (&body[..k], Some(d))
            }
            None => (body, None),
        };
        match (params.text(var), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(&subst_text(d, params)),
            (None, None) => out.push_str(&format!("${{{var}}}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn substitute(v: &Value, params: &Parameters) -> Value {
    match v {
        Value::String(s) if s.contains("${") => {
            let t = subst_text(s, params);
            // `replicas: ${N:=2}` is a number once substituted.
            match t.trim().parse::<i64>() {
                Ok(n) if !t.contains("${") => Value::from(n),
                _ => Value::String(t),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, params)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, params)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn collect_vars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let after = &rest[i + 2..];
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                out.push(after[..end].to_string());
                rest = &after[end..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_vars(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_vars(x, out)),
        _ => {}
    }
}

/// A field that still holds `${VAR}` after substitution.
fn unresolved(s: &Sourced<String>, flag: Option<&str>) -> Option<InputError> {
    let i = s.value.find("${")?;
    let var: String = s.value[i + 2..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let also = flag.map_or(String::new(), |f| format!(" or {f}"));
    Some(InputError::new(
        &s.source,
        format!("'{}' uses ${{{var}}}, which has no default and no value; give it with --parameter {var}=VALUE{also}", s.value),
    ))
}

fn capz(
    v: &Value,
    kind: &str,
    label: &str,
    c: &mut Collected,
    input: &mut SpecInput,
) -> Result<(), InputError> {
    let name = name_of(v);
    let doc = Lazy::concrete(v.clone(), label, kind);
    let Some(spec) = doc.get("spec").ok().flatten() else {
        return Ok(());
    };
    let mut r = Reader { input };
    match kind {
        "Cluster" => {
            let net = spec.get("clusterNetwork").ok().flatten();
            if let Some(net) = net {
                for (what, flag) in [("services", "--service-cidr"), ("pods", "--pod-cidr")] {
                    if let Some(blocks) = net.at(&[what, "cidrBlocks"]).ok().flatten() {
                        for b in blocks.items().unwrap_or_default() {
                            let Ok(Some(t)) = b.text() else { continue };
                            let s = Sourced::new(t, b.source());
                            if let Some(e) = unresolved(&s, Some(flag)) {
                                r.input.pending.push(Pending {
                                    covered_by: Some(if what == "pods" {
                                        "--pod-cidr"
                                    } else {
                                        "--service-cidr"
                                    }),
                                    error: e,
                                });
                                continue;
                            }
                            let slot = match (what, s.value.contains(':')) {
                                ("services", false) => &mut r.input.service_cidr,
                                ("services", true) => &mut r.input.service_cidr_v6,
                                (_, false) => &mut r.input.pod_cidr,
                                (_, true) => &mut r.input.pod_cidr_v6,
                            };
                            slot.get_or_insert(s);
                        }
                    }
                }
            }
        }
        "AzureManagedControlPlane" => {
            // The ARM-shaped fields, under their CAPZ names.
            let np = Lazy::concrete(
                json!({
                    "networkPlugin": spec.get("networkPlugin").ok().flatten().and_then(|x| x.value().ok()),
                    "networkPluginMode": spec.get("networkPluginMode").ok().flatten().and_then(|x| x.value().ok()),
                    "networkPolicy": spec.get("networkPolicy").ok().flatten().and_then(|x| x.value().ok()),
                    "networkDataplane": spec.get("networkDataplane").ok().flatten().and_then(|x| x.value().ok()),
                    "dnsServiceIP": spec.get("dnsServiceIP").ok().flatten().and_then(|x| x.value().ok()),
                    "outboundType": spec.get("outboundType").ok().flatten().and_then(|x| x.value().ok()),
                    "loadBalancerProfile": spec.get("loadBalancerProfile").ok().flatten().and_then(|x| x.value().ok()),
                }),
                label,
                &format!("{kind}.spec"),
            );
            let saved = (
                r.input.pod_cidr.take(),
                r.input.service_cidr.take(),
                r.input.pod_cidr_v6.take(),
                r.input.service_cidr_v6.take(),
            );
            r.network_profile(&np);
            // Cluster ranges come from the Cluster object, not this one.
            (
                r.input.pod_cidr,
                r.input.service_cidr,
                r.input.pod_cidr_v6,
                r.input.service_cidr_v6,
            ) = saved;
            r.input.kubernetes_version = r.text(&spec, "version", None);
            if let Ok(Some(api)) = spec.get("apiServerAccessProfile") {
                if let Ok(Some(list)) = api.get("authorizedIPRanges") {
                    for it in list.items().unwrap_or_default() {
                        if let Ok(Some(t)) = it.text() {
                            r.input
                                .authorized_ip_ranges
                                .push(Sourced::new(t, it.source()));
                        }
                    }
                }
            }
            let vnet = spec.get("virtualNetwork").ok().flatten();
            let text = |l: &Option<Lazy>, k: &[&str]| {
                l.as_ref()
                    .and_then(|l| l.at(k).ok().flatten())
                    .and_then(|x| x.text().ok().flatten().map(|t| Sourced::new(t, x.source())))
            };
            let vname = text(&vnet, &["name"])
                .map_or_else(|| name.clone().unwrap_or_default(), |s| s.value);
            let vcidr = text(&vnet, &["cidrBlock"]).unwrap_or_else(|| {
                Sourced::new(
                    CAPZ_VNET_CIDR.to_string(),
                    format!("{label}: {kind}.spec.virtualNetwork.cidrBlock (CAPZ default)"),
                )
            });
            let sname = text(&vnet, &["subnet", "name"])
                .map_or_else(|| name.clone().unwrap_or_default(), |s| s.value);
            let scidr = text(&vnet, &["subnet", "cidrBlock"]).unwrap_or_else(|| {
                Sourced::new(
                    CAPZ_SUBNET_CIDR.to_string(),
                    format!("{label}: {kind}.spec.virtualNetwork.subnet.cidrBlock (CAPZ default)"),
                )
            });
            for s in [&vcidr, &scidr] {
                if let Some(e) = unresolved(s, None) {
                    r.input.pending.push(Pending {
                        covered_by: Some("--subnet-cidr"),
                        error: e,
                    });
                }
            }
            c.vnets.push(VnetInfo {
                name: vname.clone(),
                prefixes: vec![vcidr],
                subnets: vec![super::input::KnownSubnet {
                    vnet: vname.clone(),
                    name: sname.clone(),
                    prefixes: vec![scidr],
                    ..Default::default()
                }],
            });
            // CAPZ puts every pool in the control plane's subnet unless the
            // pool names its own.
            c.capz_subnet = Some(sname);
            c.clusters.push((
                Lazy::concrete(json!({}), label, kind),
                name,
                format!("{label}: AzureManagedControlPlane"),
            ));
            if spec.get("networkPlugin").ok().flatten().is_none() {
                r.input.notes.push(Finding::new(
                    "network-plugin-defaulted",
                    format!("{label}: {kind}.spec.networkPlugin is not set; {}; set it, or give --network-plugin", super::input::PLUGIN_DEFAULT),
                ));
            }
        }
        "AzureManagedMachinePool" => {
            let pool_name = r
                .text(&spec, "name", None)
                .map(|s| s.value)
                .or(name.clone());
            let max = spec
                .at(&["scaling", "maxSize"])
                .ok()
                .flatten()
                .and_then(|x| {
                    x.count()
                        .ok()
                        .flatten()
                        .map(|n| Sourced::new(n, x.source()))
                });
            let subnet = r.text(&spec, "subnetName", None).map(|s| SubnetRef {
                id: s.value,
                source: s.source,
                ..Default::default()
            });
            let pool = PoolInput {
                name: pool_name.unwrap_or_default(),
                count: max,
                max_pods: r.count(&spec, "maxPods", Some("--max-pods")),
                mode: r.text(&spec, "mode", None),
                subnet,
                ..PoolInput::default()
            };
            c.capz_pools.push((name.unwrap_or_default(), pool));
        }
        // CAPZ's ASO flavour: the control plane, cluster and pools each
        // hold azure-service-operator objects in `spec.resources`; a
        // MachinePool's replicas give its ASO pool's count.
        "AzureASOManagedControlPlane" | "AzureASOManagedCluster" | "AzureASOManagedMachinePool" => {
            if kind == "AzureASOManagedControlPlane" {
                if let Some(ver) = r.text(&spec, "version", None) {
                    r.input.kubernetes_version = Some(ver);
                }
            }
            let resources = v
                .pointer("/spec/resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (i, res) in resources.iter().enumerate() {
                let (g, k) = kind_of(res);
                let inner = format!(
                    "{label}: {kind} {}: spec.resources[{i}]",
                    name.clone().unwrap_or_default()
                );
                if aso(res, &g, &k, &inner, c, r.input) && k == "ManagedClustersAgentPool" {
                    if let Some(pool) = name_of(res) {
                        c.capz_aso_pools
                            .push((name.clone().unwrap_or_default(), pool));
                    }
                }
            }
        }
        "MachinePool" => {
            let infra = v
                .pointer("/spec/template/spec/infrastructureRef/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let replicas = match spec.get("replicas").ok().flatten() {
                Some(x) => match x.value() {
                    Ok(Value::String(s)) => {
                        let s = Sourced::new(s, x.source());
                        r.input.pending.push(Pending {
                            covered_by: Some("--node-count"),
                            error: unresolved(&s, Some("--node-count")).unwrap_or_else(|| {
                                InputError::new(
                                    &s.source,
                                    format!("'{}' is not a node count", s.value),
                                )
                            }),
                        });
                        None
                    }
                    _ => x
                        .count()
                        .ok()
                        .flatten()
                        .map(|n| Sourced::new(n, x.source())),
                },
                None => None,
            };
            c.capz_replicas.push((infra, replicas));
        }
        _ => {}
    }
    Ok(())
}
