//! `Namespace` (v1). The API server labels every namespace with
//! `kubernetes.io/metadata.name: <name>` (immutable, since 1.21), so policy
//! can select a namespace by name; a few exist from the start.

use serde::{Deserialize, Serialize};

use super::meta::{Extra, ObjectMeta};

pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespaces the API server creates itself. They exist in every
/// initialised aksnet cluster without being stored, and cannot be deleted.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Extra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Extra>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Namespace {
    /// A namespace as the API server holds it after creation.
    pub fn new(name: &str) -> Self {
        let mut ns = Namespace {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            metadata: ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        ns.set_defaults();
        ns
    }

    /// The name label (overwriting any other value, as the API server
    /// does) and `status.phase: Active`.
    pub fn set_defaults(&mut self) {
        self.metadata
            .labels
            .insert(NAME_LABEL.into(), self.metadata.name.clone());
        let status = self.status.get_or_insert_with(Extra::new);
        status
            .entry("phase")
            .or_insert_with(|| serde_json::Value::String("Active".into()));
    }
}

pub fn is_system(name: &str) -> bool {
    SYSTEM_NAMESPACES.contains(&name)
}
