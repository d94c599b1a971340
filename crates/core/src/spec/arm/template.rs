//! Walks an ARM template (and every nested deployment inside it) to find
//! the resources network planning reads: managed clusters, their agent
//! pools, virtual networks and subnets. Resources may be an array or, in
//! Bicep's `languageVersion 2.0`, an object keyed by symbolic name; copy
//! loops and conditions are applied.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::eval::{get_ci, nested_template, Ctx, EvalError, Registry, ResourceEntry, Scope};
use super::lazy::Lazy;

/// Where a deployment whose linked template is not among the inputs keeps
/// the flag that would supply it (a key no template can write).
pub const LINK_HINT: &str = "\u{0}linkHint";

/// Deepest nesting of deployments followed.
const MAX_NESTING: usize = 16;
/// Most resource instances a copy loop may produce.
const MAX_COPY: i64 = 800;

/// A resource found in a template, with where it sits.
#[derive(Clone)]
pub struct Found {
    pub entry: Rc<ResourceEntry>,
    /// `resources[3]`, `resources[2].properties.template.resources.vnet`, ...
    pub path: String,
    /// The resource type, lower-case, children prefixed with their parent's.
    pub ty: String,
    /// The name, with the parent's name for child resources (`vnet/snet`).
    pub name: Option<String>,
    /// A Bicep `existing` resource: declared, not deployed.
    pub existing: bool,
}

impl Found {
    /// The resource as a lazily evaluated value.
    pub fn lazy(&self, label: &str) -> Lazy {
        Lazy::template(
            self.entry.scope.clone(),
            self.entry.copy.clone(),
            self.entry.raw.clone(),
            label,
            &self.path,
        )
    }
}

/// Everything one template holds for planning, plus what could not be read.
#[derive(Default)]
pub struct Walk {
    pub resources: Vec<Found>,
    /// Warnings: conditions that could not be evaluated, linked templates.
    pub notes: Vec<(String, String)>,
    /// The documents read as linked templates (their labels).
    pub linked: Vec<String>,
    /// The files being walked, outermost first (a link back is a loop).
    chain: Vec<String>,
}

/// The template documents of every `--file`, which a deployment's
/// `templateLink` may name.
#[derive(Default)]
pub struct Links<'a> {
    pub docs: Vec<(&'a str, &'a Map<String, Value>)>,
}

/// What a `templateLink` names, matched against the input files.
enum LinkMatch<'a> {
    Found(&'a str, &'a Map<String, Value>),
    Missing,
    Ambiguous(Vec<&'a str>),
}

impl<'a> Links<'a> {
    /// The input file a link (`nested/vnet.json`, or a URL ending in it,
    /// with or without a SAS query) names: the same file name, and of
    /// several, the one whose path shares the most trailing components.
    fn find(&self, link: &str) -> LinkMatch<'a> {
        let path = link.split(['?', '#']).next().unwrap_or(link);
        let want: Vec<&str> = path.split(['/', '\\']).filter(|c| !c.is_empty()).collect();
        let Some(file) = want.last() else {
            return LinkMatch::Missing;
        };
        let mut best: Vec<(usize, &'a str, &'a Map<String, Value>)> = Vec::new();
        for &(label, doc) in &self.docs {
            let have: Vec<&str> = label.split(['/', '\\']).filter(|c| !c.is_empty()).collect();
            if have.last() != Some(file) {
                continue;
            }
            let shared = want
                .iter()
                .rev()
                .zip(have.iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            match best.first() {
                Some((n, _, _)) if *n > shared => {}
                Some((n, _, _)) if *n == shared => best.push((shared, label, doc)),
                _ => best = vec![(shared, label, doc)],
            }
        }
        match best.as_slice() {
            [] => LinkMatch::Missing,
            [(_, label, doc)] => LinkMatch::Found(label, doc),
            many => LinkMatch::Ambiguous(many.iter().map(|(_, l, _)| *l).collect()),
        }
    }
}

/// Walks `template` (the file `label`) whose top-level parameter values are
/// `given`; deployments linking another input file follow it.
pub fn walk(
    template: &Map<String, Value>,
    given: &HashMap<String, Value>,
    label: &str,
    links: &Links,
) -> (Rc<Scope>, Walk) {
    let registry = Rc::new(Registry::default());
    let scope = Rc::new(Scope::new(template, given, registry, "deployment"));
    let mut w = Walk {
        chain: vec![label.to_string()],
        ..Walk::default()
    };
    walk_in(template, &scope, "", None, &[], links, &mut w, 0);
    (scope, w)
}

fn resources_of(t: &Map<String, Value>) -> Vec<(String, Option<String>, &Value)> {
    match get_ci(t, "resources") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("resources[{i}]"), None, r))
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, r)| (format!("resources.{k}"), Some(k.clone()), r))
            .collect(),
        _ => Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_in(
    template: &Map<String, Value>,
    scope: &Rc<Scope>,
    prefix: &str,
    parent: Option<(&str, &str)>,
    copy: &[(String, i64)],
    links: &Links,
    w: &mut Walk,
    depth: usize,
) {
    if depth > MAX_NESTING {
        w.notes.push((
            prefix.to_string(),
            format!("deployments nest deeper than {MAX_NESTING}; the deeper ones are not read"),
        ));
        return;
    }
    for (rel, symbolic, r) in resources_of(template) {
        let path = join(prefix, &rel);
        let Some(obj) = r.as_object() else { continue };
        let mut base = Ctx::new(scope);
        base.copy = copy.to_vec();
        // Resource copy loops: one instance per index.
        let instances: Vec<Vec<(String, i64)>> = match obj.get("copy") {
            Some(c @ Value::Object(_)) => {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("copy")
                    .to_string();
                match base
                    .value(c.get("count").unwrap_or(&Value::Null))
                    .and_then(|v| super::eval::as_int(&v, "copy count"))
                {
                    Ok(n) if (0..=MAX_COPY).contains(&n) => (0..n)
                        .map(|i| {
                            let mut cp = copy.to_vec();
                            cp.push((name.to_ascii_lowercase(), i));
                            cp
                        })
                        .collect(),
                    Ok(n) => {
                        w.notes.push((
                            path.clone(),
                            format!(
                                "copy count {n} is outside 0..{MAX_COPY}; the resource is not read"
                            ),
                        ));
                        continue;
                    }
                    Err(e) => {
                        w.notes.push((
                            path.clone(),
                            format!(
                                "the copy count cannot be evaluated ({}); one instance is read",
                                e.message
                            ),
                        ));
                        let mut cp = copy.to_vec();
                        cp.push((name.to_ascii_lowercase(), 0));
                        vec![cp]
                    }
                }
            }
            _ => vec![copy.to_vec()],
        };
        for (k, inst) in instances.into_iter().enumerate() {
            let ipath = if obj.contains_key("copy") {
                format!("{path}(copy {k})")
            } else {
                path.clone()
            };
            let mut ctx = Ctx::new(scope);
            ctx.copy = inst.clone();
            if let Some(c) = obj.get("condition") {
                match ctx.value(c) {
                    Ok(Value::Bool(false)) => continue,
                    Ok(_) => {}
                    Err(e) => w.notes.push((
                        format!("{ipath}.condition"),
                        format!(
                            "cannot be evaluated ({}); the resource is read as deployed",
                            e.message
                        ),
                    )),
                }
            }
            let ty = ctx
                .value(obj.get("type").unwrap_or(&Value::Null))
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let name = ctx
                .value(obj.get("name").unwrap_or(&Value::Null))
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            // Child resources declared inside their parent have short types
            // and names.
            let (full_ty, full_name) = match parent {
                Some((pt, pn)) if !ty.contains('/') || !ty.contains('.') => (
                    format!("{pt}/{ty}"),
                    name.as_ref().map(|n| format!("{pn}/{n}")),
                ),
                _ => (ty.clone(), name.clone()),
            };
            let mut raw = r.clone();
            let is_deployment = full_ty.eq_ignore_ascii_case(super::DEPLOYMENTS);
            let existing = obj.get("existing").and_then(Value::as_bool) == Some(true);
            let linked = if is_deployment && !existing {
                link(obj, &mut raw, &ctx, &ipath, links, w)
            } else {
                None
            };
            if let (Some(m), true) = (raw.as_object_mut(), full_ty != ty) {
                m.insert("type".into(), Value::String(full_ty.clone()));
                if let Some(n) = &full_name {
                    m.insert("name".into(), Value::String(n.clone()));
                }
            }
            let entry = Rc::new(ResourceEntry {
                symbolic: symbolic.clone(),
                raw,
                scope: scope.clone(),
                copy: inst.clone(),
                nested: Default::default(),
            });
            scope.registry.resources.borrow_mut().push(entry.clone());
            let lower = full_ty.to_ascii_lowercase();
            if is_deployment && !existing {
                let pushed = linked.is_some();
                if let Some(l) = linked {
                    w.chain.push(l);
                }
                deployment(obj, &entry, &ctx, &ipath, links, w, depth);
                if pushed {
                    w.chain.pop();
                }
            }
            if let Some(children) = obj.get("resources") {
                if let (Some(name), true) =
                    (&full_name, children.is_array() || children.is_object())
                {
                    let mut t = Map::new();
                    t.insert("resources".into(), children.clone());
                    walk_in(
                        &t,
                        scope,
                        &ipath,
                        Some((&full_ty, name)),
                        &inst,
                        links,
                        w,
                        depth,
                    );
                }
            }
            w.resources.push(Found {
                entry,
                path: ipath.clone(),
                ty: lower,
                name: full_name,
                existing,
            });
        }
    }
}

/// A nested deployment: its template gets a scope of its own (`inner`, as
/// Bicep modules always are) or shares the parent's (`outer`, the JSON
/// default).
fn deployment(
    obj: &Map<String, Value>,
    entry: &Rc<ResourceEntry>,
    ctx: &Ctx,
    path: &str,
    links: &Links,
    w: &mut Walk,
    depth: usize,
) {
    let props = obj.get("properties");
    let Some(template) = nested_template(&entry.raw) else {
        return;
    };
    // A linked template always has a scope of its own.
    let linked = props.and_then(|p| p.get("templateLink")).is_some();
    let inner = linked
        || props
            .and_then(|p| p.get("expressionEvaluationOptions"))
            .and_then(|o| o.get("scope"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("inner"));
    let name = ctx
        .value(obj.get("name").unwrap_or(&Value::Null))
        .ok()
        .map(|v| super::eval::to_text(&v))
        .unwrap_or_default();
    let scope = if inner {
        let mut given = HashMap::new();
        let mut failed: Vec<(String, EvalError)> = Vec::new();
        if let Some(Value::Object(ps)) = props.and_then(|p| p.get("parameters")) {
            for (k, v) in ps {
                let Some(val) = v.get("value") else { continue };
                match ctx.value(val) {
                    Ok(x) => {
                        given.insert(k.to_ascii_lowercase(), x);
                    }
                    Err(e) => failed.push((k.clone(), e)),
                }
            }
        }
        let s = Scope::new(template, &given, ctx.scope.registry.clone(), &name)
            .with_failed_parameters(failed, path);
        Rc::new(s)
    } else {
        ctx.scope.clone()
    };
    *entry.nested.borrow_mut() = Some(scope.clone());
    let prefix = match (linked, w.chain.last()) {
        (true, Some(file)) => format!("{path}.properties.templateLink({file})"),
        _ => format!("{path}.properties.template"),
    };
    walk_in(template, &scope, &prefix, None, &[], links, w, depth + 1);
}

/// A deployment whose template is linked (`templateLink.uri` or
/// `relativePath`): when the link names an input file, that file's template
/// is put in the deployment's `properties.template` (in `raw`) and its label
/// returned; otherwise a note says which file to give.
fn link(
    obj: &Map<String, Value>,
    raw: &mut Value,
    ctx: &Ctx,
    path: &str,
    links: &Links,
    w: &mut Walk,
) -> Option<String> {
    let props = obj.get("properties")?;
    if nested_template(raw).is_some() {
        return None;
    }
    let tl = props.get("templateLink")?;
    let at = format!("{path}.properties.templateLink");
    if tl.get("id").is_some() && tl.get("uri").is_none() && tl.get("relativePath").is_none() {
        w.notes.push((
            at,
            "links a template spec (id), which is not in the inputs; its resources are not read"
                .into(),
        ));
        return None;
    }
    let (key, expr) = match (tl.get("relativePath"), tl.get("uri")) {
        (Some(r), _) => ("relativePath", r),
        (None, Some(u)) => ("uri", u),
        (None, None) => return None,
    };
    let target = match ctx.value(expr) {
        Ok(Value::String(s)) => s,
        Ok(other) => {
            w.notes.push((
                format!("{at}.{key}"),
                format!("is {other}, not a file name; the linked template is not read"),
            ));
            return None;
        }
        Err(e) => {
            w.notes.push((
                format!("{at}.{key}"),
                format!(
                    "'{}' cannot be evaluated ({}); the linked template is not read",
                    expr, e.message
                ),
            ));
            return None;
        }
    };
    if props.get("parametersLink").is_some() {
        w.notes.push((
            format!("{path}.properties.parametersLink"),
            "the linked template's parameters are in a linked file, which is not read; its parameters take their defaults".into(),
        ));
    }
    // The hint: the link's path beside the file that links it.
    let parent = w.chain.last().cloned().unwrap_or_default();
    let clean = target
        .split(['?', '#'])
        .next()
        .unwrap_or(&target)
        .to_string();
    let rel = if clean.contains("://") {
        clean.rsplit('/').next().unwrap_or(&clean).to_string()
    } else {
        clean.clone()
    };
    let hint = match std::path::Path::new(&parent).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(&rel).display().to_string(),
        _ => rel,
    };
    match links.find(&target) {
        LinkMatch::Found(label, doc) => {
            if w.chain.iter().any(|c| c == label) {
                w.notes.push((
                    at,
                    format!("links {label}, which is already being read (a loop); not read again"),
                ));
                return None;
            }
            if let Some(p) = raw.get_mut("properties").and_then(Value::as_object_mut) {
                p.insert("template".into(), Value::Object(doc.clone()));
            }
            if !w.linked.iter().any(|l| l == label) {
                w.linked.push(label.to_string());
            }
            Some(label.to_string())
        }
        LinkMatch::Missing => {
            // reference() to this deployment then names the file too.
            if let Some(p) = raw.get_mut("properties").and_then(Value::as_object_mut) {
                p.insert(LINK_HINT.into(), Value::String(format!("--file {hint}")));
            }
            w.notes.push((
                at,
                format!("links '{clean}', which is not among the inputs; its resources are not read: give it with --file {hint}"),
            ));
            None
        }
        LinkMatch::Ambiguous(labels) => {
            w.notes.push((
                at,
                format!(
                    "links '{clean}', which matches several inputs ({}); not read: give only one of them",
                    labels.join(", ")
                ),
            ));
            None
        }
    }
}

fn join(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}.{rel}")
    }
}
