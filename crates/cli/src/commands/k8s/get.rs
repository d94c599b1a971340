//! `aksnet get (--store URL | --lab NAME) KIND [NAME] [-n NS | -A] [-o table|json|yaml]`.
//!
//! A list in JSON or YAML is `{"apiVersion": "v1", "kind": "List", "items": [...]}`;
//! a named object is the object. EndpointSlices are the stored ones plus
//! those derived from Pods at the same revision. Exit 0 when shown, 1 when a
//! named object does not exist, 2 for an unknown kind or an unusable store.

use std::process::ExitCode;

use aksnet_core::k8s::endpoints::all_slices;
use aksnet_core::k8s::meta::LabelSelector;
use aksnet_core::k8s::namespace::{Namespace, SYSTEM_NAMESPACES};
use aksnet_core::k8s::{Kind, Object, ObjectId};
use clap::Args;
use serde_json::{json, Value};

use super::{now_secs, read, GetOutput, TargetArgs};
use crate::commands::{EXIT_INVALID, EXIT_UNUSABLE};
use crate::render;

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to list, as kubectl spells it: pods|po, services|svc, deployments|deploy,
    /// namespaces|ns, endpointslices, networkpolicies|netpol (singular, plural, short or Kind),
    /// or all (pods, services and deployments); several with commas (svc,po); KIND/NAME for one.
    pub kind: String,
    /// One object by name.
    pub name: Option<String>,
    /// Namespace (default: default).
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Only objects whose labels match (kubectl syntax: app=web,tier!=db,env in (a,b),!legacy).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = GetOutput::Table)]
    pub output: GetOutput,
}

/// What `get all` lists (kubectl's `all`, for the kinds aksnet stores).
const ALL: [Kind; 3] = [Kind::Pod, Kind::Service, Kind::Deployment];

/// Every object of `kind` in `namespace` (all when `None`), sorted by
/// namespace and name: stored ones, derived EndpointSlices, and the system
/// namespaces every cluster has.
pub fn list(
    state: &aksnet_core::k8s::K8sState,
    kind: Kind,
    namespace: Option<&str>,
) -> Vec<Object> {
    let mut out: Vec<Object> = match kind {
        Kind::EndpointSlice => all_slices(state, namespace)
            .into_iter()
            .map(Object::EndpointSlice)
            .collect(),
        _ => state.of_kind(kind, namespace).cloned().collect(),
    };
    if kind == Kind::Namespace {
        for ns in SYSTEM_NAMESPACES {
            if state.get(&ObjectId::new(Kind::Namespace, "", ns)).is_none() {
                out.push(Object::Namespace(Namespace::new(ns)));
            }
        }
    }
    out.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    out
}

fn print(v: &Value, output: GetOutput) -> anyhow::Result<()> {
    match output {
        GetOutput::Yaml => out!("{}", serde_yaml::to_string(v)?),
        _ => outln!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

pub fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    // `svc/web` names one object, as kubectl accepts it.
    let (kind_arg, name) = match args.kind.split_once('/') {
        Some((k, n)) if args.name.is_none() => (k.to_string(), Some(n.to_string())),
        _ => (args.kind.clone(), args.name.clone()),
    };
    let mut kinds: Vec<Kind> = vec![];
    for k in kind_arg.split(',') {
        if k.eq_ignore_ascii_case("all") {
            kinds.extend(ALL);
            continue;
        }
        match Kind::from_cli(k) {
            Ok(k) => kinds.push(k),
            Err(e) => {
                errln!("aksnet get: {e}");
                return Ok(ExitCode::from(EXIT_UNUSABLE));
            }
        }
    }
    kinds.dedup();
    let selector = match args.selector.as_deref().map(LabelSelector::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            errln!("aksnet get: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    if kinds.len() > 1 && name.is_some() {
        errln!("aksnet get: name one kind to get an object by name (e.g. `aksnet get svc web`)");
        return Ok(ExitCode::from(EXIT_UNUSABLE));
    }
    let target = match args.target.resolve() {
        Ok(t) => t,
        Err(e) => {
            errln!("aksnet get: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let store = target.open()?;
    let snap = read(store.as_ref())?;
    // NetworkPolicies carry whether each node's agent enforces them.
    let view = if kinds.contains(&Kind::NetworkPolicy) {
        Some(aksnet_cluster::read(store.as_ref())?)
    } else {
        None
    };
    let value = |o: &Object| -> Value {
        let mut v = o.to_value();
        if let (Object::NetworkPolicy(_), Some(view)) = (o, &view) {
            let revision = o
                .meta()
                .resource_version
                .as_deref()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let nodes: Vec<&aksnet_core::cluster::NodeRecord> = view.node_records().collect();
            v["status"] = super::netpol_status::status(revision, &nodes);
        }
        v
    };
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let listed = |kind: Kind| {
        let scope = (!args.all_namespaces && kind.namespaced()).then_some(ns.as_str());
        let mut objs = list(&snap.k8s, kind, scope);
        if let Some(sel) = &selector {
            objs.retain(|o| sel.matches(&o.meta().labels));
        }
        objs
    };
    if kinds.len() > 1 {
        let sections: Vec<(Kind, Vec<Object>)> = kinds.iter().map(|k| (*k, listed(*k))).collect();
        return all(args, &snap, &ns, sections);
    }
    let kind = kinds[0];
    let scope = (!args.all_namespaces && kind.namespaced()).then_some(ns.as_str());
    let mut objs = listed(kind);
    if let Some(name) = &name {
        objs.retain(|o| o.name() == name);
        let Some(o) = objs.into_iter().next() else {
            errln!(
                "Error from server (NotFound): {} \"{name}\" not found{}",
                kind.qualified_plural(),
                scope
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default()
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        };
        match args.output {
            GetOutput::Table => out!(
                "{}",
                render::k8s::table(kind, &[o], &snap.k8s, false, now_secs(), "")
            ),
            out => print(&value(&o), out)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.output {
        GetOutput::Table => {
            if objs.is_empty() {
                match scope {
                    Some(n) => errln!("No resources found in {n} namespace."),
                    None => errln!("No resources found"),
                }
            } else {
                out!(
                    "{}",
                    render::k8s::table(kind, &objs, &snap.k8s, args.all_namespaces, now_secs(), "")
                );
            }
        }
        out => {
            let items: Vec<Value> = objs.iter().map(value).collect();
            let list = json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": items,
                "metadata": {"resourceVersion": snap.revision.to_string()},
            });
            print(&list, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `get all`: one table per kind with `kind/name` names, as kubectl prints
/// it, or one List of every object.
fn all(
    args: &GetArgs,
    snap: &super::Snapshot,
    ns: &str,
    sections: Vec<(Kind, Vec<Object>)>,
) -> anyhow::Result<ExitCode> {
    if args.output != GetOutput::Table {
        let items: Vec<Value> = sections
            .iter()
            .flat_map(|(_, v)| v.iter().map(Object::to_value))
            .collect();
        let list = json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": items,
            "metadata": {"resourceVersion": snap.revision.to_string()},
        });
        print(&list, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut first = true;
    for (kind, objs) in sections.iter().filter(|(_, v)| !v.is_empty()) {
        let prefix = format!("{}/", kind.qualified_singular());
        let table = render::k8s::table(
            *kind,
            objs,
            &snap.k8s,
            args.all_namespaces,
            now_secs(),
            &prefix,
        );
        if !first {
            outln!();
        }
        first = false;
        out!("{table}");
    }
    if first {
        if args.all_namespaces {
            errln!("No resources found");
        } else {
            errln!("No resources found in {ns} namespace.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
