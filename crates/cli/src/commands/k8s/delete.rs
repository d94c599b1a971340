//! `aksnet delete (--store URL | --lab NAME) (-f FILE | KIND NAME...) [-n NS] [--ignore-not-found]`.
//!
//! As kubectl: what exists is deleted (in one transaction; a Service gives
//! back its ClusterIP and NodePorts, a Namespace takes its objects along),
//! what does not is reported. Exit 0 when everything named was deleted, 1
//! when something was not found (unless `--ignore-not-found`) or may not be
//! deleted, 2 for unusable input.

use std::process::ExitCode;

use aksnet_core::k8s::delete::plan_delete;
use aksnet_core::k8s::documents::{self, Parsed, ReadError};
use aksnet_core::k8s::endpoints::all_slices;
use aksnet_core::k8s::{Kind, ObjectId};
use clap::Args;
use serde::Serialize;

use super::kubelet::{self, Committed};
use super::{input, read, too_big, transaction, Target, TargetArgs, ATTEMPTS};
use crate::commands::{Output, EXIT_INVALID, EXIT_UNUSABLE};

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Delete the objects a manifest names (repeatable; FILE, DIR or -).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        conflicts_with = "kind"
    )]
    pub files: Vec<String>,
    /// KIND NAME [NAME...], as kubectl spells the kind.
    #[arg(value_name = "KIND")]
    pub kind: Option<String>,
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Namespace of the objects (default: default; a manifest's own wins).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// Succeed when an object does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Serialize)]
struct Row {
    kind: String,
    namespace: Option<String>,
    name: String,
}

fn row(id: &ObjectId) -> Row {
    Row {
        kind: id.kind.name().into(),
        namespace: id.kind.namespaced().then(|| id.namespace.clone()),
        name: id.name.clone(),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    deleted: Vec<Row>,
    not_found: Vec<Row>,
    ignored: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<i64>,
}

fn unusable(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    errln!("aksnet delete: {msg}");
    Ok(ExitCode::from(EXIT_UNUSABLE))
}

pub fn run(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let target = match args.target.resolve() {
        Ok(t) => t,
        Err(e) => return unusable(e),
    };
    let default_ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let mut ids: Vec<ObjectId> = vec![];
    let mut ignored: Vec<String> = vec![];
    if !args.files.is_empty() {
        let docs = match input::documents(&args.files) {
            Ok(d) => d,
            Err(e) => return unusable(e),
        };
        for doc in docs {
            match documents::read(doc) {
                Ok(Parsed::Object { object, .. }) => {
                    let ns = object
                        .meta()
                        .namespace
                        .clone()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| default_ns.clone());
                    ids.push(ObjectId::new(object.kind(), &ns, object.name()));
                }
                Ok(Parsed::Ignored(i)) => {
                    ignored.push(format!("{} ignored ({})", i.display(), i.reason))
                }
                Err(ReadError::Input(e)) => return unusable(e),
                Err(ReadError::Object(e)) => {
                    errln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            }
        }
    } else {
        let Some(k) = &args.kind else {
            return unusable("give -f FILE, or KIND NAME (e.g. `aksnet delete svc web`)");
        };
        let kind = match Kind::from_cli(k) {
            Ok(k) => k,
            Err(e) => return unusable(e),
        };
        if args.names.is_empty() {
            return unusable(format!(
                "name the {} to delete: `aksnet delete {k} NAME`",
                kind.singular()
            ));
        }
        ids.extend(
            args.names
                .iter()
                .map(|n| ObjectId::new(kind, &default_ns, n)),
        );
    }

    if matches!(target, Target::Lab(_)) {
        // A Namespace takes its Pods along.
        let kinds = ids.iter().map(|id| match id.kind {
            Kind::Namespace => Kind::Pod,
            k => k,
        });
        if let Err(e) = kubelet::preflight(kinds) {
            return unusable(e);
        }
    }
    let store = target.open()?;
    let mut attempt = 0;
    let (plan, revision) = loop {
        attempt += 1;
        let snap = read(store.as_ref())?;
        // Derived slices are not stored: they follow their Service's Pods.
        let derived: Vec<ObjectId> = all_slices(&snap.k8s, None)
            .iter()
            .filter(|s| {
                s.metadata
                    .labels
                    .get(aksnet_core::k8s::endpointslice::MANAGED_BY_LABEL)
                    .map(String::as_str)
                    == Some(aksnet_core::k8s::endpointslice::CONTROLLER_NAME)
            })
            .map(|s| {
                ObjectId::new(
                    Kind::EndpointSlice,
                    s.metadata.namespace.as_deref().unwrap_or_default(),
                    &s.metadata.name,
                )
            })
            .collect();
        if let Some(d) = ids.iter().find(|id| derived.contains(id)) {
            errln!(
                "error: {d} is derived from the Pods of its Service; it follows them (delete or relabel the Pods, or delete the Service)"
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        let plan = match plan_delete(&snap.k8s, &ids) {
            Ok(p) => p,
            Err(errs) => {
                for e in errs {
                    errln!("error: {e}");
                }
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        if plan.writes.is_empty() {
            break (plan, None);
        }
        let txn = transaction(&plan.writes, &[], None);
        if let Some(msg) = too_big(&txn) {
            errln!("aksnet delete: {msg}; nothing was deleted");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        let r = store.txn(txn)?;
        if r.succeeded {
            break (plan, Some(r.revision));
        }
        if attempt >= ATTEMPTS {
            errln!("aksnet delete: the store kept changing ({ATTEMPTS} attempts lost a race); nothing was deleted, try again");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if let (Target::Lab(dir), Some(rev)) = (&target, revision) {
        kubelet::after_commit(
            dir,
            &Committed {
                revision: rev,
                changed: vec![],
                deleted: plan.deleted.clone(),
            },
        )?;
    }
    let missing = if args.ignore_not_found {
        vec![]
    } else {
        plan.not_found.clone()
    };
    match args.output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&Report {
                deleted: plan.deleted.iter().map(row).collect(),
                not_found: missing.iter().map(row).collect(),
                ignored,
                revision,
            })?
        ),
        Output::Table => {
            for id in &plan.deleted {
                outln!("{} \"{}\" deleted", id.kind.qualified_singular(), id.name);
            }
            for line in &ignored {
                outln!("{line}");
            }
            for id in &missing {
                errln!(
                    "Error from server (NotFound): {} \"{}\" not found{}",
                    id.kind.qualified_plural(),
                    id.name,
                    if id.kind.namespaced() {
                        format!(" in namespace {}", id.namespace)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}
