//! `aksnet get (--store URL | --lab NAME) KIND [NAME] [-n NS | -A] [-o table|json|yaml]`.
//!
//! A list in JSON or YAML is `{"apiVersion": "v1", "kind": "List", "items": [...]}`;
//! a named object is the object. EndpointSlices are the stored ones plus
//! those derived from Pods at the same revision. Exit 0 when shown, 1 when a
//! named object does not exist, 2 for an unknown kind or an unusable store.

use std::process::ExitCode;

use aksnet_core::k8s::endpoints::all_slices;
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
    /// namespaces|ns, endpointslices, networkpolicies|netpol (singular, plural, short or Kind).
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
    #[arg(long, short = 'o', value_enum, default_value_t = GetOutput::Table)]
    pub output: GetOutput,
}

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
        GetOutput::Yaml => print!("{}", serde_yaml::to_string(v)?),
        _ => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

pub fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let kind = match Kind::from_cli(&args.kind) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("aksnet get: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let target = match args.target.resolve() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("aksnet get: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let store = target.open()?;
    let snap = read(store.as_ref())?;
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let scope = (!args.all_namespaces && kind.namespaced()).then_some(ns.as_str());
    let mut objs = list(&snap.k8s, kind, scope);
    if let Some(name) = &args.name {
        objs.retain(|o| o.name() == name);
        let Some(o) = objs.into_iter().next() else {
            eprintln!(
                "Error from server (NotFound): {} \"{name}\" not found{}",
                kind.qualified_plural(),
                scope
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default()
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        };
        match args.output {
            GetOutput::Table => print!(
                "{}",
                render::k8s::table(kind, &[o], &snap.k8s, false, now_secs())
            ),
            out => print(&o.to_value(), out)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.output {
        GetOutput::Table => {
            if objs.is_empty() {
                match scope {
                    Some(n) => eprintln!("No resources found in {n} namespace."),
                    None => eprintln!("No resources found"),
                }
            } else {
                print!(
                    "{}",
                    render::k8s::table(kind, &objs, &snap.k8s, args.all_namespaces, now_secs())
                );
            }
        }
        out => {
            let items: Vec<Value> = objs.iter().map(Object::to_value).collect();
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
