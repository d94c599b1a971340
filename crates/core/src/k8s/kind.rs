//! The kinds aksnet reads, how kubectl spells them (singular, plural,
//! short, `Kind`, `plural.group`), their API versions (current and
//! retired), and the kinds it ignores because they carry no networking.

use std::fmt;

/// A kind aksnet stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Pod,
    Deployment,
    Service,
    EndpointSlice,
    NetworkPolicy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Deployment,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::NetworkPolicy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// The API group ("" for core).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service => "",
            Kind::Deployment => "apps",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::NetworkPolicy => "networking.k8s.io",
        }
    }

    /// The `apiVersion` aksnet serves.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service => "v1",
            Kind::Deployment => "apps/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
        }
    }

    /// The resource name (the plural, lower case): the key segment in the
    /// store and what kubectl prints.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::NetworkPolicy => "networkpolicies",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Pod => "pod",
            Kind::Deployment => "deployment",
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice",
            Kind::NetworkPolicy => "networkpolicy",
        }
    }

    pub fn short(self) -> Option<&'static str> {
        match self {
            Kind::Namespace => Some("ns"),
            Kind::Pod => Some("po"),
            Kind::Deployment => Some("deploy"),
            Kind::Service => Some("svc"),
            Kind::EndpointSlice => None,
            Kind::NetworkPolicy => Some("netpol"),
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    /// `service`, `deployment.apps`: how kubectl names an object's kind in
    /// its output lines (`deployment.apps/web created`).
    pub fn qualified_singular(self) -> String {
        match self.group() {
            "" => self.singular().to_string(),
            g => format!("{}.{g}", self.singular()),
        }
    }

    /// `services`, `deployments.apps`: as kubectl names a resource in errors.
    pub fn qualified_plural(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    fn by_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == kind)
    }

    /// The groups a kind was served from, current and historical
    /// (Deployments and NetworkPolicies began in `extensions`).
    fn groups(self) -> &'static [&'static str] {
        match self {
            Kind::Deployment => &["apps", "extensions"],
            Kind::NetworkPolicy => &["networking.k8s.io", "extensions"],
            Kind::EndpointSlice => &["discovery.k8s.io"],
            _ => &[""],
        }
    }

    /// Resolves a kind as `kubectl get` accepts it: singular, plural, short
    /// name, `Kind` in any case, optionally with `.group`
    /// (`deployments.apps`, `netpol.networking.k8s.io`).
    pub fn from_cli(s: &str) -> Result<Kind, UnknownKind> {
        let lower = s.to_ascii_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        let found = Kind::ALL.into_iter().find(|k| {
            (base == k.singular() || base == k.plural() || Some(base.as_str()) == k.short())
                && group.as_deref().is_none_or(|g| g == k.group())
        });
        if let Some(k) = found {
            return Ok(k);
        }
        if let Some(ig) = ignored_by_cli_name(&base) {
            return Err(UnknownKind::Ignored {
                given: s.to_string(),
                kind: ig.kind,
                reason: ig.reason,
            });
        }
        Err(UnknownKind::Unknown(s.to_string()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind name `get`/`delete` cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownKind {
    /// A real Kubernetes kind aksnet ignores.
    Ignored {
        given: String,
        kind: &'static str,
        reason: &'static str,
    },
    Unknown(String),
}

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = Kind::ALL
            .iter()
            .map(|k| match k.short() {
                Some(s) => format!("{} ({s})", k.plural()),
                None => k.plural().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            UnknownKind::Ignored { given, kind, reason } => write!(
                f,
                "aksnet does not store {kind} objects ({reason}), so there is nothing to show for {given:?}; it stores {kinds}"
            ),
            UnknownKind::Unknown(given) => write!(
                f,
                "the server doesn't have a resource type {given:?}; aksnet stores {kinds}"
            ),
        }
    }
}

impl std::error::Error for UnknownKind {}

/// A kind aksnet ignores, and why.
#[derive(Debug, Clone, Copy)]
pub struct Ignored {
    pub kind: &'static str,
    pub reason: &'static str,
}

pub const NO_NETWORKING: &str = "no networking";

/// Kinds users apply next to their Services, with kubectl's plural and
/// short names so `get`/`delete` can say why there is nothing to show.
const IGNORED: &[(&str, &str, &str, &str)] = &[
    ("ConfigMap", "configmaps", "cm", NO_NETWORKING),
    ("Secret", "secrets", "", NO_NETWORKING),
    ("ServiceAccount", "serviceaccounts", "sa", NO_NETWORKING),
    (
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "hpa",
        NO_NETWORKING,
    ),
    (
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "pdb",
        NO_NETWORKING,
    ),
    (
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "pvc",
        NO_NETWORKING,
    ),
    ("PersistentVolume", "persistentvolumes", "pv", NO_NETWORKING),
    ("StorageClass", "storageclasses", "sc", NO_NETWORKING),
    ("Role", "roles", "", NO_NETWORKING),
    ("RoleBinding", "rolebindings", "", NO_NETWORKING),
    ("ClusterRole", "clusterroles", "", NO_NETWORKING),
    (
        "ClusterRoleBinding",
        "clusterrolebindings",
        "",
        NO_NETWORKING,
    ),
    (
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "crd",
        NO_NETWORKING,
    ),
    ("LimitRange", "limitranges", "limits", NO_NETWORKING),
    ("ResourceQuota", "resourcequotas", "quota", NO_NETWORKING),
    ("PriorityClass", "priorityclasses", "pc", NO_NETWORKING),
    ("Event", "events", "ev", NO_NETWORKING),
    (
        "Ingress",
        "ingresses",
        "ing",
        "aksnet has no ingress controller",
    ),
    (
        "IngressClass",
        "ingressclasses",
        "",
        "aksnet has no ingress controller",
    ),
    (
        "Endpoints",
        "endpoints",
        "ep",
        "aksnet reads EndpointSlices (discovery.k8s.io/v1)",
    ),
    (
        "ReplicaSet",
        "replicasets",
        "rs",
        "aksnet runs Pods and Deployments only",
    ),
    (
        "StatefulSet",
        "statefulsets",
        "sts",
        "aksnet runs Pods and Deployments only",
    ),
    (
        "DaemonSet",
        "daemonsets",
        "ds",
        "aksnet runs Pods and Deployments only",
    ),
    ("Job", "jobs", "", "aksnet runs Pods and Deployments only"),
    (
        "CronJob",
        "cronjobs",
        "cj",
        "aksnet runs Pods and Deployments only",
    ),
    (
        "Node",
        "nodes",
        "no",
        "aksnet keeps its own node records: see `aksnet node list`",
    ),
];

fn ignored_by_cli_name(base: &str) -> Option<Ignored> {
    IGNORED
        .iter()
        .find(|(kind, plural, short, _)| {
            base == kind.to_ascii_lowercase()
                || base == *plural
                || (!short.is_empty() && base == *short)
        })
        .map(|(kind, _, _, reason)| Ignored { kind, reason })
}

/// Why an applied object of this kind is ignored.
pub fn ignore_reason(kind: &str) -> &'static str {
    IGNORED
        .iter()
        .find(|(k, ..)| *k == kind)
        .map(|(.., r)| *r)
        .unwrap_or(NO_NETWORKING)
}

/// What an `apiVersion`/`kind` pair is to aksnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeMatch {
    /// A kind aksnet reads, in the version it serves.
    Served(Kind),
    /// A kind aksnet reads, in a version that is retired or was never served.
    Retired {
        kind: Kind,
        given: String,
        hint: String,
    },
    /// Any other kind.
    Ignored,
}

/// Classifies an object's `apiVersion` and `kind`. A kind of another
/// group with the same name (Knative's `serving.knative.dev/v1 Service`) is
/// not ours and is ignored.
pub fn classify(api_version: &str, kind: &str) -> TypeMatch {
    let Some(k) = Kind::by_name(kind) else {
        return TypeMatch::Ignored;
    };
    let (group, _version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    if !k.groups().contains(&group) {
        return TypeMatch::Ignored;
    }
    if api_version == k.api_version() {
        return TypeMatch::Served(k);
    }
    let removed = match (k, api_version) {
        (Kind::Deployment, "apps/v1beta1" | "apps/v1beta2" | "extensions/v1beta1") => {
            Some("was removed in Kubernetes 1.16")
        }
        (Kind::NetworkPolicy, "extensions/v1beta1") => Some("was removed in Kubernetes 1.16"),
        (Kind::NetworkPolicy, "networking.k8s.io/v1beta1") => {
            Some("never served NetworkPolicy (only Ingress, removed in Kubernetes 1.22)")
        }
        (Kind::EndpointSlice, "discovery.k8s.io/v1beta1") => Some("was removed in Kubernetes 1.25"),
        (Kind::EndpointSlice, "discovery.k8s.io/v1alpha1") => {
            Some("was removed in Kubernetes 1.21")
        }
        _ => None,
    };
    let hint = match removed {
        Some(why) => format!(
            "apiVersion {api_version} {why}; use apiVersion: {}",
            k.api_version()
        ),
        None => format!(
            "no {} in version {api_version:?}; use apiVersion: {}",
            k.name(),
            k.api_version()
        ),
    };
    TypeMatch::Retired {
        kind: k,
        given: api_version.to_string(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_spellings() {
        for (s, k) in [
            ("po", Kind::Pod),
            ("pods", Kind::Pod),
            ("Pod", Kind::Pod),
            ("svc", Kind::Service),
            ("SERVICES", Kind::Service),
            ("deploy", Kind::Deployment),
            ("deployments.apps", Kind::Deployment),
            ("ns", Kind::Namespace),
            ("netpol", Kind::NetworkPolicy),
            ("networkpolicies.networking.k8s.io", Kind::NetworkPolicy),
            ("endpointslice", Kind::EndpointSlice),
            ("EndpointSlices", Kind::EndpointSlice),
        ] {
            assert_eq!(Kind::from_cli(s), Ok(k), "{s}");
        }
        assert!(matches!(
            Kind::from_cli("deployments.extensions"),
            Err(UnknownKind::Unknown(_))
        ));
        assert!(matches!(
            Kind::from_cli("cm"),
            Err(UnknownKind::Ignored {
                kind: "ConfigMap",
                ..
            })
        ));
        let e = Kind::from_cli("frobs").unwrap_err().to_string();
        assert!(
            e.contains("\"frobs\"") && e.contains("services (svc)"),
            "{e}"
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            classify("apps/v1", "Deployment"),
            TypeMatch::Served(Kind::Deployment)
        );
        assert_eq!(classify("v1", "Service"), TypeMatch::Served(Kind::Service));
        for (v, k) in [
            ("apps/v1beta1", "Deployment"),
            ("apps/v1beta2", "Deployment"),
            ("extensions/v1beta1", "Deployment"),
            ("extensions/v1beta1", "NetworkPolicy"),
            ("networking.k8s.io/v1beta1", "NetworkPolicy"),
            ("discovery.k8s.io/v1beta1", "EndpointSlice"),
        ] {
            match classify(v, k) {
                TypeMatch::Retired { hint, .. } => {
                    assert!(hint.contains("use apiVersion:"), "{hint}")
                }
                other => panic!("{v} {k}: {other:?}"),
            }
        }
        assert_eq!(
            classify("serving.knative.dev/v1", "Service"),
            TypeMatch::Ignored
        );
        assert_eq!(
            classify("networking.k8s.io/v1beta1", "Ingress"),
            TypeMatch::Ignored
        );
        assert_eq!(classify("v1", "ConfigMap"), TypeMatch::Ignored);
        assert!(matches!(
            classify("v2", "Service"),
            TypeMatch::Retired { .. }
        ));
    }
}
