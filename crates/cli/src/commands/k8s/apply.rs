//! `aksnet apply (--store URL | --lab NAME) -f FILE|DIR|- [-f …] [-n NS] [-o json]`.
//!
//! Exit 0 when applied (or nothing changed), 1 when an object is rejected
//! (validation, a taken ClusterIP or NodePort, a missing namespace: nothing
//! is written), 2 when the input cannot be used (unreadable, not YAML/JSON,
//! a document without apiVersion/kind).

use std::process::ExitCode;

use aksnet_core::k8s::apply::{plan_apply, ApplyContext, Input};
use aksnet_core::k8s::documents::{self, IgnoredObject, Parsed, ReadError};
use aksnet_core::k8s::errors::{ErrorType, FieldError, ObjectError};
use aksnet_core::k8s::time::rfc3339;
use clap::Args;
use serde::Serialize;

use super::kubelet::{self, Committed};
use super::{input, read, seed, too_big, transaction, Target, TargetArgs, ATTEMPTS};
use crate::commands::{Output, EXIT_INVALID, EXIT_UNUSABLE};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A manifest file, a directory of them, or - for standard input (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<String>,
    /// Namespace for objects that name none (an object naming another one is refused).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// One line of the result (`service/web created`); its JSON form is a
/// stable contract.
#[derive(Debug, Serialize)]
pub struct ResultRow {
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    /// created, configured, unchanged or ignored.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `service/web`, as kubectl prints it.
    pub display: String,
}

#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub applied: bool,
    pub store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Transactions sent: more than 1 when a concurrent writer won a race
    /// and the apply was planned again.
    pub attempts: u32,
    pub results: Vec<ResultRow>,
    pub errors: Vec<ObjectError>,
}

enum Item {
    Object(usize),
    Ignored(IgnoredObject),
}

fn unusable(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    errln!("aksnet apply: {msg}");
    Ok(ExitCode::from(EXIT_UNUSABLE))
}

fn rejected(args: &ApplyArgs, url: &str, errors: Vec<ObjectError>) -> anyhow::Result<ExitCode> {
    for e in &errors {
        errln!("error: {e}");
    }
    errln!(
        "aksnet apply: {} object{} rejected; nothing was applied",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    if args.output == Output::Json {
        let report = ApplyReport {
            applied: false,
            store: url.to_string(),
            revision: None,
            attempts: 0,
            results: vec![],
            errors,
        };
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::from(EXIT_INVALID))
}

fn wrong_namespace(obj_ns: &str, flag_ns: &str, what: &str, source: &str) -> ObjectError {
    ObjectError {
        object: what.to_string(),
        source: Some(source.to_string()),
        errors: vec![FieldError {
            field: "metadata.namespace".into(),
            kind: ErrorType::Invalid,
            value: Some(format!("{obj_ns:?}")),
            detail: format!(
                "the namespace from the provided object \"{obj_ns}\" does not match the namespace \"{flag_ns}\"; pass --namespace {obj_ns}, or none"
            ),
        }],
    }
}

pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let target = match args.target.resolve() {
        Ok(t) => t,
        Err(e) => return unusable(e),
    };
    let docs = match input::documents(&args.files) {
        Ok(d) => d,
        Err(e) => return unusable(e),
    };
    let mut inputs: Vec<Input> = vec![];
    let mut items: Vec<Item> = vec![];
    let mut errors: Vec<ObjectError> = vec![];
    for doc in docs {
        match documents::read(doc) {
            Ok(Parsed::Object { mut object, source }) => {
                if let Some(ns) = &args.namespace {
                    if object.kind().namespaced() {
                        match object.meta().namespace.clone().filter(|n| !n.is_empty()) {
                            None => object.meta_mut().namespace = Some(ns.clone()),
                            Some(o) if &o != ns => {
                                let what = format!("{} {o}/{}", object.kind(), object.name());
                                errors.push(wrong_namespace(&o, ns, &what, &source));
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                }
                items.push(Item::Object(inputs.len()));
                inputs.push(Input {
                    object: *object,
                    source,
                });
            }
            Ok(Parsed::Ignored(i)) => items.push(Item::Ignored(i)),
            Err(ReadError::Input(e)) => return unusable(e),
            Err(ReadError::Object(e)) => errors.push(e),
        }
    }
    let url = target.url()?;
    if matches!(target, Target::Lab(_)) {
        if let Err(e) = kubelet::preflight(inputs.iter().map(|i| i.object.kind())) {
            return unusable(e);
        }
    }
    let store = target.open()?;
    let mut attempt = 0;
    let (plan, revision) = loop {
        attempt += 1;
        let snap = read(store.as_ref())?;
        let Some((network, network_rev)) = snap.network.clone() else {
            if !errors.is_empty() {
                return rejected(args, &url, errors);
            }
            if inputs.is_empty() {
                // Only ignored kinds: nothing to store, nothing to refuse.
                break (Default::default(), snap.revision);
            }
            errln!(
                "aksnet apply: {url} holds no cluster network, so there is no service CIDR to allocate from; run `aksnet cluster init --store {url}` (or `aksnet lab up`) first"
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        };
        let ctx = ApplyContext {
            now: rfc3339(super::now_secs()),
            seed: seed().wrapping_add(u64::from(attempt)),
        };
        let plan = match plan_apply(&snap.k8s, &network, &ctx, inputs.clone()) {
            Ok(p) => p,
            Err(mut e) => {
                errors.append(&mut e);
                return rejected(args, &url, errors);
            }
        };
        if !errors.is_empty() {
            return rejected(args, &url, errors);
        }
        if plan.is_noop() {
            break (plan, snap.revision);
        }
        let txn = transaction(&plan.writes, &plan.checks, Some(network_rev));
        if let Some(msg) = too_big(&txn) {
            errln!("aksnet apply: {msg}; nothing was applied");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        let r = store.txn(txn)?;
        if r.succeeded {
            break (plan, r.revision);
        }
        if attempt >= ATTEMPTS {
            errln!(
                "aksnet apply: the store kept changing under this apply ({ATTEMPTS} attempts lost a race); nothing was applied, try again"
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        tracing::debug!(attempt, "lost a race with another writer; planning again");
    };

    if let Target::Lab(dir) = &target {
        let done = Committed {
            revision,
            changed: plan
                .outcomes
                .iter()
                .filter(|(_, a, _)| *a != aksnet_core::k8s::apply::Action::Unchanged)
                .map(|(id, ..)| id.clone())
                .collect(),
            deleted: vec![],
        };
        kubelet::after_commit(dir, &done)?;
    }

    let mut rows = vec![];
    for item in items {
        rows.push(match item {
            Item::Object(i) => {
                let (id, action, obj) = &plan.outcomes[i];
                ResultRow {
                    kind: id.kind.name().into(),
                    api_version: id.kind.api_version().into(),
                    namespace: id.kind.namespaced().then(|| id.namespace.clone()),
                    name: id.name.clone(),
                    action: action.as_str().into(),
                    reason: None,
                    display: format!("{}/{}", id.kind.qualified_singular(), obj.name()),
                }
            }
            Item::Ignored(ig) => ResultRow {
                display: ig.display(),
                kind: ig.kind,
                api_version: ig.api_version,
                namespace: ig.namespace,
                name: ig.name,
                action: "ignored".into(),
                reason: Some(ig.reason.to_string()),
            },
        });
    }
    match args.output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&ApplyReport {
                applied: true,
                store: url,
                revision: Some(revision),
                attempts: attempt,
                results: rows,
                errors: vec![],
            })?
        ),
        Output::Table => {
            for r in rows {
                match r.reason {
                    Some(why) => outln!("{} {} ({why})", r.display, r.action),
                    None => outln!("{} {}", r.display, r.action),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
