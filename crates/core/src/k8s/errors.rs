//! Errors as the API server reports them: a field path
//! (`spec.ports[0].nodePort`), what kind of problem, the bad value and why,
//! gathered per object (`Service default/web`).

use std::fmt;

use serde::Serialize;

/// The kinds of field error apimachinery has (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorType {
    Required,
    Invalid,
    Unsupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
}

impl ErrorType {
    fn text(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Unsupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
        }
    }
}

/// One bad field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `spec.ports[0].nodePort`.
    pub field: String,
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// The value as the API server quotes it (strings in quotes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind.text())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A value quoted the way the API server prints it (`%#v`).
pub trait Quote {
    fn quote(&self) -> String;
}
impl Quote for str {
    fn quote(&self) -> String {
        format!("{self:?}")
    }
}
impl Quote for String {
    fn quote(&self) -> String {
        format!("{self:?}")
    }
}
impl Quote for i64 {
    fn quote(&self) -> String {
        self.to_string()
    }
}
impl Quote for u16 {
    fn quote(&self) -> String {
        self.to_string()
    }
}

/// Collects field errors while walking an object.
#[derive(Debug, Default, Clone)]
pub struct Errs(pub Vec<FieldError>);

impl Errs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, field: &str, kind: ErrorType, value: Option<String>, detail: &str) {
        self.0.push(FieldError {
            field: field.to_string(),
            kind,
            value,
            detail: detail.to_string(),
        });
    }
    pub fn required(&mut self, field: &str, detail: &str) {
        self.push(field, ErrorType::Required, None, detail);
    }
    pub fn invalid(&mut self, field: &str, value: &(impl Quote + ?Sized), detail: &str) {
        self.push(field, ErrorType::Invalid, Some(value.quote()), detail);
    }
    pub fn unsupported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            field,
            ErrorType::Unsupported,
            Some(value.quote()),
            &format!("supported values: {}", list.join(", ")),
        );
    }
    pub fn duplicate(&mut self, field: &str, value: &(impl Quote + ?Sized)) {
        self.push(field, ErrorType::Duplicate, Some(value.quote()), "");
    }
    pub fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(field, ErrorType::Forbidden, None, detail);
    }
    pub fn too_many(&mut self, field: &str, got: usize, max: usize) {
        self.push(
            field,
            ErrorType::TooMany,
            Some(got.to_string()),
            &format!("must have at most {max} items"),
        );
    }
    /// Every message of a syntax check (e.g. [`super::names::dns1123_label`]).
    pub fn syntax(&mut self, field: &str, value: &str, problems: Vec<String>) {
        for p in problems {
            self.invalid(field, value, &p);
        }
    }
}

/// What is wrong with one object, named as `Service default/web`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectError {
    /// `Kind namespace/name` (or `Kind name` for cluster-scoped kinds).
    pub object: String,
    /// Where the object came from (`web.yaml`, document 2), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = self
            .source
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        match self.errors.as_slice() {
            [one] => write!(f, "{}{src}: {one}", self.object),
            many => {
                write!(f, "{}{src} is invalid:", self.object)?;
                for e in many {
                    write!(f, "\n  * {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ObjectError {}

/// `a.b` from a path and a child field.
pub fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// `a[i]`.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `a[key]`, as apimachinery writes map keys.
pub fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_api_server() {
        let mut e = Errs::default();
        e.invalid(
            "spec.ports[0].nodePort",
            &40000i64,
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        );
        assert_eq!(
            e.0[0].to_string(),
            "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        e.unsupported("spec.type", "Nodeport", &["ClusterIP", "NodePort"]);
        assert_eq!(
            e.0[1].to_string(),
            "spec.type: Unsupported value: \"Nodeport\": supported values: \"ClusterIP\", \"NodePort\""
        );
        let oe = ObjectError {
            object: "Service default/web".into(),
            source: None,
            errors: e.0[..1].to_vec(),
        };
        assert!(oe
            .to_string()
            .starts_with("Service default/web: spec.ports[0].nodePort"));
        assert_eq!(index(&child("spec", "ports"), 2), "spec.ports[2]");
    }
}
