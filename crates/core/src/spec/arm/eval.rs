//! Evaluates ARM template expressions for what network planning reads:
//! `parameters()`, `variables()`, the string, array, object, logical and
//! numeric functions AKS templates use for names and ranges, `resourceId()`
//! and `reference()` to resources of the same inputs, copy loops, Bicep's
//! user-defined functions and lambdas.
//!
//! Values the planner cannot know (the subscription ID, the resource group's
//! name, `uniqueString`) evaluate to stable placeholders such as
//! `{subscriptionId}`: they only ever end up in names and IDs, and two equal
//! calls give equal text, so resource IDs still match by VNet and subnet
//! name. A value that decides a range or a count is never a placeholder.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::rc::Rc;

use serde_json::{json, Map, Number, Value};

use super::expr::{self, Expr};
use crate::cidr;

/// How deep `variables()`, `reference()` and user functions may recurse
/// into each other: far beyond real templates, and a cycle stops here.
const MAX_EVAL_DEPTH: usize = 48;
/// Longest array or string an expression may build (`range`, `padLeft`).
const MAX_BUILD: usize = 100_000;

/// Why an expression has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub message: String,
    /// Parameters the expression needed that have neither a value nor a
    /// default: `--parameter NAME=VALUE` supplies them.
    pub missing_parameters: Vec<String>,
}

impl EvalError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            missing_parameters: Vec::new(),
        }
    }
}

type R<T> = Result<T, EvalError>;

/// A declared template parameter and the value it was given, if any.
#[derive(Debug, Clone)]
pub struct Param {
    /// The declaration (`type`, `defaultValue`, ...).
    pub decl: Value,
    pub given: Option<Value>,
}

/// A user-defined function (`functions[].members`), Bicep's `__bicep.*`.
#[derive(Debug, Clone)]
struct UserFunction {
    params: Vec<String>,
    output: Value,
}

/// A resource of the inputs that `reference()` and `resourceId()` matching
/// can find.
pub struct ResourceEntry {
    pub symbolic: Option<String>,
    pub raw: Value,
    pub scope: Rc<Scope>,
    pub copy: Vec<(String, i64)>,
    /// For `Microsoft.Resources/deployments`: the nested template's scope.
    pub nested: RefCell<Option<Rc<Scope>>>,
}

/// Every resource seen in one file (all nesting levels).
#[derive(Default)]
pub struct Registry {
    pub resources: RefCell<Vec<Rc<ResourceEntry>>>,
}

/// One template's evaluation scope.
pub struct Scope {
    params: HashMap<String, (String, Param)>,
    variables: HashMap<String, Value>,
    functions: HashMap<String, UserFunction>,
    var_cache: RefCell<HashMap<String, R<Value>>>,
    in_progress: RefCell<BTreeSet<String>>,
    pub registry: Rc<Registry>,
    /// The deployment's name, for `deployment().name`.
    pub deployment_name: String,
    /// Parameters a parent deployment passes but could not evaluate.
    failed: HashMap<String, EvalError>,
}

/// A parameter declared as `{"$ref": "#/definitions/NAME"}` (Bicep's
/// user-defined types, languageVersion 2.0) takes the definition's `type`,
/// `nullable`, `defaultValue` and the rest, under its own keys: an AVM
/// module's `agentPools` is a nullable array only through its definition.
pub(crate) fn with_definition(decl: &Value, definitions: Option<&Map<String, Value>>) -> Value {
    let (Some(Value::String(r)), Some(defs)) = (decl.get("$ref"), definitions) else {
        return decl.clone();
    };
    let Some(Value::Object(def)) = r.strip_prefix("#/definitions/").and_then(|n| defs.get(n))
    else {
        return decl.clone();
    };
    let mut merged = def.clone();
    if let Value::Object(own) = decl {
        for (k, v) in own {
            if k != "$ref" {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(merged)
}

impl Scope {
    /// The scope of `template`, with `given` parameter values (by name,
    /// case-insensitive). Unknown given names are ignored here; the caller
    /// reports them.
    pub fn new(
        template: &Map<String, Value>,
        given: &HashMap<String, Value>,
        registry: Rc<Registry>,
        deployment_name: &str,
    ) -> Scope {
        let mut params = HashMap::new();
        let definitions = get_ci(template, "definitions").and_then(Value::as_object);
        if let Some(Value::Object(ps)) = get_ci(template, "parameters") {
            for (name, decl) in ps {
                let given = given.get(&name.to_ascii_lowercase()).cloned();
                params.insert(
                    name.to_ascii_lowercase(),
                    (
                        name.clone(),
                        Param {
                            decl: with_definition(decl, definitions),
                            given,
                        },
                    ),
                );
            }
        }
        let mut variables = HashMap::new();
        if let Some(Value::Object(vs)) = get_ci(template, "variables") {
            for (name, v) in vs {
                if name.eq_ignore_ascii_case("copy") {
                    // Variable copy loops: each element defines a variable.
                    if let Value::Array(loops) = v {
                        for l in loops {
                            if let Some(n) = l.get("name").and_then(Value::as_str) {
                                variables.insert(
                                    n.to_ascii_lowercase(),
                                    json!({"\u{0}copy": l.clone()}),
                                );
                            }
                        }
                    }
                    continue;
                }
                variables.insert(name.to_ascii_lowercase(), v.clone());
            }
        }
        let mut functions = HashMap::new();
        if let Some(Value::Array(ns)) = get_ci(template, "functions") {
            for n in ns {
                let Some(space) = n.get("namespace").and_then(Value::as_str) else {
                    continue;
                };
                let Some(Value::Object(members)) = n.get("members") else {
                    continue;
                };
                for (m, def) in members {
                    let params = def
                        .get("parameters")
                        .and_then(Value::as_array)
                        .map(|ps| {
                            ps.iter()
                                .filter_map(|p| p.get("name").and_then(Value::as_str))
                                .map(str::to_ascii_lowercase)
                                .collect()
                        })
                        .unwrap_or_default();
                    let output = def
                        .get("output")
                        .and_then(|o| o.get("value"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    functions.insert(
                        format!("{space}.{m}").to_ascii_lowercase(),
                        UserFunction { params, output },
                    );
                }
            }
        }
        Scope {
            params,
            variables,
            functions,
            var_cache: RefCell::new(HashMap::new()),
            in_progress: RefCell::new(BTreeSet::new()),
            registry,
            deployment_name: deployment_name.to_string(),
            failed: HashMap::new(),
        }
    }

    /// Records parameters the parent deployment at `path` passes but could
    /// not evaluate: reading them reports why.
    pub fn with_failed_parameters(mut self, failed: Vec<(String, EvalError)>, path: &str) -> Self {
        for (k, e) in failed {
            self.failed.insert(
                k.to_ascii_lowercase(),
                EvalError {
                    message: format!(
                        "parameter '{k}' passed by the deployment at {path}: {}",
                        e.message
                    ),
                    missing_parameters: e.missing_parameters,
                },
            );
        }
        self
    }

    /// Declared parameter names, as written.
    pub fn parameter_names(&self) -> Vec<String> {
        self.params.values().map(|(n, _)| n.clone()).collect()
    }

    /// Whether the template declares `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.params.contains_key(&name.to_ascii_lowercase())
    }
}

/// Where an evaluation happens: the scope, the copy loops around it, and
/// lambda variables.
#[derive(Clone)]
pub struct Ctx<'a> {
    pub scope: &'a Rc<Scope>,
    pub copy: Vec<(String, i64)>,
    locals: Vec<(String, Value)>,
    depth: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(scope: &'a Rc<Scope>) -> Self {
        Ctx {
            scope,
            copy: Vec::new(),
            locals: Vec::new(),
            depth: 0,
        }
    }

    pub fn with_copy(&self, name: &str, index: i64) -> Self {
        let mut c = self.clone();
        c.copy.push((name.to_ascii_lowercase(), index));
        c
    }

    fn deeper(&self) -> R<Self> {
        if self.depth >= MAX_EVAL_DEPTH {
            return Err(EvalError::new(format!(
                "the expression refers to itself, or nests variables, references and functions deeper than {MAX_EVAL_DEPTH}"
            )));
        }
        let mut c = self.clone();
        c.depth += 1;
        Ok(c)
    }

    /// Evaluates a template value: an expression string is evaluated, a
    /// literal string unescaped, objects and arrays element by element
    /// (property `copy` loops expanded).
    pub fn value(&self, v: &Value) -> R<Value> {
        match v {
            Value::String(s) if expr::is_expression(s) => {
                let e = expr::parse(s).map_err(|m| EvalError::new(format!("cannot parse: {m}")))?;
                self.eval(&e)
            }
            Value::String(s) => Ok(Value::String(expr::unescape_literal(s).to_string())),
            Value::Array(a) => a
                .iter()
                .map(|x| self.value(x))
                .collect::<R<Vec<_>>>()
                .map(Value::Array),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    if k == "copy" {
                        if let Value::Array(loops) = x {
                            if loops.iter().all(|l| l.get("input").is_some()) {
                                for l in loops {
                                    let (name, items) = self.property_copy(l)?;
                                    out.insert(name, Value::Array(items));
                                }
                                continue;
                            }
                        }
                    }
                    out.insert(k.clone(), self.value(x)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// One property copy loop: `{name, count, input}` → (name, items).
    pub fn property_copy(&self, l: &Value) -> R<(String, Vec<Value>)> {
        let name = l
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| EvalError::new("a copy loop has no name"))?
            .to_string();
        let count = self.value(l.get("count").unwrap_or(&Value::Null))?;
        let n = as_int(&count, "copy count")?;
        if !(0..=MAX_BUILD as i64).contains(&n) {
            return Err(EvalError::new(format!(
                "copy count {n} is outside 0..{MAX_BUILD}"
            )));
        }
        let input = l.get("input").cloned().unwrap_or(Value::Null);
        let mut items = Vec::new();
        for i in 0..n {
            items.push(self.with_copy(&name, i).value(&input)?);
        }
        Ok((name, items))
    }

    pub fn eval(&self, e: &Expr) -> R<Value> {
        match e {
            Expr::Str(s) => Ok(Value::String(s.clone())),
            Expr::Int(i) => Ok(Value::from(*i)),
            Expr::Member(base, m) => {
                let b = self.eval(base)?;
                member(&b, m, e)
            }
            Expr::Index(base, i) => {
                let b = self.eval(base)?;
                let i = self.eval(i)?;
                index(&b, &i)
            }
            Expr::Call(name, args) => self.call(name, args),
        }
    }

    fn args(&self, args: &[Expr]) -> R<Vec<Value>> {
        args.iter().map(|a| self.eval(a)).collect()
    }

    fn call(&self, name: &str, raw: &[Expr]) -> R<Value> {
        let n = raw.len();
        let arity = |min: usize, max: usize| -> R<()> {
            if n < min || n > max {
                Err(EvalError::new(format!(
                    "{name}() takes {} argument{}, {n} given",
                    if min == max {
                        min.to_string()
                    } else {
                        format!("{min} to {max}")
                    },
                    if max == 1 { "" } else { "s" }
                )))
            } else {
                Ok(())
            }
        };
        match name {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            "parameters" => {
                arity(1, 1)?;
                let p = self.eval(&raw[0])?;
                self.parameter(as_str(&p, "parameters()")?)
            }
            "variables" => {
                arity(1, 1)?;
                let v = self.eval(&raw[0])?;
                self.variable(as_str(&v, "variables()")?)
            }
            "lambdavariables" => {
                arity(1, 1)?;
                let v = self.eval(&raw[0])?;
                let name = as_str(&v, "lambdaVariables()")?.to_string();
                self.locals
                    .iter()
                    .rev()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        EvalError::new(format!("lambda variable '{name}' is not defined here"))
                    })
            }
            "copyindex" => {
                arity(0, 2)?;
                let a = self.args(raw)?;
                let (loop_name, offset) = match a.as_slice() {
                    [] => (None, 0),
                    [Value::String(s)] => (Some(s.to_ascii_lowercase()), 0),
                    [o] => (None, as_int(o, "copyIndex offset")?),
                    [Value::String(s), o] => {
                        (Some(s.to_ascii_lowercase()), as_int(o, "copyIndex offset")?)
                    }
                    _ => {
                        return Err(EvalError::new(
                            "copyIndex() takes a loop name and an offset",
                        ))
                    }
                };
                let idx = match &loop_name {
                    Some(l) => self
                        .copy
                        .iter()
                        .rev()
                        .find(|(k, _)| k == l)
                        .map(|(_, i)| *i),
                    None => self.copy.last().map(|(_, i)| *i),
                };
                idx.map(|i| Value::from(i + offset)).ok_or_else(|| {
                    EvalError::new(match loop_name {
                        Some(l) => format!("copyIndex('{l}') is used outside the '{l}' loop"),
                        None => "copyIndex() is used outside a copy loop".to_string(),
                    })
                })
            }
            "if" => {
                arity(3, 3)?;
                // Lazy: only the branch taken is evaluated (ARM evaluates
                // both, but an unused branch must not stop the plan).
                let c = self.eval(&raw[0])?;
                if as_bool(&c, "if() condition")? {
                    self.eval(&raw[1])
                } else {
                    self.eval(&raw[2])
                }
            }
            "coalesce" => {
                for a in raw {
                    let v = self.eval(a)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Ok(Value::Null)
            }
            "and" | "or" => {
                let want = name == "or";
                for a in raw {
                    if as_bool(&self.eval(a)?, name)? == want {
                        return Ok(Value::Bool(want));
                    }
                }
                Ok(Value::Bool(!want))
            }
            "map" | "filter" | "sort" | "reduce" | "toobject" | "mapvalues" | "groupby" => {
                self.lambda_call(name, raw)
            }
            "reference" => {
                arity(1, 3)?;
                let a = self.args(raw)?;
                let full = a
                    .get(2)
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("full"));
                self.reference(as_str(&a[0], "reference()")?, full)
            }
            "resourceinfo" => {
                arity(1, 1)?;
                let a = self.args(raw)?;
                let s = as_str(&a[0], "resourceInfo()")?;
                let entry = self.find_resource(s)?;
                let ctx = Ctx {
                    scope: &entry.scope,
                    copy: entry.copy.clone(),
                    locals: vec![],
                    depth: self.depth + 1,
                };
                let ty = ctx.value(entry.raw.get("type").unwrap_or(&Value::Null))?;
                let nm = ctx.value(entry.raw.get("name").unwrap_or(&Value::Null))?;
                let id = resource_id(as_str(&ty, "type")?, &split_name(as_str(&nm, "name")?));
                Ok(json!({"id": id, "name": nm, "type": ty}))
            }
            _ => {
                if let Some(f) = self.scope.functions.get(name) {
                    return self.user_function(name, f, raw);
                }
                let a = self.args(raw)?;
                builtin(name, &a, self)
            }
        }
    }

    fn lambda_call(&self, name: &str, raw: &[Expr]) -> R<Value> {
        let lambda = |e: &Expr| -> R<(Vec<String>, Expr)> {
            match e {
                Expr::Call(n, args) if n == "lambda" && !args.is_empty() => {
                    let mut names = Vec::new();
                    for a in &args[..args.len() - 1] {
                        match a {
                            Expr::Str(s) => names.push(s.clone()),
                            _ => {
                                return Err(EvalError::new(
                                    "lambda() parameter names must be strings",
                                ))
                            }
                        }
                    }
                    Ok((names, args[args.len() - 1].clone()))
                }
                _ => Err(EvalError::new(format!(
                    "{name}() needs a lambda() argument"
                ))),
            }
        };
        let apply = |l: &(Vec<String>, Expr), vals: &[Value]| -> R<Value> {
            let mut c = self.deeper()?;
            for (n, v) in l.0.iter().zip(vals) {
                c.locals.push((n.clone(), v.clone()));
            }
            c.eval(&l.1)
        };
        if raw.len() < 2 {
            return Err(EvalError::new(format!(
                "{name}() takes a collection and a lambda"
            )));
        }
        let input = self.eval(&raw[0])?;
        let items: Vec<Value> = match (&input, name) {
            (Value::Object(m), "mapvalues" | "filter" | "map") if name == "mapvalues" => {
                m.values().cloned().collect()
            }
            (Value::Array(a), _) => a.clone(),
            (Value::Null, _) => Vec::new(),
            _ => {
                return Err(EvalError::new(format!(
                    "{name}() needs an array, found {}",
                    kind(&input)
                )))
            }
        };
        let l = lambda(&raw[1])?;
        match name {
            "map" => items
                .iter()
                .enumerate()
                .map(|(i, v)| apply(&l, &[v.clone(), Value::from(i)]))
                .collect::<R<Vec<_>>>()
                .map(Value::Array),
            "filter" => {
                let mut out = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    if as_bool(&apply(&l, &[v.clone(), Value::from(i)])?, "filter()")? {
                        out.push(v.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            "sort" => Ok(Value::Array(items)),
            "reduce" => {
                let init = self.eval(
                    raw.get(1)
                        .ok_or_else(|| EvalError::new("reduce() needs an initial value"))?,
                )?;
                let l = lambda(
                    raw.get(2)
                        .ok_or_else(|| EvalError::new("reduce() needs a lambda"))?,
                )?;
                let mut acc = init;
                for (i, v) in items.iter().enumerate() {
                    acc = apply(&l, &[acc, v.clone(), Value::from(i)])?;
                }
                Ok(acc)
            }
            "toobject" => {
                let value_l = raw.get(2).map(lambda).transpose()?;
                let mut out = Map::new();
                for v in &items {
                    let k = apply(&l, std::slice::from_ref(v))?;
                    let val = match &value_l {
                        Some(vl) => apply(vl, std::slice::from_ref(v))?,
                        None => v.clone(),
                    };
                    out.insert(to_text(&k), val);
                }
                Ok(Value::Object(out))
            }
            "mapvalues" => {
                let Value::Object(m) = &input else {
                    return Ok(Value::Object(Map::new()));
                };
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), apply(&l, std::slice::from_ref(v))?);
                }
                Ok(Value::Object(out))
            }
            _ => Err(EvalError::new(format!(
                "function '{name}' is not evaluated by aksnet"
            ))),
        }
    }

    fn user_function(&self, name: &str, f: &UserFunction, raw: &[Expr]) -> R<Value> {
        let a = self.args(raw)?;
        if a.len() != f.params.len() {
            return Err(EvalError::new(format!(
                "{name}() takes {} arguments, {} given",
                f.params.len(),
                a.len()
            )));
        }
        let given: HashMap<String, Value> = f.params.iter().cloned().zip(a).collect();
        let mut decl = Map::new();
        for p in &f.params {
            decl.insert(p.clone(), json!({}));
        }
        let mut t = Map::new();
        t.insert("parameters".into(), Value::Object(decl));
        let scope = Rc::new(Scope::new(
            &t,
            &given,
            self.scope.registry.clone(),
            &self.scope.deployment_name,
        ));
        let mut c = Ctx::new(&scope);
        c.depth = self.depth + 1;
        if c.depth >= MAX_EVAL_DEPTH {
            return Err(EvalError::new(format!(
                "user function {name}() recurses deeper than {MAX_EVAL_DEPTH}"
            )));
        }
        c.value(&f.output)
    }

    fn parameter(&self, name: &str) -> R<Value> {
        let Some((written, p)) = self.scope.params.get(&name.to_ascii_lowercase()) else {
            return Err(EvalError::new(format!(
                "parameters('{name}'): the template declares no parameter '{name}'"
            )));
        };
        if let Some(v) = &p.given {
            return Ok(v.clone());
        }
        if let Some(e) = self.scope.failed.get(&name.to_ascii_lowercase()) {
            return Err(e.clone());
        }
        // Bicep's optional parameters (`param x string?`) compile to
        // `"nullable": true` without a default: null when not given.
        if p.decl.get("defaultValue").is_none()
            && p.decl.get("nullable").and_then(Value::as_bool) == Some(true)
        {
            return Ok(Value::Null);
        }
        match p.decl.get("defaultValue") {
            Some(d) => self.deeper()?.value(d).map_err(|e| EvalError {
                message: format!("the default of parameter '{written}': {}", e.message),
                ..e
            }),
            None => Err(EvalError {
                message: format!(
                    "parameter '{written}' has no defaultValue and no value was given"
                ),
                missing_parameters: vec![written.clone()],
            }),
        }
    }

    fn variable(&self, name: &str) -> R<Value> {
        let key = name.to_ascii_lowercase();
        if let Some(v) = self.scope.var_cache.borrow().get(&key) {
            return v.clone();
        }
        let Some(raw) = self.scope.variables.get(&key).cloned() else {
            return Err(EvalError::new(format!(
                "variables('{name}'): the template declares no variable '{name}'"
            )));
        };
        if !self.scope.in_progress.borrow_mut().insert(key.clone()) {
            return Err(EvalError::new(format!(
                "variable '{name}' refers to itself"
            )));
        }
        // Variables see no copy loop or lambda of the place that uses them.
        let c = Ctx {
            scope: self.scope,
            copy: vec![],
            locals: vec![],
            depth: self.depth + 1,
        };
        let result = if c.depth >= MAX_EVAL_DEPTH {
            Err(EvalError::new(format!(
                "variable '{name}' nests deeper than {MAX_EVAL_DEPTH}"
            )))
        } else if let Some(l) = raw.get("\u{0}copy") {
            c.property_copy(l).map(|(_, items)| Value::Array(items))
        } else {
            c.value(&raw)
        };
        self.scope.in_progress.borrow_mut().remove(&key);
        self.scope
            .var_cache
            .borrow_mut()
            .insert(key, result.clone());
        result
    }

    fn find_resource(&self, id_or_name: &str) -> R<Rc<ResourceEntry>> {
        let wanted = parse_resource_id(id_or_name);
        let all = self.scope.registry.resources.borrow().clone();
        for r in &all {
            if r.symbolic
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(id_or_name))
            {
                return Ok(r.clone());
            }
        }
        for r in &all {
            let c = Ctx {
                scope: &r.scope,
                copy: r.copy.clone(),
                locals: vec![],
                depth: self.depth + 1,
            };
            if c.depth >= MAX_EVAL_DEPTH {
                break;
            }
            let (Ok(Value::String(ty)), Ok(Value::String(nm))) = (
                c.value(r.raw.get("type").unwrap_or(&Value::Null)),
                c.value(r.raw.get("name").unwrap_or(&Value::Null)),
            ) else {
                continue;
            };
            let names = split_name(&nm);
            let hit = match &wanted {
                Some((t, n)) => t.eq_ignore_ascii_case(&ty) && eq_names(n, &names),
                None => names
                    .last()
                    .is_some_and(|l| l.eq_ignore_ascii_case(id_or_name)),
            };
            if hit {
                return Ok(r.clone());
            }
        }
        Err(EvalError::new(format!(
            "reference() to '{id_or_name}', which is not a resource of the inputs (give the file that deploys it with another --file)"
        )))
    }

    fn reference(&self, target: &str, full: bool) -> R<Value> {
        let entry = self.find_resource(target)?;
        let c = Ctx {
            scope: &entry.scope,
            copy: entry.copy.clone(),
            locals: vec![],
            depth: self.depth + 1,
        };
        let c = c.deeper()?;
        let ty = c.value(entry.raw.get("type").unwrap_or(&Value::Null))?;
        if ty
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(super::DEPLOYMENTS))
        {
            let nested = entry.nested.borrow().clone();
            let Some(scope) = nested else {
                let hint = entry
                    .raw
                    .pointer("/properties")
                    .and_then(|p| p.get(super::template::LINK_HINT))
                    .and_then(Value::as_str)
                    .map_or(String::new(), |h| format!(" (give it with {h})"));
                return Err(EvalError::new(format!(
                    "reference() to deployment '{target}', whose template is linked, not in the inputs{hint}"
                )));
            };
            let inner = Ctx {
                scope: &scope,
                copy: vec![],
                locals: vec![],
                depth: c.depth + 1,
            };
            let template = nested_template(&entry.raw);
            let mut outputs = Map::new();
            if let Some(Value::Object(outs)) = template.and_then(|t| get_ci(t, "outputs")) {
                for (k, o) in outs {
                    // Outputs are evaluated when read, one at a time.
                    if let Some(v) = o.get("value") {
                        match inner.value(v) {
                            Ok(v) => {
                                outputs
                                    .insert(k.clone(), json!({"type": o.get("type"), "value": v}));
                            }
                            Err(e) => {
                                outputs.insert(
                                    k.clone(),
                                    json!({"\u{0}error": e.message, "\u{0}missing": e.missing_parameters}),
                                );
                            }
                        }
                    }
                }
            }
            return Ok(json!({"outputs": outputs}));
        }
        if full {
            c.value(&entry.raw)
        } else {
            c.value(entry.raw.get("properties").unwrap_or(&Value::Null))
        }
    }
}

/// The inline template of a `Microsoft.Resources/deployments` resource.
pub fn nested_template(res: &Value) -> Option<&Map<String, Value>> {
    res.get("properties")?.get("template")?.as_object()
}

/// Case-insensitive object lookup (ARM names are case-insensitive).
pub fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn member(b: &Value, m: &str, e: &Expr) -> R<Value> {
    match b {
        Value::Object(o) => {
            if let Some(err) = o.get("\u{0}error") {
                let missing = o
                    .get("\u{0}missing")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                return Err(EvalError {
                    message: format!(
                        "a nested deployment's output: {}",
                        err.as_str().unwrap_or("")
                    ),
                    missing_parameters: missing,
                });
            }
            match get_ci(o, m) {
                Some(v) => Ok(v.clone()),
                None => {
                    let keys: Vec<&String> = o.keys().take(8).collect();
                    Err(EvalError::new(format!(
                        "'{e}': the object has no property '{m}' (it has {keys:?})"
                    )))
                }
            }
        }
        _ => Err(EvalError::new(format!("'{e}': .{m} of {}", kind(b)))),
    }
}

fn index(b: &Value, i: &Value) -> R<Value> {
    match (b, i) {
        (Value::Array(a), Value::Number(_)) => {
            let n = as_int(i, "index")?;
            usize::try_from(n)
                .ok()
                .and_then(|n| a.get(n))
                .cloned()
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "index {n} is outside the array of {} items",
                        a.len()
                    ))
                })
        }
        (Value::Object(o), Value::String(k)) => get_ci(o, k)
            .cloned()
            .ok_or_else(|| EvalError::new(format!("the object has no property '{k}'"))),
        _ => Err(EvalError::new(format!(
            "cannot index {} with {}",
            kind(b),
            kind(i)
        ))),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn as_str<'v>(v: &'v Value, what: &str) -> R<&'v str> {
    v.as_str()
        .ok_or_else(|| EvalError::new(format!("{what} needs a string, found {}", kind(v))))
}

pub fn as_int(v: &Value, what: &str) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| EvalError::new(format!("{what} needs a whole number, found {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| EvalError::new(format!("{what} needs a whole number, found '{s}'"))),
        _ => Err(EvalError::new(format!(
            "{what} needs a whole number, found {}",
            kind(v)
        ))),
    }
}

fn as_bool(v: &Value, what: &str) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(EvalError::new(format!(
            "{what} needs a bool, found {}",
            kind(v)
        ))),
    }
}

/// A value as `string()` and `format()` write it.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn split_name(name: &str) -> Vec<String> {
    name.split('/').map(str::to_string).collect()
}

fn eq_names(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// `resourceId()`'s text for a type (`Microsoft.Network/virtualNetworks/subnets`)
/// and its names (`vnet`, `snet`).
pub fn resource_id(ty: &str, names: &[String]) -> String {
    let mut parts = ty.split('/');
    let ns = parts.next().unwrap_or("");
    let types: Vec<&str> = parts.collect();
    let mut id = format!(
        "/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroup}}/providers/{ns}"
    );
    for (i, t) in types.iter().enumerate() {
        id.push('/');
        id.push_str(t);
        id.push('/');
        id.push_str(names.get(i).map_or("", String::as_str));
    }
    id
}

/// A resource ID's type and names: `(.../providers/A.B/c/x/d/y)` →
/// (`A.B/c/d`, [x, y]). `None` when the text is not a resource ID.
pub fn parse_resource_id(id: &str) -> Option<(String, Vec<String>)> {
    let lower = id.to_ascii_lowercase();
    let tail = match lower.rfind("/providers/") {
        Some(i) => &id[i + "/providers/".len()..],
        None if id.contains('.') && id.matches('/').count() >= 2 && !id.starts_with('/') => id,
        None => return None,
    };
    let segs: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() < 3 || segs.len().is_multiple_of(2) {
        return None;
    }
    let mut ty = segs[0].to_string();
    let mut names = Vec::new();
    for pair in segs[1..].chunks(2) {
        ty.push('/');
        ty.push_str(pair[0]);
        names.push(pair[1].to_string());
    }
    Some((ty, names))
}

/// A stable stand-in for values only Azure knows (`uniqueString`, `guid`).
fn placeholder(what: &str, args: &[Value]) -> String {
    // FNV-1a: deterministic across runs, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for a in args {
        for b in to_text(a).bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        h ^= 0xff;
    }
    format!("{what}{:013x}", h & 0xf_ffff_ffff_ffff)
}

fn str_arg<'v>(a: &'v [Value], i: usize, f: &str) -> R<&'v str> {
    a.get(i)
        .ok_or_else(|| EvalError::new(format!("{f}() needs argument {}", i + 1)))
        .and_then(|v| as_str(v, &format!("{f}()")))
}

fn int_arg(a: &[Value], i: usize, f: &str) -> R<i64> {
    a.get(i)
        .ok_or_else(|| EvalError::new(format!("{f}() needs argument {}", i + 1)))
        .and_then(|v| as_int(v, &format!("{f}()")))
}

fn num(n: i64) -> Value {
    Value::Number(Number::from(n))
}

fn builtin(name: &str, a: &[Value], ctx: &Ctx) -> R<Value> {
    let cmp = |f: fn(std::cmp::Ordering) -> bool| -> R<Value> {
        let o = match (a.first(), a.get(1)) {
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (Some(x), Some(y)) => as_int(x, name)?.cmp(&as_int(y, name)?),
            _ => return Err(EvalError::new(format!("{name}() takes 2 arguments"))),
        };
        Ok(Value::Bool(f(o)))
    };
    match name {
        "concat" => {
            if a.iter().all(|v| v.is_array() || v.is_null()) && !a.is_empty() {
                Ok(Value::Array(
                    a.iter()
                        .filter_map(Value::as_array)
                        .flatten()
                        .cloned()
                        .collect(),
                ))
            } else {
                Ok(Value::String(a.iter().map(to_text).collect()))
            }
        }
        "format" => {
            let f = str_arg(a, 0, "format")?;
            Ok(Value::String(format_text(f, &a[1..])?))
        }
        "string" => Ok(Value::String(to_text(a.first().unwrap_or(&Value::Null)))),
        "int" => Ok(num(int_arg(a, 0, "int")?)),
        "bool" => as_bool(a.first().unwrap_or(&Value::Null), "bool()").map(Value::Bool),
        "json" => {
            let s = str_arg(a, 0, "json")?;
            serde_json::from_str(s).map_err(|e| EvalError::new(format!("json(): {e}")))
        }
        // uri(base, relative): the relative URI resolved against the base
        // (everything up to the base's last '/'); linked templates use it
        // with deployment().properties.templateLink.uri, which is empty
        // here, so the result is the path relative to the parent file.
        "uri" => {
            let base = str_arg(a, 0, name)?;
            let rel = str_arg(a, 1, name)?;
            Ok(Value::String(if rel.contains("://") {
                rel.to_string()
            } else {
                match base.rfind('/') {
                    Some(i) => format!("{}{}", &base[..=i], rel.trim_start_matches('/')),
                    None => rel.to_string(),
                }
            }))
        }
        "uricomponent" | "uricomponenttostring" => {
            Ok(Value::String(str_arg(a, 0, name)?.to_string()))
        }
        "tolower" => Ok(Value::String(str_arg(a, 0, name)?.to_lowercase())),
        "toupper" => Ok(Value::String(str_arg(a, 0, name)?.to_uppercase())),
        "trim" => Ok(Value::String(str_arg(a, 0, name)?.trim().to_string())),
        "replace" => Ok(Value::String(
            str_arg(a, 0, name)?.replace(str_arg(a, 1, name)?, str_arg(a, 2, name)?),
        )),
        "split" => {
            let s = str_arg(a, 0, name)?;
            let seps: Vec<String> = match a.get(1) {
                Some(Value::Array(xs)) => xs.iter().map(to_text).collect(),
                Some(v) => vec![to_text(v)],
                None => return Err(EvalError::new("split() needs a delimiter")),
            };
            let mut parts = vec![s.to_string()];
            for sep in seps.iter().filter(|s| !s.is_empty()) {
                parts = parts
                    .iter()
                    .flat_map(|p| {
                        p.split(sep.as_str())
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
                    .collect();
            }
            Ok(Value::Array(parts.into_iter().map(Value::String).collect()))
        }
        "join" => match a.first() {
            Some(Value::Array(xs)) => Ok(Value::String(
                xs.iter()
                    .map(to_text)
                    .collect::<Vec<_>>()
                    .join(str_arg(a, 1, name)?),
            )),
            _ => Err(EvalError::new("join() needs an array")),
        },
        "first" | "last" => match a.first() {
            Some(Value::Array(xs)) => Ok(if name == "first" {
                xs.first()
            } else {
                xs.last()
            }
            .cloned()
            .unwrap_or(Value::Null)),
            Some(Value::String(s)) => Ok(Value::String(
                if name == "first" {
                    s.chars().next()
                } else {
                    s.chars().last()
                }
                .map(String::from)
                .unwrap_or_default(),
            )),
            _ => Err(EvalError::new(format!(
                "{name}() needs an array or a string"
            ))),
        },
        "take" | "skip" => {
            let n = usize::try_from(int_arg(a, 1, name)?.max(0)).unwrap_or(0);
            match a.first() {
                Some(Value::Array(xs)) => Ok(Value::Array(if name == "take" {
                    xs.iter().take(n).cloned().collect()
                } else {
                    xs.iter().skip(n).cloned().collect()
                })),
                Some(Value::String(s)) => Ok(Value::String(if name == "take" {
                    s.chars().take(n).collect()
                } else {
                    s.chars().skip(n).collect()
                })),
                _ => Err(EvalError::new(format!(
                    "{name}() needs an array or a string"
                ))),
            }
        }
        "length" => Ok(num(match a.first() {
            Some(Value::Array(x)) => x.len() as i64,
            Some(Value::Object(x)) => x.len() as i64,
            Some(Value::String(x)) => x.chars().count() as i64,
            _ => return Err(EvalError::new("length() needs an array, object or string")),
        })),
        "empty" => Ok(Value::Bool(match a.first() {
            Some(Value::Array(x)) => x.is_empty(),
            Some(Value::Object(x)) => x.is_empty(),
            Some(Value::String(x)) => x.is_empty(),
            Some(Value::Null) | None => true,
            _ => false,
        })),
        "contains" => Ok(Value::Bool(match (a.first(), a.get(1)) {
            (Some(Value::Array(x)), Some(v)) => x.contains(v),
            (Some(Value::Object(x)), Some(v)) => get_ci(x, &to_text(v)).is_some(),
            (Some(Value::String(x)), Some(v)) => {
                x.to_lowercase().contains(&to_text(v).to_lowercase())
            }
            _ => return Err(EvalError::new("contains() needs a container and a value")),
        })),
        "startswith" => Ok(Value::Bool(
            str_arg(a, 0, name)?
                .to_lowercase()
                .starts_with(&str_arg(a, 1, name)?.to_lowercase()),
        )),
        "endswith" => Ok(Value::Bool(
            str_arg(a, 0, name)?
                .to_lowercase()
                .ends_with(&str_arg(a, 1, name)?.to_lowercase()),
        )),
        "indexof" | "lastindexof" => {
            let (s, t) = (
                str_arg(a, 0, name)?.to_lowercase(),
                str_arg(a, 1, name)?.to_lowercase(),
            );
            let i = if name == "indexof" {
                s.find(&t)
            } else {
                s.rfind(&t)
            };
            Ok(num(i.map_or(-1, |i| s[..i].chars().count() as i64)))
        }
        "substring" => {
            let s: Vec<char> = str_arg(a, 0, name)?.chars().collect();
            let start = usize::try_from(int_arg(a, 1, name)?)
                .map_err(|_| EvalError::new("substring() start is negative"))?;
            let len = match a.get(2) {
                Some(v) => usize::try_from(as_int(v, name)?)
                    .map_err(|_| EvalError::new("substring() length is negative"))?,
                None => s.len().saturating_sub(start),
            };
            if start + len > s.len() {
                return Err(EvalError::new(format!(
                    "substring({start}, {len}) is outside a string of {} characters",
                    s.len()
                )));
            }
            Ok(Value::String(s[start..start + len].iter().collect()))
        }
        "padleft" => {
            let s = to_text(a.first().unwrap_or(&Value::Null));
            let width = usize::try_from(int_arg(a, 1, name)?)
                .unwrap_or(0)
                .min(MAX_BUILD);
            let pad = a
                .get(2)
                .map(to_text)
                .and_then(|p| p.chars().next())
                .unwrap_or(' ');
            let n = width.saturating_sub(s.chars().count());
            Ok(Value::String(format!("{}{s}", pad.to_string().repeat(n))))
        }
        "equals" => Ok(Value::Bool(match (a.first(), a.get(1)) {
            (Some(Value::String(x)), Some(Value::String(y))) => x == y,
            (Some(x), Some(y)) => x == y,
            _ => return Err(EvalError::new("equals() takes 2 arguments")),
        })),
        "not" => Ok(Value::Bool(!as_bool(
            a.first().unwrap_or(&Value::Null),
            "not()",
        )?)),
        "greater" => cmp(|o| o.is_gt()),
        "greaterorequals" => cmp(|o| o.is_ge()),
        "less" => cmp(|o| o.is_lt()),
        "lessorequals" => cmp(|o| o.is_le()),
        "add" | "sub" | "mul" | "div" | "mod" => {
            let (x, y) = (int_arg(a, 0, name)?, int_arg(a, 1, name)?);
            let r = match name {
                "add" => x.checked_add(y),
                "sub" => x.checked_sub(y),
                "mul" => x.checked_mul(y),
                "div" => x.checked_div(y),
                _ => x.checked_rem(y),
            };
            r.map(num).ok_or_else(|| {
                EvalError::new(format!("{name}({x}, {y}) overflows or divides by zero"))
            })
        }
        "min" | "max" => {
            let xs: Vec<i64> = match a {
                [Value::Array(xs)] => xs.iter().map(|v| as_int(v, name)).collect::<R<_>>()?,
                _ => a.iter().map(|v| as_int(v, name)).collect::<R<_>>()?,
            };
            let r = if name == "min" {
                xs.iter().min()
            } else {
                xs.iter().max()
            };
            r.copied()
                .map(num)
                .ok_or_else(|| EvalError::new(format!("{name}() of nothing")))
        }
        "range" => {
            let (s, c) = (int_arg(a, 0, name)?, int_arg(a, 1, name)?);
            if !(0..=MAX_BUILD as i64).contains(&c) {
                return Err(EvalError::new(format!(
                    "range() count {c} is outside 0..{MAX_BUILD}"
                )));
            }
            Ok(Value::Array((s..s + c).map(num).collect()))
        }
        "createarray" => Ok(Value::Array(a.to_vec())),
        "array" => Ok(match a.first() {
            Some(Value::Array(x)) => Value::Array(x.clone()),
            Some(v) => Value::Array(vec![v.clone()]),
            None => Value::Array(vec![]),
        }),
        "createobject" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                let [k, v] = pair else {
                    return Err(EvalError::new("createObject() takes key, value pairs"));
                };
                m.insert(to_text(k), v.clone());
            }
            Ok(Value::Object(m))
        }
        "union" => {
            if a.iter().all(|v| v.is_object() || v.is_null()) {
                let mut m = Map::new();
                for v in a.iter().filter_map(Value::as_object) {
                    for (k, x) in v {
                        m.insert(k.clone(), x.clone());
                    }
                }
                Ok(Value::Object(m))
            } else {
                let mut out: Vec<Value> = Vec::new();
                for v in a.iter().filter_map(Value::as_array).flatten() {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Ok(Value::Array(out))
            }
        }
        "intersection" => match a.first() {
            Some(Value::Array(first)) => Ok(Value::Array(
                first
                    .iter()
                    .filter(|v| {
                        a[1..]
                            .iter()
                            .all(|o| o.as_array().is_some_and(|x| x.contains(v)))
                    })
                    .cloned()
                    .collect(),
            )),
            _ => Err(EvalError::new(
                "intersection() of objects is not evaluated by aksnet",
            )),
        },
        "items" => match a.first() {
            Some(Value::Object(m)) => Ok(Value::Array(
                m.iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect(),
            )),
            _ => Err(EvalError::new("items() needs an object")),
        },
        "objectkeys" => match a.first() {
            Some(Value::Object(m)) => {
                Ok(Value::Array(m.keys().cloned().map(Value::String).collect()))
            }
            _ => Err(EvalError::new("objectKeys() needs an object")),
        },
        "tryget" => match (a.first(), a.get(1)) {
            (Some(Value::Object(m)), Some(k)) => {
                Ok(get_ci(m, &to_text(k)).cloned().unwrap_or(Value::Null))
            }
            (Some(Value::Array(x)), Some(k)) => Ok(usize::try_from(as_int(k, name)?)
                .ok()
                .and_then(|i| x.get(i))
                .cloned()
                .unwrap_or(Value::Null)),
            (Some(Value::Null), _) => Ok(Value::Null),
            _ => Err(EvalError::new("tryGet() needs an object and a key")),
        },
        "resourceid" | "subscriptionresourceid" | "tenantresourceid" | "extensionresourceid" => {
            // Skip the optional subscription and resource group arguments:
            // the type is the first argument with a '/' and a '.'.
            let texts: Vec<String> = a.iter().map(to_text).collect();
            let start = if name == "extensionresourceid" { 1 } else { 0 };
            let ti = texts
                .iter()
                .enumerate()
                .skip(start)
                .find(|(_, t)| t.contains('/') && t.contains('.') && !t.starts_with('/'))
                .map(|(i, _)| i)
                .ok_or_else(|| EvalError::new(format!("{name}() has no resource type argument")))?;
            let names: Vec<String> = texts[ti + 1..].to_vec();
            let mut id = resource_id(&texts[ti], &names);
            if ti >= 2 && name == "resourceid" {
                id = id.replacen("{subscriptionId}", &texts[ti - 2], 1).replacen(
                    "{resourceGroup}",
                    &texts[ti - 1],
                    1,
                );
            } else if ti == 1 && name == "resourceid" {
                id = id.replacen("{resourceGroup}", &texts[0], 1);
            }
            Ok(Value::String(id))
        }
        "resourcegroup" => Ok(json!({
            "id": "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}",
            "name": "{resourceGroup}", "location": "{location}", "properties": {}, "tags": {}
        })),
        "subscription" => Ok(json!({
            "id": "/subscriptions/{subscriptionId}", "subscriptionId": "{subscriptionId}",
            "tenantId": "{tenantId}", "displayName": "{subscription}"
        })),
        "tenant" => Ok(json!({"tenantId": "{tenantId}", "id": "/tenants/{tenantId}"})),
        "deployment" => Ok(
            json!({"name": ctx.scope.deployment_name, "properties": {"templateLink": {"uri": ""}}, "location": "{location}"}),
        ),
        "environment" => Ok(
            json!({"name": "AzureCloud", "suffixes": {"storage": "core.windows.net", "acrLoginServer": ".azurecr.io"}, "authentication": {"loginEndpoint": "https://login.microsoftonline.com/"}}),
        ),
        "uniquestring" => Ok(Value::String(placeholder("u", a))),
        "guid" | "newguid" => Ok(Value::String(placeholder("guid-", a))),
        "utcnow" => Ok(Value::String("{utcNow}".into())),
        "base64" => Ok(Value::String(placeholder("b64-", a))),
        "parsecidr" => {
            let n = parse_net_arg(a, 0, name)?;
            let first = cidr::nth_addr(&n, 1).unwrap_or(cidr::first(&n));
            let last_usable = Ipv4Addr::from(u32::from(cidr::last(&n)).saturating_sub(1));
            Ok(json!({
                "network": cidr::first(&n).to_string(), "netmask": n.netmask().to_string(),
                "broadcast": cidr::last(&n).to_string(), "firstUsable": first.to_string(),
                "lastUsable": last_usable.to_string(), "cidr": n.prefix_len()
            }))
        }
        "cidrsubnet" => {
            let n = parse_net_arg(a, 0, name)?;
            let p = int_arg(a, 1, name)?;
            let i = int_arg(a, 2, name)?;
            let p = u8::try_from(p)
                .ok()
                .filter(|p| *p >= n.prefix_len() && *p <= 32)
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "cidrSubnet(): /{p} is not a prefix from /{} to /32",
                        n.prefix_len()
                    ))
                })?;
            let sub = u64::try_from(i)
                .ok()
                .and_then(|i| cidr::nth_subnet(&n, p, i))
                .ok_or_else(|| {
                    EvalError::new(format!("cidrSubnet(): {n} has no /{p} number {i}"))
                })?;
            Ok(Value::String(sub.to_string()))
        }
        "cidrhost" => {
            let n = parse_net_arg(a, 0, name)?;
            let i = int_arg(a, 1, name)?;
            // cidrHost counts from the first usable address (network + 1).
            let addr = u64::try_from(i)
                .ok()
                .and_then(|i| cidr::nth_addr(&n, i + 1))
                .ok_or_else(|| EvalError::new(format!("cidrHost(): {n} has no host number {i}")))?;
            Ok(Value::String(addr.to_string()))
        }
        _ => Err(EvalError::new(format!(
            "the function {name}() is not evaluated by aksnet"
        ))),
    }
}

fn parse_net_arg(a: &[Value], i: usize, f: &str) -> R<cidr::Ipv4Net> {
    let s = str_arg(a, i, f)?;
    cidr::parse_cidr(s).map_err(|e| EvalError::new(format!("{f}(): {e}")))
}

/// `format('{0}-{1}', a, b)`: .NET composite formatting, without format
/// specifiers beyond `{n:...}` (ignored) and with `{{`/`}}` escapes.
fn format_text(f: &str, args: &[Value]) -> R<String> {
    let mut out = String::new();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut spec = String::new();
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                    spec.push(d);
                }
                let idx = spec.split([':', ',']).next().unwrap_or("").trim();
                let i: usize = idx.parse().map_err(|_| {
                    EvalError::new(format!("format(): '{{{spec}}}' is not a placeholder"))
                })?;
                let v = args.get(i).ok_or_else(|| {
                    EvalError::new(format!("format(): placeholder {{{i}}} has no argument"))
                })?;
                out.push_str(&to_text(v));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(t: Value, given: &[(&str, Value)]) -> Rc<Scope> {
        let given = given
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        Rc::new(Scope::new(
            t.as_object().unwrap(),
            &given,
            Rc::default(),
            "d",
        ))
    }

    fn ev(s: &Rc<Scope>, e: &str) -> R<Value> {
        Ctx::new(s).value(&Value::String(e.into()))
    }

    #[test]
    fn parameters_defaults_given_and_missing() {
        let s = scope(
            json!({"parameters": {"agentCount": {"type": "int", "defaultValue": 3},
                                  "name": {"type": "string"},
                                  "dns": {"type": "string", "defaultValue": "[concat(parameters('name'), '-dns')]"}},
                   "variables": {"v": "[add(parameters('agentCount'), 1)]"}}),
            &[],
        );
        assert_eq!(ev(&s, "[parameters('agentCount')]").unwrap(), json!(3));
        assert_eq!(ev(&s, "[variables('v')]").unwrap(), json!(4));
        let e = ev(&s, "[parameters('dns')]").unwrap_err();
        assert_eq!(e.missing_parameters, vec!["name".to_string()]);
        let s = scope(
            json!({"parameters": {"name": {"type": "string"}}}),
            &[("name", json!("x"))],
        );
        assert_eq!(ev(&s, "[toUpper(parameters('NAME'))]").unwrap(), json!("X"));
    }

    #[test]
    fn string_and_range_functions() {
        let s = scope(json!({}), &[]);
        assert_eq!(
            ev(&s, "[format('{0}-{1:N}', 'a', 2)]").unwrap(),
            json!("a-2")
        );
        assert_eq!(
            ev(&s, "[cidrSubnet('10.0.0.0/16', 24, 3)]").unwrap(),
            json!("10.0.3.0/24")
        );
        assert_eq!(
            ev(&s, "[cidrHost('10.0.3.0/24', 3)]").unwrap(),
            json!("10.0.3.4")
        );
        assert_eq!(
            ev(&s, "[last(split('/a/b/subnets/s1', '/'))]").unwrap(),
            json!("s1")
        );
        assert_eq!(ev(&s, "[if(equals(1, 2), 'x', 'y')]").unwrap(), json!("y"));
        assert_eq!(
            ev(&s, "[union(createObject('a', 1), createObject('b', 2)).b]").unwrap(),
            json!(2)
        );
        assert_eq!(
            ev(&s, "[length(concat(createArray(1), createArray(2, 3)))]").unwrap(),
            json!(3)
        );
        assert_eq!(
            ev(&s, "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]").unwrap(),
            json!("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
        );
        assert_eq!(
            ev(
                &s,
                "[map(createArray(1, 2), lambda('x', mul(lambdaVariables('x'), 10)))]"
            )
            .unwrap(),
            json!([10, 20])
        );
        assert_eq!(
            ev(&s, "[uniqueString('a')]").unwrap(),
            ev(&s, "[uniqueString('a')]").unwrap()
        );
        assert!(ev(&s, "[listKeys('x', '2020')]")
            .unwrap_err()
            .message
            .contains("listkeys() is not evaluated"));
    }

    #[test]
    fn cycles_and_depth_are_errors_not_overflows() {
        let s = scope(
            json!({"variables": {"a": "[variables('b')]", "b": "[variables('a')]"}}),
            &[],
        );
        assert!(ev(&s, "[variables('a')]").is_err());
        let s = scope(
            json!({"parameters": {"p": {"defaultValue": "[parameters('p')]"}}}),
            &[],
        );
        assert!(ev(&s, "[parameters('p')]").is_err());
    }

    #[test]
    fn resource_ids_parse() {
        let (t, n) = parse_resource_id("/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/v/subnets/s").unwrap();
        assert_eq!(t, "Microsoft.Network/virtualNetworks/subnets");
        assert_eq!(n, vec!["v".to_string(), "s".to_string()]);
        assert!(parse_resource_id("just-a-name").is_none());
    }
}
