//! Reads a design from ARM/Bicep documents and what tools print about AKS
//! clusters: whole templates (nested deployments, Bicep `languageVersion
//! 2.0` symbolic resources, copy loops, parameters), a
//! `Microsoft.ContainerService/managedClusters` resource, its `properties`,
//! `az aks show` output, or a bare `networkProfile`; and, through
//! [`super::k8s`], azure-service-operator and cluster-api-provider-azure
//! YAML.
//!
//! Every document of every `--file` is read together: a cluster in one
//! template names its subnets by resource ID, and the VNet holding them may
//! be in another. A subnet is matched by VNet and subnet name.

pub mod eval;
pub mod expr;
pub mod lazy;
pub mod read;
pub mod template;

use std::collections::HashMap;

use serde_json::Value;

use crate::finding::Finding;

use super::input::{InputError, KnownSubnet, Pending, Sourced, SpecInput, SubnetRef};
use super::k8s;
use lazy::Lazy;
use read::Reader;

/// Kept as an alias so callers can name the error of this module.
pub type ArmError = InputError;

pub const MANAGED_CLUSTERS: &str = "microsoft.containerservice/managedclusters";
pub const AGENT_POOLS: &str = "microsoft.containerservice/managedclusters/agentpools";
pub const VIRTUAL_NETWORKS: &str = "microsoft.network/virtualnetworks";
pub const SUBNETS: &str = "microsoft.network/virtualnetworks/subnets";
pub const DEPLOYMENTS: &str = "Microsoft.Resources/deployments";

/// One parsed document and the file it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub label: String,
}

/// Template parameter values from `--parameters FILE` and `--parameter
/// name=value`; the later wins.
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    /// (name, value, where it came from)
    pub values: Vec<(String, ParamValue, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// From a parameters file: typed already.
    Json(Value),
    /// From `--parameter name=value`: typed by the parameter's declaration.
    Text(String),
}

impl Parameters {
    /// Reads a deployment parameters file (`.parameters.json`, or what
    /// `bicep build-params` writes for a `.bicepparam`).
    pub fn add_file(&mut self, doc: &Value, label: &str) -> Result<(), InputError> {
        let ps = doc
            .get("parameters")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                InputError::new(
                    label,
                    "a parameters file has a \"parameters\" object ({\"parameters\": {\"name\": {\"value\": ...}}})",
                )
            })?;
        for (k, v) in ps {
            match v.get("value") {
                Some(val) => self.values.push((
                    k.clone(),
                    ParamValue::Json(val.clone()),
                    format!("{label}: parameters.{k}.value"),
                )),
                // A Key Vault reference: the value is a secret, never a range.
                None if v.get("reference").is_some() => {}
                None => {
                    return Err(InputError::new(
                        format!("{label}: parameters.{k}"),
                        "has no \"value\"",
                    ))
                }
            }
        }
        Ok(())
    }

    /// `--parameter name=value`.
    pub fn add_flag(&mut self, text: &str) -> Result<(), InputError> {
        let (k, v) = text.split_once('=').ok_or_else(|| {
            InputError::new(
                "--parameter",
                format!("'{text}' is not NAME=VALUE (for example --parameter agentCount=5)"),
            )
        })?;
        if k.trim().is_empty() {
            return Err(InputError::new(
                "--parameter",
                format!("'{text}' has no parameter name"),
            ));
        }
        self.values.push((
            k.trim().to_string(),
            ParamValue::Text(v.to_string()),
            format!("--parameter {k}"),
        ));
        Ok(())
    }

    /// The values typed for a template's declarations (a declaration that
    /// is a `$ref` takes its definition's type).
    fn for_template(
        &self,
        template: &serde_json::Map<String, Value>,
    ) -> Result<HashMap<String, Value>, InputError> {
        let decls = eval::get_ci(template, "parameters").and_then(Value::as_object);
        let definitions = eval::get_ci(template, "definitions").and_then(Value::as_object);
        let mut out = HashMap::new();
        for (k, v, src) in &self.values {
            let decl = decls.and_then(|d| eval::get_ci(d, k));
            let Some(decl) = decl else { continue };
            let decl = eval::with_definition(decl, definitions);
            let ty = decl
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_ascii_lowercase();
            let typed = match v {
                ParamValue::Json(j) => j.clone(),
                ParamValue::Text(t) => typed_text(t, &ty).map_err(|m| InputError::new(src, m))?,
            };
            out.insert(k.to_ascii_lowercase(), typed);
        }
        Ok(out)
    }

    fn names(&self) -> impl Iterator<Item = &(String, ParamValue, String)> {
        self.values.iter()
    }

    /// The value for a name, as text (CAPZ `${VAR}` substitution).
    pub fn text(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(k, _, _)| k == name)
            .map(|(_, v, _)| match v {
                ParamValue::Text(t) => t.clone(),
                ParamValue::Json(j) => eval::to_text(j),
            })
    }
}

fn typed_text(t: &str, ty: &str) -> Result<Value, String> {
    match ty {
        "int" => t
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{t}' is not a whole number, and the parameter is an int")),
        "bool" => match t.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "'{t}' is not true or false, and the parameter is a bool"
            )),
        },
        "array" | "object" | "secureobject" => serde_json::from_str(t)
            .map_err(|e| format!("'{t}' is not JSON ({e}), and the parameter is an {ty}")),
        _ => Ok(Value::String(t.to_string())),
    }
}

/// What the documents hold, before it is joined into one design.
#[derive(Default)]
pub(crate) struct Collected {
    /// (the cluster's properties, its name, the source for messages)
    pub(crate) clusters: Vec<(Lazy, Option<String>, String)>,
    /// Separate agent pools: (parent cluster name, pool name, properties).
    pub(crate) pools: Vec<(Option<String>, Option<String>, Lazy)>,
    pub(crate) vnets: Vec<VnetInfo>,
    /// Child subnet resources: (vnet, subnet, properties).
    pub(crate) subnets: Vec<(String, String, Lazy)>,
    pub(crate) notes: Vec<Finding>,
    /// CAPZ: AzureManagedMachinePools by object name, MachinePool replicas
    /// by the pool they point at, the control plane's subnet.
    pub(crate) capz_pools: Vec<(String, super::input::PoolInput)>,
    pub(crate) capz_replicas: Vec<(String, Option<Sourced<u32>>)>,
    pub(crate) capz_subnet: Option<String>,
    /// CAPZ ASO flavour: (AzureASOManagedMachinePool name, the name of the
    /// ASO agent pool it holds), joined to MachinePool replicas.
    pub(crate) capz_aso_pools: Vec<(String, String)>,
}

/// A VNet of the inputs.
#[derive(Debug, Clone, Default)]
pub struct VnetInfo {
    pub name: String,
    pub prefixes: Vec<Sourced<String>>,
    pub subnets: Vec<KnownSubnet>,
}

/// Reads every document into one [`SpecInput`].
pub fn from_documents(docs: &[Document], params: &Parameters) -> Result<SpecInput, ArmError> {
    let mut c = Collected::default();
    let mut declared: Vec<String> = Vec::new();
    let mut input = SpecInput::default();
    // Templates may link each other (`templateLink`): a file another one
    // links is read as that deployment, with the parameters it passes, and
    // not on its own as well.
    let links = template::Links {
        docs: docs
            .iter()
            .filter_map(|d| {
                let m = d.value.as_object()?;
                eval::get_ci(m, "resources").filter(|r| r.is_array() || r.is_object())?;
                Some((d.label.as_str(), m))
            })
            .collect(),
    };
    let mut linked: Vec<String> = Vec::new();
    if links.docs.len() > 1 {
        for (label, m) in &links.docs {
            let given = params.for_template(m).unwrap_or_default();
            let (_, w) = template::walk(m, &given, label, &links);
            linked.extend(w.linked.into_iter().filter(|l| l != label));
        }
    }
    for d in docs {
        if linked.contains(&d.label) {
            continue;
        }
        classify(d, params, &links, &mut c, &mut declared, &mut input)?;
    }
    // Every --parameter must belong to some template (or CAPZ variable).
    for (k, _, src) in params.names() {
        if !declared.iter().any(|d| d.eq_ignore_ascii_case(k)) {
            let mut known = declared.clone();
            known.sort();
            known.dedup();
            return Err(InputError::new(
                src,
                if known.is_empty() {
                    format!("no --file declares a parameter '{k}'")
                } else {
                    format!(
                        "no --file declares a parameter '{k}'; they declare {}",
                        known.join(", ")
                    )
                },
            ));
        }
    }
    input.notes.append(&mut c.notes);

    let Some((props, cname, csrc)) = c.clusters.first().cloned() else {
        let mut what: Vec<&str> = Vec::new();
        for d in docs {
            if !what.contains(&d.label.as_str()) {
                what.push(&d.label);
            }
        }
        // Agent pools of a cluster the inputs only refer to (a Bicep
        // `existing` resource, an ASO owner): say which cluster to add.
        if let Some((parent, pool, _)) = c.pools.first() {
            let which = match (pool, parent) {
                (Some(p), Some(c)) => format!("agent pool '{p}' of cluster '{c}'"),
                (Some(p), None) => format!("agent pool '{p}'"),
                // Its name needs parameters no one gave: still a pool.
                _ => "an agent pool (its name needs the template's parameters)".to_string(),
            };
            return Err(InputError::new(
                what.join(", "),
                format!("found {which}, but not the cluster itself (a pool is planned with its cluster's network profile and other pools): give the cluster's template, az aks show output or ASO ManagedCluster with another --file"),
            ));
        }
        return Err(InputError::new(
            what.join(", "),
            "found no managed cluster: give an ARM/Bicep template with a Microsoft.ContainerService/managedClusters resource, the resource or its properties, az aks show output, a networkProfile, or ASO/CAPZ YAML",
        ));
    };
    if c.clusters.len() > 1 {
        let others: Vec<String> = c.clusters[1..].iter().map(|(_, _, s)| s.clone()).collect();
        input.notes.push(Finding::new(
            "several-clusters",
            format!(
                "the inputs hold {} managed clusters; planning the one at {csrc} and not {}; give one cluster's files at a time",
                c.clusters.len(),
                others.join(", ")
            ),
        ));
    }
    {
        let mut r = Reader { input: &mut input };
        r.cluster(&props);
        for (parent, name, p) in &c.pools {
            let mine = match (parent, &cname) {
                (Some(p), Some(n)) => p.eq_ignore_ascii_case(n),
                _ => true,
            };
            if mine {
                r.pool(p, name.clone());
            } else {
                r.input.notes.push(Finding::new(
                    "document-ignored",
                    format!(
                        "agent pool '{}' belongs to cluster '{}', not '{}': not planned",
                        name.as_deref().unwrap_or("?"),
                        parent.as_deref().unwrap_or("?"),
                        cname.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
    }
    for (obj, pool_name) in &c.capz_aso_pools {
        let replicas = c
            .capz_replicas
            .iter()
            .find(|(infra, _)| infra == obj)
            .and_then(|(_, n)| n.clone());
        if let Some(p) = input
            .pools
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(pool_name) && p.count.is_none())
        {
            p.count = replicas;
        }
    }
    for (obj, mut pool) in c.capz_pools {
        if pool.count.is_none() {
            pool.count = c
                .capz_replicas
                .iter()
                .find(|(infra, _)| *infra == obj)
                .and_then(|(_, n)| n.clone());
        }
        if pool.subnet.is_none() {
            pool.subnet = c.capz_subnet.clone().map(|s| SubnetRef {
                id: s,
                source: format!("CAPZ pool {}", pool.name),
                ..SubnetRef::default()
            });
        }
        input.pools.push(pool);
    }

    // The VNets and subnets of the inputs, child subnet resources included.
    let mut vnets = c.vnets;
    for (vnet, sub, props) in &c.subnets {
        let mut r = Reader { input: &mut input };
        let ks = subnet_of(&mut r, sub, vnet, props);
        match vnets.iter_mut().find(|v| v.name.eq_ignore_ascii_case(vnet)) {
            Some(v) => {
                v.subnets.retain(|s| !s.name.eq_ignore_ascii_case(sub));
                v.subnets.push(ks);
            }
            None => vnets.push(VnetInfo {
                name: vnet.clone(),
                subnets: vec![ks],
                ..VnetInfo::default()
            }),
        }
    }
    link_subnets(&mut input, &vnets);
    if input.network_plugin.is_none()
        && !input
            .notes
            .iter()
            .any(|n| n.code == "network-plugin-defaulted")
    {
        input.notes.push(Finding::new(
            "network-plugin-defaulted",
            format!(
                "{csrc}: the cluster names no networkPlugin; {}; set networkProfile.networkPlugin, or give --network-plugin", super::input::PLUGIN_DEFAULT
            ),
        ));
    }
    Ok(input)
}

fn classify(
    d: &Document,
    params: &Parameters,
    links: &template::Links,
    c: &mut Collected,
    declared: &mut Vec<String>,
    input: &mut SpecInput,
) -> Result<(), InputError> {
    let label = &d.label;
    let Some(root) = d.value.as_object() else {
        return Err(InputError::new(
            label,
            "the document is not an object; give an ARM/Bicep template, a managedClusters resource, its properties, az aks show output, a networkProfile, or ASO/CAPZ YAML",
        ));
    };
    let schema = root.get("$schema").and_then(Value::as_str).unwrap_or("");
    if schema.to_ascii_lowercase().contains("deploymentparameters") {
        return Err(InputError::new(
            label,
            "this is a deployment parameters file; give it with --parameters, and the template with --file",
        ));
    }
    if root.contains_key("apiVersion") && root.contains_key("kind") && root.contains_key("metadata")
    {
        return k8s::collect(&d.value, label, params, declared, c, input);
    }
    if let Some(res) = eval::get_ci(root, "resources").filter(|r| r.is_array() || r.is_object()) {
        let _ = res;
        let decls = eval::get_ci(root, "parameters").and_then(Value::as_object);
        if let Some(ds) = decls {
            declared.extend(ds.keys().cloned());
        }
        let given = params.for_template(root)?;
        let (_, w) = template::walk(root, &given, label, links);
        for (path, msg) in w.notes {
            c.notes.push(Finding::new(
                "template-not-evaluated",
                format!("{label}: {path}: {msg}"),
            ));
        }
        for f in &w.resources {
            let lazy = f.lazy(label);
            match f.ty.as_str() {
                MANAGED_CLUSTERS if !f.existing => {
                    let props = lazy
                        .get("properties")
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| lazy.clone());
                    c.clusters
                        .push((props, f.name.clone(), format!("{label}: {}", f.path)));
                }
                AGENT_POOLS if !f.existing => {
                    let (parent, name) = split_child(f.name.as_deref());
                    let props = lazy
                        .get("properties")
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| lazy.clone());
                    c.pools.push((parent, name, props));
                }
                VIRTUAL_NETWORKS if !f.existing => {
                    let name = f.name.clone().unwrap_or_default();
                    let mut r = Reader { input };
                    c.vnets.push(vnet_of(&mut r, &name, &lazy));
                }
                SUBNETS if !f.existing => {
                    let (vnet, sub) = split_child(f.name.as_deref());
                    if let (Some(v), Some(s)) = (vnet, sub) {
                        let props = lazy
                            .get("properties")
                            .ok()
                            .flatten()
                            .unwrap_or_else(|| lazy.clone());
                        c.subnets.push((v, s, props));
                    }
                }
                _ => {}
            }
        }
        if c.clusters.is_empty()
            && !w
                .resources
                .iter()
                .any(|f| f.ty == VIRTUAL_NETWORKS || f.ty == SUBNETS)
        {
            c.notes.push(Finding::new(
                "file-without-network",
                format!("{label}: the template holds no managed cluster, VNet or subnet"),
            ));
        }
        return Ok(());
    }
    let lazy = Lazy::concrete(d.value.clone(), label, "");
    let ty = root
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if ty == VIRTUAL_NETWORKS {
        // az network vnet show
        let name = root
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut r = Reader { input };
        c.vnets.push(vnet_of(&mut r, &name, &lazy));
        return Ok(());
    }
    let name = root.get("name").and_then(Value::as_str).map(str::to_string);
    let props = match eval::get_ci(root, "properties") {
        Some(Value::Object(_)) => lazy
            .get("properties")
            .ok()
            .flatten()
            .unwrap_or(lazy.clone()),
        Some(_) => {
            return Err(InputError::new(
                format!("{label}: properties"),
                "must be an object",
            ))
        }
        None => lazy.clone(),
    };
    let has = |k: &str| props.get(k).ok().flatten().is_some();
    if has("networkProfile") || has("agentPoolProfiles") {
        c.clusters.push((props, name, label.clone()));
        return Ok(());
    }
    if [
        "networkPlugin",
        "networkPluginMode",
        "podCidr",
        "serviceCidr",
        "dnsServiceIP",
        "podCidrs",
        "serviceCidrs",
    ]
    .iter()
    .any(|k| has(k))
    {
        // A bare networkProfile: read as a cluster that has only it.
        let wrapped = Lazy::concrete(serde_json::json!({ "networkProfile": d.value }), label, "");
        c.clusters.push((wrapped, name, label.clone()));
        return Ok(());
    }
    Err(InputError::new(
        label,
        "found no managed cluster, networkProfile or agentPoolProfiles; give an ARM/Bicep template, a managedClusters resource, its properties, az aks show output, a networkProfile, or ASO/CAPZ YAML",
    ))
}

fn split_child(name: Option<&str>) -> (Option<String>, Option<String>) {
    match name.map(|n| n.rsplit_once('/')) {
        Some(Some((p, c))) => (
            Some(p.rsplit('/').next().unwrap_or(p).to_string()),
            Some(c.to_string()),
        ),
        Some(None) => (None, name.map(str::to_string)),
        None => (None, None),
    }
}

/// A VNet resource (or az output): its address space and inline subnets.
pub(crate) fn vnet_of(r: &mut Reader, name: &str, res: &Lazy) -> VnetInfo {
    let props = res
        .get("properties")
        .ok()
        .flatten()
        .unwrap_or_else(|| res.clone());
    let mut v = VnetInfo {
        name: name.to_string(),
        ..VnetInfo::default()
    };
    match props.at(&["addressSpace", "addressPrefixes"]) {
        Ok(Some(list)) => match list.items() {
            Ok(items) => {
                for it in items {
                    match it.text() {
                        Ok(Some(t)) => v.prefixes.push(Sourced::new(t, it.source())),
                        Ok(None) => {}
                        Err(f) => r.input.pending.push(Pending {
                            covered_by: Some("--vnet-cidr"),
                            error: InputError::new(
                                f.source.clone(),
                                f.message(Some("--vnet-cidr")),
                            ),
                        }),
                    }
                }
            }
            Err(f) => r.input.pending.push(Pending {
                covered_by: Some("--vnet-cidr"),
                error: InputError::new(f.source.clone(), f.message(Some("--vnet-cidr"))),
            }),
        },
        Ok(None) => {}
        Err(f) => r.input.pending.push(Pending {
            covered_by: Some("--vnet-cidr"),
            error: InputError::new(f.source.clone(), f.message(Some("--vnet-cidr"))),
        }),
    }
    let subnets = match props
        .get("subnets")
        .and_then(|s| s.map(|s| s.items()).transpose())
    {
        Ok(s) => s.unwrap_or_default(),
        Err(f) => {
            r.input.notes.push(Finding::new(
                "field-not-evaluated",
                format!(
                    "{}: {}; the VNet's subnets are unknown",
                    f.source,
                    f.message(Some("--subnet-cidr"))
                ),
            ));
            Vec::new()
        }
    };
    for s in subnets {
        let Some(sname) = r.text(&s, "name", None) else {
            continue;
        };
        let sprops = s
            .get("properties")
            .ok()
            .flatten()
            .unwrap_or_else(|| s.clone());
        let ks = subnet_of(r, &sname.value, name, &sprops);
        v.subnets.push(ks);
    }
    v
}

/// A subnet's ranges (`addressPrefix` or `addressPrefixes`) and whether it
/// has a route table. An unevaluable range pends under `--subnet-cidr`
/// only if a pool uses the subnet (see [`link_subnets`]).
pub(crate) fn subnet_of(r: &mut Reader, name: &str, vnet: &str, props: &Lazy) -> KnownSubnet {
    let mut ks = KnownSubnet {
        vnet: vnet.to_string(),
        name: name.to_string(),
        ..KnownSubnet::default()
    };
    let mut scratch = SpecInput::default();
    let mut sr = Reader {
        input: &mut scratch,
    };
    if let Some(p) = sr.text(props, "addressPrefix", Some("--subnet-cidr")) {
        ks.prefixes.push(p);
    }
    for it in props
        .get("addressPrefixes")
        .ok()
        .flatten()
        .and_then(|l| l.items().ok())
        .unwrap_or_default()
    {
        match it.text() {
            Ok(Some(t)) => ks.prefixes.push(Sourced::new(t, it.source())),
            Ok(None) => {}
            Err(f) => {
                ks.range_error = Some(InputError::new(
                    f.source.clone(),
                    f.message(Some("--subnet-cidr")),
                ))
            }
        }
    }
    // Reported only if a pool turns out to use the subnet.
    if let Some(p) = scratch.pending.into_iter().next() {
        ks.range_error = Some(p.error);
    }
    let _ = r;
    ks.route_table = matches!(props.get("routeTable"), Ok(Some(rt)) if !rt.is_null());
    ks
}

/// Gives each pool's subnet reference its range from the VNets of the
/// inputs, sets the VNet prefixes and the known subnets.
fn link_subnets(input: &mut SpecInput, vnets: &[VnetInfo]) {
    let find = |id: &str| -> Option<(&VnetInfo, &KnownSubnet)> {
        let (vnet, sub) = match eval::parse_resource_id(id) {
            Some((ty, names))
                if ty.eq_ignore_ascii_case("Microsoft.Network/virtualNetworks/subnets")
                    && names.len() == 2 =>
            {
                (Some(names[0].clone()), names[1].clone())
            }
            Some(_) => return None,
            None if !id.contains('/') => (None, id.to_string()),
            None => (None, id.rsplit('/').next().unwrap_or(id).to_string()),
        };
        vnets.iter().find_map(|v| {
            if vnet
                .as_ref()
                .is_some_and(|n| !n.eq_ignore_ascii_case(&v.name))
            {
                return None;
            }
            v.subnets
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&sub))
                .map(|s| (v, s))
        })
    };
    let mut used_vnets: Vec<&VnetInfo> = Vec::new();
    let mut errors: Vec<Pending> = Vec::new();
    let mut link = |r: &mut SubnetRef, flag: &'static str| {
        if let Some((v, s)) = find(&r.id) {
            if let Some(e) = &s.range_error {
                errors.push(Pending {
                    covered_by: Some(flag),
                    error: InputError::new(&e.field, e.message.replace("--subnet-cidr", flag)),
                });
            }
            r.cidr = s.prefixes.iter().find(|p| !p.value.contains(':')).cloned();
            r.route_table = s.route_table;
            if !used_vnets.iter().any(|u| std::ptr::eq(*u, v)) {
                used_vnets.push(v);
            }
        }
    };
    for p in &mut input.pools {
        if let Some(r) = p.subnet.as_mut() {
            link(r, "--subnet-cidr");
        }
        if let Some(r) = p.pod_subnet.as_mut() {
            link(r, "--pod-subnet-cidr");
        }
    }
    input.pending.append(&mut errors);
    for v in used_vnets {
        for p in &v.prefixes {
            if p.value.contains(':') {
                input.vnet_cidrs_v6.push(p.clone());
            } else {
                input.vnet_cidrs.push(p.clone());
            }
        }
        input.known_subnets.extend(v.subnets.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::NetworkPlugin;
    use serde_json::json;

    fn read(docs: &[Value], params: &[&str]) -> Result<SpecInput, InputError> {
        let mut ps = Parameters::default();
        for p in params {
            ps.add_flag(p)?;
        }
        let docs: Vec<Document> = docs
            .iter()
            .enumerate()
            .map(|(i, v)| Document {
                value: v.clone(),
                label: format!("f{i}.json"),
            })
            .collect();
        from_documents(&docs, &ps)
    }

    fn plan(docs: &[Value], params: &[&str]) -> crate::planner::Plan {
        let i = read(docs, params)
            .unwrap()
            .overridden_by(SpecInput::default());
        crate::planner::plan_input(&i).unwrap()
    }

    #[test]
    fn bicep_language_version_2_nested_module_outputs_and_child_subnets() {
        // A network module (inner scope) whose output names the subnet, and
        // a cluster in the parent that reads it with reference().
        let t = json!({
            "languageVersion": "2.0",
            "parameters": {"prefix": {"type": "string", "defaultValue": "10.50.0.0/16"},
                            "nodes": {"type": "int", "defaultValue": 4}},
            "resources": {
                "net": {"type": "Microsoft.Resources/deployments", "name": "network",
                  "properties": {"expressionEvaluationOptions": {"scope": "inner"},
                    "parameters": {"space": {"value": "[parameters('prefix')]"}},
                    "template": {
                      "parameters": {"space": {"type": "string"}},
                      "variables": {"vnetName": "vnet-a"},
                      "resources": [
                        {"type": "Microsoft.Network/virtualNetworks", "name": "[variables('vnetName')]",
                         "properties": {"addressSpace": {"addressPrefixes": ["[parameters('space')]"]}}},
                        {"type": "Microsoft.Network/virtualNetworks/subnets",
                         "name": "[format('{0}/{1}', variables('vnetName'), 'nodes')]",
                         "properties": {"addressPrefix": "[cidrSubnet(parameters('space'), 22, 0)]"}}
                      ],
                      "outputs": {"subnetId": {"type": "string",
                        "value": "[resourceId('Microsoft.Network/virtualNetworks/subnets', variables('vnetName'), 'nodes')]"}}
                    }}},
                "aks": {"type": "Microsoft.ContainerService/managedClusters", "name": "c",
                  "properties": {
                    "networkProfile": {"networkPlugin": "azure"},
                    "copy": [{"name": "agentPoolProfiles", "count": 2, "input": {
                        "name": "[format('pool{0}', copyIndex('agentPoolProfiles'))]",
                        "count": "[parameters('nodes')]",
                        "vnetSubnetID": "[reference('net').outputs.subnetId.value]"}}]}}
            }
        });
        let p = plan(&[t], &[]);
        assert_eq!(p.network_plugin, NetworkPlugin::Azure);
        assert_eq!(p.network.node_pools.len(), 2);
        assert_eq!(p.network.node_pools[1].name, "pool1");
        assert_eq!(p.network.vnet_cidrs[0].to_string(), "10.50.0.0/16");
        let s = &p.capacity.subnets[0];
        assert_eq!(s.cidr.as_deref(), Some("10.50.0.0/22"));
        assert_eq!(s.pools.len(), 2);
        // (4 + 1 surge) × 2 pools × (1 + 30)
        assert_eq!(s.required_ips, 310);
    }

    #[test]
    fn parameters_typed_by_a_definition_are_nullable_and_typed_through_it() {
        // AVM's managed-cluster module: `agentPools` is `{"$ref": …}` to a
        // nullable array type; not given, its copy loop has no element.
        let t = json!({
            "languageVersion": "2.0",
            "definitions": {"poolsType": {"type": "array", "nullable": true,
                                          "items": {"type": "object"}}},
            "parameters": {"agentPools": {"$ref": "#/definitions/poolsType"},
                           "nodes": {"type": "int", "defaultValue": 3}},
            "resources": {
                "aks": {"type": "Microsoft.ContainerService/managedClusters", "name": "c",
                  "properties": {
                    "networkProfile": {"networkPlugin": "azure"},
                    "agentPoolProfiles": [{"name": "sys",
                        "count": "[if(empty(coalesce(parameters('agentPools'), createArray())), parameters('nodes'), length(parameters('agentPools')))]"}]}}
            }
        });
        let p = plan(std::slice::from_ref(&t), &[]);
        assert_eq!(p.network.node_pools[0].count, 3, "{:?}", p.errors);
        // Given, the value is typed by the definition (an array of two, not
        // a string of 17 characters).
        let p = plan(&[t], &["agentPools=[{\"a\":1},{\"b\":2}]"]);
        assert_eq!(p.network.node_pools[0].count, 2, "{:?}", p.errors);
    }

    #[test]
    fn a_long_expression_is_cut_in_messages() {
        let long = format!("[concat(parameters('missing'), '{}')]", "x".repeat(5000));
        let t = json!({
            "parameters": {"missing": {"type": "string"}},
            "resources": [{"type": "Microsoft.ContainerService/managedClusters", "name": "c",
                "properties": {"networkProfile": {"networkPlugin": long}}}]
        });
        let input = read(&[t], &[]).unwrap();
        let err = &input.pending[0].error.message;
        assert!(err.len() < 600, "{} characters: {err}", err.len());
        assert!(err.contains("characters)"), "{err}");
        assert!(err.contains("--parameter missing=VALUE"), "{err}");
    }

    fn read_labelled(docs: &[(&str, Value)]) -> Result<SpecInput, InputError> {
        let docs: Vec<Document> = docs
            .iter()
            .map(|(l, v)| Document {
                value: v.clone(),
                label: l.to_string(),
            })
            .collect();
        from_documents(&docs, &Parameters::default())
    }

    #[test]
    fn linked_templates_are_read_from_the_input_files() {
        // The quickstart pattern: _artifactsLocation defaults to the
        // deployment's own link, and the network template sits beside it.
        let parent = json!({
            "parameters": {
                "_artifactsLocation": {"type": "string", "defaultValue": "[deployment().properties.templateLink.uri]"},
                "_artifactsLocationSasToken": {"type": "securestring", "defaultValue": ""}
            },
            "resources": [
                {"type": "Microsoft.Resources/deployments", "name": "net",
                 "properties": {"mode": "Incremental",
                    "templateLink": {"uri": "[uri(parameters('_artifactsLocation'), concat('nested/network.json', parameters('_artifactsLocationSasToken')))]"},
                    "parameters": {"space": {"value": "10.60.0.0/16"}}}},
                {"type": "Microsoft.ContainerService/managedClusters", "name": "c",
                 "properties": {"networkProfile": {"networkPlugin": "azure"},
                    "agentPoolProfiles": [{"name": "sys", "mode": "System", "count": 3,
                        "vnetSubnetID": "[reference('net').outputs.nodes.value]"}]}}
            ]
        });
        let child = json!({
            "parameters": {"space": {"type": "string"}},
            "resources": [{"type": "Microsoft.Network/virtualNetworks", "name": "v",
                "properties": {"addressSpace": {"addressPrefixes": ["[parameters('space')]"]},
                    "subnets": [{"name": "nodes", "properties": {"addressPrefix": "[cidrSubnet(parameters('space'), 24, 1)]"}}]}}],
            "outputs": {"nodes": {"type": "string",
                "value": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 'nodes')]"}}
        });
        let i = read_labelled(&[
            ("deploy/azuredeploy.json", parent.clone()),
            ("deploy/nested/network.json", child.clone()),
        ])
        .unwrap();
        let p = crate::planner::plan_input(&i.overridden_by(SpecInput::default())).unwrap();
        assert!(p.valid, "{:?}", p.errors);
        assert_eq!(p.capacity.subnets[0].cidr.as_deref(), Some("10.60.1.0/24"));
        assert_eq!(p.network.vnet_cidrs[0].to_string(), "10.60.0.0/16");
        // Read once, as the deployment (with the space it passes), not on
        // its own as well: no "file-without-network" or parameter error.
        assert!(
            !p.warnings
                .iter()
                .any(|w| w.code == "template-not-evaluated" || w.code == "file-without-network"),
            "{:?}",
            p.warnings
        );
        // relativePath (template specs and `az deployment --template-file`)
        // names the file the same way.
        let mut rel = parent.clone();
        rel["resources"][0]["properties"]["templateLink"] =
            json!({"relativePath": "nested/network.json"});
        let i = read_labelled(&[
            ("deploy/azuredeploy.json", rel),
            ("deploy/nested/network.json", child),
        ])
        .unwrap();
        let p = crate::planner::plan_input(&i.overridden_by(SpecInput::default())).unwrap();
        assert_eq!(p.capacity.subnets[0].cidr.as_deref(), Some("10.60.1.0/24"));
        // Without the file: a finding naming what to pass, and the subnet
        // is unknown, never a default.
        let i = read_labelled(&[("deploy/azuredeploy.json", parent)]).unwrap();
        let note = i
            .notes
            .iter()
            .find(|w| w.code == "template-not-evaluated")
            .expect("a finding for the link");
        assert!(
            note.message.contains("--file deploy/nested/network.json"),
            "{}",
            note.message
        );
        // The subnet it outputs is not guessed: the field names the file
        // and the flag that would supply it.
        let e =
            crate::planner::plan_input(&i.clone().overridden_by(SpecInput::default())).unwrap_err();
        assert!(e.field.ends_with("vnetSubnetID"), "{e}");
        assert!(
            e.message.contains("--file deploy/nested/network.json")
                && e.message.contains("--subnet-cidr"),
            "{e}"
        );
        let flags = SpecInput {
            subnet_cidr: Some(Sourced::new("10.60.1.0/24".into(), "--subnet-cidr")),
            ..SpecInput::default()
        };
        assert!(crate::planner::plan_input(&i.overridden_by(flags)).is_ok());
    }

    #[test]
    fn dual_stack_without_ipv6_ranges_gets_the_aks_defaults() {
        let np = json!({"networkPlugin": "azure", "networkPluginMode": "overlay",
            "ipFamilies": ["IPv4", "IPv6"]});
        let p = plan(&[np], &[]);
        assert!(p.valid, "{:?}", p.errors);
        let v6 = p.network.ipv6.expect("both families are planned");
        assert_eq!(v6.pod_cidr.unwrap().to_string(), "fd12:3456:789a::/64");
        assert_eq!(
            v6.service_cidr.unwrap().to_string(),
            "fd12:3456:789a:1::/108"
        );
        // Given ranges win; IPv4 only stays IPv4 only.
        let np = json!({"networkPlugin": "kubenet", "ipFamilies": ["IPv4", "IPv6"],
            "podCidrs": ["10.244.0.0/16", "fd00:1::/64"]});
        let v6 = plan(&[np], &[]).network.ipv6.unwrap();
        assert_eq!(v6.pod_cidr.unwrap().to_string(), "fd00:1::/64");
        assert_eq!(
            v6.service_cidr.unwrap().to_string(),
            "fd12:3456:789a:1::/108"
        );
        let np = json!({"networkPlugin": "kubenet", "ipFamilies": ["IPv4"]});
        assert!(plan(&[np], &[]).network.ipv6.is_none());
    }

    #[test]
    fn a_template_linking_itself_is_read_once() {
        let t = json!({"resources": [
            {"type": "Microsoft.Resources/deployments", "name": "again",
             "properties": {"templateLink": {"relativePath": "self.json"}}},
            {"type": "Microsoft.ContainerService/managedClusters", "name": "c",
             "properties": {"networkProfile": {"networkPlugin": "kubenet"},
                "agentPoolProfiles": [{"name": "a", "count": 2}]}}]});
        let i = read_labelled(&[("self.json", t)]).unwrap();
        assert!(
            i.notes.iter().any(|n| n.message.contains("a loop")),
            "{:?}",
            i.notes
        );
        assert_eq!(i.pools.len(), 1);
    }

    #[test]
    fn unevaluable_fields_name_path_expression_and_flags() {
        let t = json!({"parameters": {"podRange": {"type": "string"}},
            "resources": [{"type": "Microsoft.ContainerService/managedClusters", "name": "c",
              "properties": {"networkProfile": {"networkPlugin": "kubenet", "podCidr": "[parameters('podRange')]"},
                             "agentPoolProfiles": [{"name": "a", "count": "[reference('elsewhere').count]"}]}}]});
        let i = read(std::slice::from_ref(&t), &[]).unwrap();
        let e = i
            .clone()
            .overridden_by(SpecInput::default())
            .resolve(NetworkPlugin::Kubenet, false)
            .unwrap_err();
        assert_eq!(
            e.field,
            "f0.json: resources[0].properties.networkProfile.podCidr"
        );
        assert!(e.message.contains("[parameters('podRange')]"), "{e}");
        assert!(
            e.message
                .contains("--parameter podRange=VALUE or --pod-cidr"),
            "{e}"
        );
        // The flags cover both fields: no error remains.
        let flags = SpecInput {
            pod_cidr: Some(Sourced::new("10.9.0.0/16".into(), "--pod-cidr")),
            node_count: Some(Sourced::new(2, "--node-count")),
            ..SpecInput::default()
        };
        let n = i
            .overridden_by(flags)
            .resolve(NetworkPlugin::Kubenet, false)
            .unwrap()
            .network;
        assert_eq!(n.node_pools[0].count, 2);
        // --parameter supplies it too; the count still names its flag.
        let e = read(&[t], &["podRange=10.9.0.0/16"])
            .unwrap()
            .overridden_by(SpecInput::default())
            .resolve(NetworkPlugin::Kubenet, false)
            .unwrap_err();
        assert!(
            e.message.contains("not a resource of the inputs")
                && e.message.contains("--node-count"),
            "{e}"
        );
    }

    #[test]
    fn az_spellings_bare_profiles_and_pool_defaults() {
        let show = json!({"type": "Microsoft.ContainerService/ManagedClusters",
            "networkProfile": {"networkPlugin": "azure", "serviceCidr": "10.2.0.0/16", "dnsServiceIp": "10.2.0.10"},
            "agentPoolProfiles": [{"name": "sys", "mode": "System", "vnetSubnetId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/n"},
                                  {"name": "u", "enableAutoScaling": true, "count": 2, "maxCount": 9}]});
        let p = plan(&[show], &[]);
        assert!(
            !p.errors
                .iter()
                .any(|e| e.code.starts_with("dns-service-ip")),
            "{:?}",
            p.errors
        );
        assert_eq!(
            p.network.node_pools[0].count, 1,
            "the API default count is 1"
        );
        assert_eq!(
            p.network.node_pools[1].count, 9,
            "autoscaled pools plan for maxCount"
        );
        assert!(p.warnings.iter().any(|w| w.code == "subnet-range-unknown"));
        let bare = json!({"networkPlugin": "kubenet", "podCidrs": ["10.10.0.0/16", "fd00::/64"]});
        let p = plan(&[bare], &[]);
        assert_eq!(p.network_plugin, NetworkPlugin::Kubenet);
        assert_eq!(p.network.pod_cidr.unwrap().to_string(), "10.10.0.0/16");
        assert!(p.network.ipv6.is_some());
        assert!(read(&[json!([1, 2])], &[]).is_err());
        assert!(read(&[json!({"foo": 1})], &[]).is_err());
        assert!(read(&[json!({"resources": []})], &[]).is_err());
        let e = read(&[json!({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#", "parameters": {}})], &[]).unwrap_err();
        assert!(e.message.contains("--parameters"), "{e}");
    }
}
