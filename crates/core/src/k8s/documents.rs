//! Manifests as users write them: multi-document YAML, JSON (one value or
//! several), `kind: List` (and typed lists such as `ServiceList`), read
//! into objects aksnet stores or kinds it ignores.

use serde::Deserialize;
use serde_json::Value;

use super::errors::{ErrorType, FieldError, ObjectError};
use super::kind::{classify, ignore_reason, TypeMatch};
use super::object::Object;

/// One document (or list item) of an input, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `web.yaml, document 2` or `web.yaml, document 1, item 3`.
    pub source: String,
    pub value: Value,
}

/// Input that cannot be used at all: not YAML or JSON, or a document that
/// is not an object with `apiVersion` and `kind`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct InputError {
    /// `web.yaml, document 2`.
    pub location: String,
    pub message: String,
}

/// Splits a file's text into documents. Empty documents (`---` alone,
/// comments only) are skipped, as kubectl does.
pub fn parse(name: &str, text: &str) -> Result<Vec<Document>, InputError> {
    let trimmed = text.trim_start();
    let mut values = vec![];
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        for (i, v) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            let v = v.map_err(|e| InputError {
                location: format!("{name}, document {}", i + 1),
                message: format!("not valid JSON: {e}"),
            })?;
            values.push(v);
        }
    } else {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let v = Value::deserialize(doc).map_err(|e| InputError {
                location: format!("{name}, document {}", i + 1),
                message: format!("not valid YAML: {e}"),
            })?;
            values.push(v);
        }
    }
    let mut out = vec![];
    for (i, v) in values.into_iter().enumerate() {
        if v.is_null() {
            continue;
        }
        flatten(format!("{name}, document {}", i + 1), v, &mut out)?;
    }
    Ok(out)
}

fn is_list(v: &Value) -> bool {
    v.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && v.get("items").is_some_and(Value::is_array)
}

fn flatten(source: String, v: Value, out: &mut Vec<Document>) -> Result<(), InputError> {
    if !v.is_object() {
        return Err(InputError {
            location: source,
            message: format!(
                "expected an object with apiVersion and kind, found {}",
                match v {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "something else",
                }
            ),
        });
    }
    if is_list(&v) {
        if let Value::Object(mut m) = v {
            if let Some(Value::Array(items)) = m.remove("items") {
                for (j, item) in items.into_iter().enumerate() {
                    flatten(format!("{source}, item {}", j + 1), item, out)?;
                }
            }
        }
        return Ok(());
    }
    out.push(Document { source, value: v });
    Ok(())
}

/// An object of a kind aksnet does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub reason: &'static str,
    pub source: String,
}

impl IgnoredObject {
    /// `configmap/x`, `ingress.networking.k8s.io/x`, as kubectl prints it.
    pub fn display(&self) -> String {
        let group = self
            .api_version
            .split_once('/')
            .map(|(g, _)| format!(".{g}"))
            .unwrap_or_default();
        format!("{}{group}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
}

/// What a document is.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Object { object: Box<Object>, source: String },
    Ignored(IgnoredObject),
}

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Reads one document: an object of a kind aksnet stores (decoded, not yet
/// validated), an ignored kind, or an error. A document without
/// `apiVersion`/`kind` is unusable input ([`InputError`]); a retired
/// version or a field of the wrong type is a rejected object
/// ([`ObjectError`]).
pub fn read(doc: Document) -> Result<Parsed, ReadError> {
    let v = &doc.value;
    let api_version = str_field(v, &["apiVersion"])
        .unwrap_or_default()
        .to_string();
    let kind = str_field(v, &["kind"]).unwrap_or_default().to_string();
    let missing: Vec<&str> = [("apiVersion", &api_version), ("kind", &kind)]
        .iter()
        .filter(|(_, s)| s.is_empty())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(ReadError::Input(InputError {
            location: doc.source,
            message: format!(
                "{} not set: every document needs apiVersion and kind (e.g. apiVersion: v1, kind: Service)",
                missing.join(" and ")
            ),
        }));
    }
    let name = str_field(v, &["metadata", "name"])
        .unwrap_or_default()
        .to_string();
    let namespace = str_field(v, &["metadata", "namespace"]).map(str::to_string);
    let shown = |k: &str| match &namespace {
        Some(ns) => format!("{k} {ns}/{name}"),
        None => format!("{k} {name}"),
    };
    match classify(&api_version, &kind) {
        TypeMatch::Ignored => Ok(Parsed::Ignored(IgnoredObject {
            reason: ignore_reason(&kind),
            api_version,
            kind,
            namespace,
            name,
            source: doc.source,
        })),
        TypeMatch::Retired { kind: k, hint, .. } => Err(ReadError::Object(ObjectError {
            object: shown(k.name()),
            source: Some(doc.source),
            errors: vec![FieldError {
                field: "apiVersion".into(),
                kind: ErrorType::Unsupported,
                value: Some(format!("{api_version:?}")),
                detail: hint,
            }],
        })),
        TypeMatch::Served(k) => match Object::from_value(k, doc.value) {
            Ok(object) => Ok(Parsed::Object {
                object: Box::new(object),
                source: doc.source,
            }),
            Err(e) => Err(ReadError::Object(ObjectError {
                object: shown(k.name()),
                source: Some(doc.source),
                errors: vec![FieldError {
                    field: e.field,
                    kind: ErrorType::Invalid,
                    value: None,
                    detail: e.message,
                }],
            })),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    Input(InputError),
    Object(ObjectError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_streams_json_and_lists() {
        let docs = parse(
            "a.yaml",
            "---\n# nothing\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p}}\n\
             - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].source, "a.yaml, document 2");
        assert_eq!(docs[2].source, "a.yaml, document 3, item 2");
        let docs = parse(
            "b.json",
            r#"{"apiVersion":"v1","kind":"ServiceList","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}]} {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}"#,
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert!(parse("c.yaml", "a: [").is_err());
        assert!(parse("d.yaml", "- 1\n- 2\n").is_err());
    }

    #[test]
    fn classification() {
        let doc = |s: &str| parse("x.yaml", s).unwrap().remove(0);
        match read(doc(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
        ))
        .unwrap()
        {
            Parsed::Ignored(i) => {
                assert_eq!(i.display(), "configmap/cfg");
                assert_eq!(i.reason, "no networking");
            }
            other => panic!("{other:?}"),
        }
        match read(doc(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n",
        ))
        .unwrap()
        {
            Parsed::Ignored(i) => assert_eq!(i.display(), "ingress.networking.k8s.io/i"),
            other => panic!("{other:?}"),
        }
        match read(doc(
            "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: d}\n",
        )) {
            Err(ReadError::Object(e)) => {
                let s = e.to_string();
                assert!(
                    s.contains("Deployment d") && s.contains("use apiVersion: apps/v1"),
                    "{s}"
                );
            }
            other => panic!("{other:?}"),
        }
        match read(doc("metadata: {name: d}\n")) {
            Err(ReadError::Input(e)) => assert!(e.message.contains("apiVersion and kind not set")),
            other => panic!("{other:?}"),
        }
        match read(doc(
            "apiVersion: v1\nkind: Service\nmetadata: {name: w, namespace: n}\nspec:\n  ports:\n  - port: eighty\n",
        )) {
            Err(ReadError::Object(e)) => {
                assert_eq!(e.object, "Service n/w");
                assert_eq!(e.errors[0].field, "spec.ports[0].port", "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}
