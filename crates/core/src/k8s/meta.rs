//! `metadata`, label selectors and `IntOrString`: the pieces every kind
//! shares, with their validation.
//!
//! Every struct keeps the fields aksnet does not model in `extra`
//! (`#[serde(flatten)]`), so `aksnet get -o yaml` shows an object as the user
//! applied it (volumes, images, env, resources…), plus the fields the server
//! sets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::errors::{child, key, Errs};
use super::names;

/// Fields aksnet does not model, kept as they came.
pub type Extra = serde_json::Map<String, serde_json::Value>;
pub type Labels = BTreeMap<String, String>;

/// `metadata` of every object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set on read from the key's `mod_revision`; never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Annotations may hold at most this much in all (apimachinery's
/// `TotalAnnotationSizeLimitB`).
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Labels: keys are qualified names, values label values.
pub fn validate_labels(labels: &Labels, path: &str, errs: &mut Errs) {
    for (k, v) in labels {
        errs.syntax(path, k, names::qualified_name(k));
        errs.syntax(&key(path, k), v, names::label_value(v));
    }
}

pub fn validate_annotations(ann: &Labels, path: &str, errs: &mut Errs) {
    let mut total = 0;
    for (k, v) in ann {
        errs.syntax(path, k, names::qualified_name(&k.to_lowercase()));
        total += k.len() + v.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(
            path,
            super::errors::ErrorType::TooLong,
            None,
            &format!("must have at most {ANNOTATIONS_MAX_BYTES} bytes"),
        );
    }
}

/// Labels and annotations of an object's or a template's metadata.
pub fn validate_meta_maps(meta: &ObjectMeta, path: &str, errs: &mut Errs) {
    validate_labels(&meta.labels, &child(path, "labels"), errs);
    validate_annotations(&meta.annotations, &child(path, "annotations"), errs);
}

/// A set-based label selector (`matchLabels` AND `matchExpressions`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

pub const SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

impl LabelSelector {
    /// Selects everything (`{}`).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy every term. An empty selector selects
    /// everything (apimachinery's `LabelSelectorAsSelector`: `{}` is
    /// `labels.Everything()`); an unknown operator selects nothing.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl LabelSelectorRequirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        let got = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => got.is_some_and(|v| self.values.contains(v)),
            "NotIn" => got.is_none_or(|v| !self.values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    }
}

/// apimachinery's `ValidateLabelSelector`: keys are qualified names,
/// `In`/`NotIn` need values, `Exists`/`DoesNotExist` must have none.
pub fn validate_selector(sel: &LabelSelector, path: &str, errs: &mut Errs) {
    validate_labels(&sel.match_labels, &child(path, "matchLabels"), errs);
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let p = format!("{}[{i}]", child(path, "matchExpressions"));
        errs.syntax(&child(&p, "key"), &r.key, names::qualified_name(&r.key));
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if r.values.is_empty() {
                    errs.required(
                        &child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !r.values.is_empty() {
                    errs.forbidden(
                        &child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            other => errs.unsupported(&child(&p, "operator"), other, &SELECTOR_OPERATORS),
        }
        for (j, v) in r.values.iter().enumerate() {
            errs.syntax(
                &format!("{}[{j}]", child(&p, "values")),
                v,
                names::label_value(v),
            );
        }
    }
}

/// Splits at commas outside parentheses (`a in (x,y),b`).
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = vec![];
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl LabelSelector {
    /// Parses kubectl's `-l` syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a,b)`, `k` (exists), `!k` (does not exist), joined by
    /// commas (AND). The result is validated as a selector.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut sel = LabelSelector::default();
        let bad = |t: &str| {
            format!("{t:?} is not a selector term (k=v, k!=v, k in (a,b), k notin (a,b), k or !k)")
        };
        for term in split_terms(s).into_iter().map(str::trim) {
            if term.is_empty() {
                return Err(format!("empty term in selector {s:?}"));
            }
            let values = |rest: &str| -> Result<Vec<String>, String> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad(term))?;
                Ok(inner
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect())
            };
            let req = |key: &str, op: &str, values: Vec<String>| LabelSelectorRequirement {
                key: key.trim().to_string(),
                operator: op.to_string(),
                values,
            };
            if let Some(k) = term.strip_prefix('!') {
                sel.match_expressions.push(req(k, "DoesNotExist", vec![]));
            } else if let Some((k, v)) = term.split_once("!=") {
                sel.match_expressions
                    .push(req(k, "NotIn", vec![v.trim().to_string()]));
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                sel.match_labels
                    .insert(k.trim().to_string(), v.trim().to_string());
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                sel.match_expressions.push(req(k, "NotIn", values(rest)?));
            } else if let Some((k, rest)) = term.split_once(" in ") {
                sel.match_expressions.push(req(k, "In", values(rest)?));
            } else if !term.contains(char::is_whitespace) {
                sel.match_expressions.push(req(term, "Exists", vec![]));
            } else {
                return Err(bad(term));
            }
        }
        let mut errs = Errs::default();
        validate_selector(&sel, "selector", &mut errs);
        match errs.0.first() {
            Some(e) => Err(format!("selector {s:?}: {e}")),
            None => Ok(sel),
        }
    }
}

/// A map selector (a Service's `spec.selector`) as a string, `a=b,c=d`.
pub fn selector_string(sel: &Labels) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            parts.push(match r.operator.as_str() {
                "In" => format!("{} in ({})", r.key, r.values.join(",")),
                "NotIn" => format!("{} notin ({})", r.key, r.values.join(",")),
                "Exists" => r.key.clone(),
                "DoesNotExist" => format!("!{}", r.key),
                o => format!("{} {o} ({})", r.key, r.values.join(",")),
            });
        }
        if parts.is_empty() {
            write!(f, "<none>")
        } else {
            write!(f, "{}", parts.join(","))
        }
    }
}

/// A port given as a number or a name (`targetPort: 8080` or `targetPort: http`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for IntOrString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::Str(s) => write!(f, "{s}"),
        }
    }
}

/// Checks a port given as a number (1–65535) or a name (IANA service name).
pub fn validate_int_or_port_name(p: &IntOrString, path: &str, errs: &mut Errs) {
    match p {
        IntOrString::Int(n) => {
            if let Some(m) = names::port_number(*n) {
                errs.invalid(path, n, &m);
            }
        }
        IntOrString::Str(s) => errs.syntax(path, s, names::port_name(s)),
    }
}

pub const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

/// `protocol`, which defaults to TCP.
pub fn validate_protocol(p: Option<&str>, path: &str, errs: &mut Errs) {
    if let Some(p) = p {
        if !PROTOCOLS.contains(&p) {
            errs.unsupported(path, p, &PROTOCOLS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(k: &str, op: &str, vals: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: vals.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn selector_semantics_follow_apimachinery() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        let everything = LabelSelector::default();
        assert!(everything.matches(&pod) && everything.matches(&Labels::new()));
        let mut s = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            ..Default::default()
        };
        assert!(s.matches(&pod));
        s.match_expressions
            .push(req("tier", "In", &["front", "back"]));
        assert!(s.matches(&pod));
        s.match_expressions.push(req("env", "NotIn", &["prod"]));
        assert!(s.matches(&pod), "NotIn matches a missing key");
        s.match_expressions.push(req("env", "DoesNotExist", &[]));
        assert!(s.matches(&pod));
        s.match_expressions.push(req("tier", "Exists", &[]));
        assert!(s.matches(&pod));
        s.match_expressions.push(req("tier", "NotIn", &["front"]));
        assert!(!s.matches(&pod));
        assert!(!LabelSelector {
            match_expressions: vec![req("app", "Like", &["web"])],
            ..Default::default()
        }
        .matches(&pod));
    }

    #[test]
    fn selector_validation() {
        let mut e = Errs::default();
        let s = LabelSelector {
            match_labels: labels(&[("app", "bad value")]),
            match_expressions: vec![
                req("tier", "In", &[]),
                req("x", "Exists", &["y"]),
                req("y", "Equals", &["z"]),
                req("-bad", "Exists", &[]),
            ],
        };
        validate_selector(&s, "spec.selector", &mut e);
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels[app]",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
                "spec.selector.matchExpressions[3].key",
            ],
            "{:#?}",
            e.0
        );
        assert_eq!(
            s.match_expressions[2].operator, "Equals",
            "the unsupported operator is quoted back"
        );
    }

    #[test]
    fn kubectl_selector_syntax() {
        let s =
            LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,team").unwrap();
        assert_eq!(s.match_labels, labels(&[("app", "web")]));
        let ops: Vec<&str> = s
            .match_expressions
            .iter()
            .map(|r| r.operator.as_str())
            .collect();
        assert_eq!(ops, ["NotIn", "In", "DoesNotExist", "Exists"]);
        assert_eq!(s.match_expressions[1].values, ["prod", "staging"]);
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "x")])));
        assert!(LabelSelector::parse("app==web")
            .unwrap()
            .matches(&labels(&[("app", "web")])));
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("app=web,").is_err());
        assert!(LabelSelector::parse("env in prod").is_err());
        assert!(LabelSelector::parse("app=bad value!").is_err());
    }

    #[test]
    fn int_or_string_round_trips() {
        let v: Vec<IntOrString> = serde_json::from_str(r#"[8080, "http"]"#).unwrap();
        assert_eq!(v, [IntOrString::Int(8080), IntOrString::Str("http".into())]);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[8080,"http"]"#);
    }
}
