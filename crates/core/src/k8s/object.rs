//! One object of any kind aksnet stores, and its identity.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::endpointslice::EndpointSlice;
use super::kind::Kind;
use super::meta::ObjectMeta;
use super::namespace::Namespace;
use super::netpol::NetworkPolicy;
use super::pod::{Deployment, Pod};
use super::service::Service;

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Deployment(Deployment),
    Service(Service),
    EndpointSlice(EndpointSlice),
    NetworkPolicy(NetworkPolicy),
}

/// Kind, namespace and name: what names an object in the store and in
/// messages (`Service default/web`, `Namespace shop`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds (Namespace).
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        ObjectId {
            kind,
            namespace: if kind.namespaced() {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.namespaced() {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        } else {
            write!(f, "{} {}", self.kind, self.name)
        }
    }
}

/// A value that does not decode as its kind: the field path and what is
/// wrong (`spec.ports[0].port: invalid type: string "x", expected i64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.field == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(v).map_err(|e| DecodeError {
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::Namespace($o) => $e,
            Object::Pod($o) => $e,
            Object::Deployment($o) => $e,
            Object::Service($o) => $e,
            Object::EndpointSlice($o) => $e,
            Object::NetworkPolicy($o) => $e,
        }
    };
}

impl Object {
    /// Decodes a JSON value as `kind`.
    pub fn from_value(kind: Kind, v: Value) -> Result<Object, DecodeError> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(typed(v)?),
            Kind::Pod => Object::Pod(typed(v)?),
            Kind::Deployment => Object::Deployment(typed(v)?),
            Kind::Service => Object::Service(typed(v)?),
            Kind::EndpointSlice => Object::EndpointSlice(typed(v)?),
            Kind::NetworkPolicy => Object::NetworkPolicy(typed(v)?),
        })
    }

    /// Decodes a stored value (JSON bytes) as `kind`.
    pub fn from_slice(kind: Kind, bytes: &[u8]) -> Result<Object, DecodeError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError {
            field: String::new(),
            message: format!("not JSON: {e}"),
        })?;
        Self::from_value(kind, v)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => &mut o.metadata)
    }

    pub fn name(&self) -> &str {
        &self.meta().name
    }

    /// The namespace ("" for a Namespace).
    pub fn namespace(&self) -> &str {
        if self.kind().namespaced() {
            self.meta().namespace.as_deref().unwrap_or_default()
        } else {
            ""
        }
    }

    pub fn id(&self) -> ObjectId {
        ObjectId::new(self.kind(), self.namespace(), self.name())
    }

    pub fn to_value(&self) -> Value {
        // Every field is a string, number, bool, map or list: this cannot fail.
        each!(self, o => serde_json::to_value(o).unwrap_or(Value::Null))
    }

    /// `apiVersion` and `kind` as aksnet serves them.
    pub fn set_type_meta(&mut self) {
        let (v, k) = (
            self.kind().api_version().to_string(),
            self.kind().name().to_string(),
        );
        each!(self, o => { o.api_version = v; o.kind = k; })
    }

    pub fn as_service(&self) -> Option<&Service> {
        match self {
            Object::Service(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_pod(&self) -> Option<&Pod> {
        match self {
            Object::Pod(p) => Some(p),
            _ => None,
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        each!(self, o => o.serialize(s))
    }
}
