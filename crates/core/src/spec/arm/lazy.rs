//! A template value evaluated only when read: the planner asks for the
//! fields it needs (`properties.networkProfile.podCidr`), so an expression
//! in a field it never reads (tags, identities, add-ons) cannot stop it.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::eval::{get_ci, Ctx, EvalError, Registry, Scope};
use super::expr;

/// Why a field has no value: where it is, the expression, the cause.
#[derive(Debug, Clone)]
pub struct Fail {
    /// `file: path.to.field`.
    pub source: String,
    pub expression: Option<String>,
    pub error: EvalError,
}

impl Fail {
    /// The message for a user: what cannot be evaluated and what supplies
    /// the value instead (`flag`, and `--parameter` for parameters the
    /// expression lacks).
    pub fn message(&self, flag: Option<&str>) -> String {
        let what = match &self.expression {
            Some(e) => format!(
                "'{}' cannot be evaluated: {}",
                excerpt(e),
                self.error.message
            ),
            None => self.error.message.clone(),
        };
        let mut ways: Vec<String> = self
            .error
            .missing_parameters
            .iter()
            .map(|p| format!("--parameter {p}=VALUE"))
            .collect();
        if let Some(f) = flag {
            ways.push(f.to_string());
        }
        match ways.len() {
            0 => what,
            _ => format!("{what}; give the value with {}", ways.join(" or ")),
        }
    }
}

/// At most [`EXCERPT`] characters of an expression, for messages: a
/// generated template may hold a whole resource's properties in one
/// expression (AKS-Construction's is 49,000 characters).
fn excerpt(e: &str) -> String {
    match e.char_indices().nth(EXCERPT) {
        None => e.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &e[..cut], e.chars().count()),
    }
}

const EXCERPT: usize = 160;

#[derive(Clone)]
pub struct Lazy {
    scope: Rc<Scope>,
    copy: Vec<(String, i64)>,
    raw: Value,
    /// Already evaluated (or never an expression: YAML, az output).
    concrete: bool,
    pub label: String,
    pub path: String,
}

impl Lazy {
    pub fn template(
        scope: Rc<Scope>,
        copy: Vec<(String, i64)>,
        raw: Value,
        label: &str,
        path: &str,
    ) -> Lazy {
        Lazy {
            scope,
            copy,
            raw,
            concrete: false,
            label: label.to_string(),
            path: path.to_string(),
        }
    }

    /// A value with no expressions in it (Kubernetes YAML, `az` output).
    pub fn concrete(raw: Value, label: &str, path: &str) -> Lazy {
        let scope = Rc::new(Scope::new(
            &Map::new(),
            &HashMap::new(),
            Rc::new(Registry::default()),
            "",
        ));
        Lazy {
            scope,
            copy: Vec::new(),
            raw,
            concrete: true,
            label: label.to_string(),
            path: path.to_string(),
        }
    }

    /// `file: path`, as findings and errors name a field.
    pub fn source(&self) -> String {
        if self.path.is_empty() {
            self.label.clone()
        } else {
            format!("{}: {}", self.label, self.path)
        }
    }

    fn child(&self, raw: Value, rel: &str, concrete: bool) -> Lazy {
        let path = if self.path.is_empty() {
            rel.trim_start_matches('.').to_string()
        } else {
            format!("{}{rel}", self.path)
        };
        Lazy {
            scope: self.scope.clone(),
            copy: self.copy.clone(),
            raw,
            concrete,
            label: self.label.clone(),
            path,
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        let mut c = Ctx::new(&self.scope);
        c.copy = self.copy.clone();
        c
    }

    fn fail(&self, e: EvalError) -> Fail {
        Fail {
            source: self.source(),
            expression: match &self.raw {
                Value::String(s) if expr::is_expression(s) && !self.concrete => Some(s.clone()),
                _ => None,
            },
            error: e,
        }
    }

    /// This value with its own expression (if it is one) evaluated.
    fn resolved(&self) -> Result<Lazy, Fail> {
        match &self.raw {
            Value::String(s) if !self.concrete && expr::is_expression(s) => {
                let v = self.ctx().value(&self.raw).map_err(|e| self.fail(e))?;
                Ok(Lazy {
                    raw: v,
                    concrete: true,
                    ..self.clone()
                })
            }
            _ => Ok(self.clone()),
        }
    }

    pub fn is_null(&self) -> bool {
        self.raw.is_null()
    }

    /// The field `key` (case-insensitive: ARM names are), `None` when absent.
    pub fn get(&self, key: &str) -> Result<Option<Lazy>, Fail> {
        let r = self.resolved()?;
        let Value::Object(m) = &r.raw else {
            return Ok(None);
        };
        // A property copy loop that builds `key`.
        if !r.concrete {
            if let Some(Value::Array(loops)) = m.get("copy") {
                for l in loops {
                    if l.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(key))
                    {
                        let (_, items) = r.ctx().property_copy(l).map_err(|e| Fail {
                            source: format!("{}.copy[{key}]", r.source()),
                            expression: None,
                            error: e,
                        })?;
                        return Ok(Some(r.child(Value::Array(items), &format!(".{key}"), true)));
                    }
                }
            }
        }
        Ok(get_ci(m, key).map(|v| r.child(v.clone(), &format!(".{key}"), r.concrete)))
    }

    /// `get` along a path of keys.
    pub fn at(&self, keys: &[&str]) -> Result<Option<Lazy>, Fail> {
        let mut cur = self.clone();
        for k in keys {
            match cur.get(k)? {
                Some(n) => cur = n,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The elements of an array (none for null or absent).
    pub fn items(&self) -> Result<Vec<Lazy>, Fail> {
        let r = self.resolved()?;
        match &r.raw {
            Value::Array(a) => Ok(a
                .iter()
                .enumerate()
                .map(|(i, v)| r.child(v.clone(), &format!("[{i}]"), r.concrete))
                .collect()),
            Value::Null => Ok(Vec::new()),
            other => Err(r.fail(EvalError::new(format!(
                "must be a list, found {}",
                super::eval::kind(other)
            )))),
        }
    }

    /// The entries of an object.
    pub fn entries(&self) -> Result<Vec<(String, Lazy)>, Fail> {
        let r = self.resolved()?;
        match &r.raw {
            Value::Object(m) => Ok(m
                .iter()
                .map(|(k, v)| (k.clone(), r.child(v.clone(), &format!(".{k}"), r.concrete)))
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// The whole value, every expression in it evaluated.
    pub fn value(&self) -> Result<Value, Fail> {
        if self.concrete {
            return Ok(self.raw.clone());
        }
        self.ctx().value(&self.raw).map_err(|e| self.fail(e))
    }

    /// Text (numbers and bools as their text), `None` for null.
    pub fn text(&self) -> Result<Option<String>, Fail> {
        match self.value()? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Bool(b) => Ok(Some(b.to_string())),
            other => Err(self.fail(EvalError::new(format!(
                "expected text, found {}",
                super::eval::kind(&other)
            )))),
        }
    }

    /// A whole number from 0 to u32::MAX, `None` for null.
    pub fn count(&self) -> Result<Option<u32>, Fail> {
        match self.value()? {
            Value::Null => Ok(None),
            v => {
                let n = super::eval::as_int(&v, "the field").map_err(|e| self.fail(e))?;
                u32::try_from(n).map(Some).map_err(|_| {
                    self.fail(EvalError::new(format!(
                        "{n} is not a whole number from 0 to 4294967295"
                    )))
                })
            }
        }
    }

    pub fn flag(&self) -> Result<Option<bool>, Fail> {
        match self.value()? {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            other => Err(self.fail(EvalError::new(format!(
                "expected true or false, found {}",
                super::eval::kind(&other)
            )))),
        }
    }
}
